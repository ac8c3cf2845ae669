package io.rlkernels.ops.internal;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/** The argument checks of the log-probs from hidden states ({@link LinearLogProbs}). Not API. */
public final class LinearLogProbsChecks {
    private LinearLogProbsChecks() {}

    /**
     * hidden [N, d] and weight [V, d] (f32, bf16 or f16; V at least 1), targets [N] i32 or i64
     * (each in [0, V) or the ignore index, checked here when they are host memory so that a
     * refusal names the row in the whole batch).
     */
    public static LinearLogProbs.Dims checkInputs(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets) {
        if (config == null) {
            throw Check.fail("config", "a LinearLogProbs.Config", "null");
        }
        Check.alive("hidden", hidden);
        Check.dtype("hidden", hidden, DType.F32, DType.BF16, DType.F16);
        Check.rank("hidden", hidden, 2);
        Check.alive("weight", weight);
        Check.dtype("weight", weight, DType.F32, DType.BF16, DType.F16);
        Check.rank("weight", weight, 2);
        long n = hidden.dim(0);
        long d = hidden.dim(1);
        long v = weight.dim(0);
        if (v < 1) {
            throw Check.fail("weight", "a vocabulary of at least 1 row (shape [V, d])", java.util.Arrays.toString(weight.shape()));
        }
        if (weight.dim(1) != d) {
            throw Check.fail("weight", "[V, " + d + "] (the hidden size of hidden [" + n + ", " + d + "])",
                    java.util.Arrays.toString(weight.shape()));
        }
        Check.alive("targets", targets);
        Check.dtype("targets", targets, DType.I32, DType.I64);
        Check.shape("targets", targets, n);
        config.chunkRows(v, Math.max(n, 1)); // refuses a workspace below one row
        if (targets instanceof HostTensor h) {
            LogProbsChecks.checkTargets(h, v, config.logProbs().ignoreIndex());
        }
        return new LinearLogProbs.Dims(n, d, v);
    }

    /** The forward: logp [N] written; lse, entropy [N] and lseParts [N, 2] written when not null; all distinct. */
    public static LinearLogProbs.Dims checkForward(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets,
                                                   Tensor logp, Tensor lse, Tensor entropy, Tensor lseParts) {
        LinearLogProbs.Dims d = checkInputs(config, hidden, weight, targets);
        Tensor[] outs = {logp, lse, entropy, lseParts};
        String[] names = {"logp", "lse", "entropy", "lseParts"};
        for (int i = 0; i < outs.length; i++) {
            if (outs[i] == null) {
                if (i == 0) {
                    throw Check.fail("logp", "an f32 [" + d.rows() + "] output", "null");
                }
                continue;
            }
            Check.output(names[i], outs[i]);
            Check.dtype(names[i], outs[i], DType.F32);
            if (i == 3) {
                Check.shape(names[i], outs[i], d.rows(), 2);
            } else {
                Check.shape(names[i], outs[i], d.rows());
            }
            Check.distinct(names[i], outs[i], "hidden", hidden);
            Check.distinct(names[i], outs[i], "weight", weight);
            Check.distinct(names[i], outs[i], "targets", targets);
            for (int j = i + 1; j < outs.length; j++) {
                if (outs[j] != null) {
                    Check.distinct(names[i], outs[i], names[j], outs[j]);
                }
            }
        }
        return d;
    }

    /**
     * The backward: lseParts [N, 2] from the forward; gradLogp and gradEntropy [N] f32, not both
     * null (entropy [N] needed with gradEntropy); gradHidden [N, d] f32 written (may be null when
     * only dW is wanted); gradWeight [V, d] f32 accumulated (may be null when only dH is wanted);
     * not both null; outputs distinct from each other and from the inputs.
     */
    public static LinearLogProbs.Dims checkBackward(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets,
                                                    Tensor lseParts, Tensor entropy, Tensor gradLogp, Tensor gradEntropy,
                                                    Tensor gradHidden, Tensor gradWeight) {
        LinearLogProbs.Dims d = checkInputs(config, hidden, weight, targets);
        Check.alive("lseParts", lseParts);
        Check.dtype("lseParts", lseParts, DType.F32);
        Check.shape("lseParts", lseParts, d.rows(), 2);
        if (gradLogp == null && gradEntropy == null) {
            throw Check.fail("gradLogp, gradEntropy", "at least one upstream gradient", "both null");
        }
        for (Object[] a : new Object[][] {{"gradLogp", gradLogp}, {"gradEntropy", gradEntropy}}) {
            if (a[1] != null) {
                Check.alive((String) a[0], (Tensor) a[1]);
                Check.dtype((String) a[0], (Tensor) a[1], DType.F32);
                Check.shape((String) a[0], (Tensor) a[1], d.rows());
            }
        }
        if (gradEntropy != null) {
            if (entropy == null) {
                throw Check.fail("entropy", "the forward's entropy when gradEntropy is given", "null");
            }
            Check.alive("entropy", entropy);
            Check.dtype("entropy", entropy, DType.F32);
            Check.shape("entropy", entropy, d.rows());
        }
        checkGradients(d, hidden, weight, targets, gradHidden, gradWeight, new String[] {"lseParts", "entropy", "gradLogp", "gradEntropy"},
                new Tensor[] {lseParts, entropy, gradLogp, gradEntropy});
        return d;
    }

    /** gradHidden [N, d] and gradWeight [V, d]: f32, writable, not both null, distinct from each other and the inputs. */
    static void checkGradients(LinearLogProbs.Dims d, Tensor hidden, Tensor weight, Tensor targets, Tensor gradHidden,
                               Tensor gradWeight, String[] otherNames, Tensor[] otherInputs) {
        if (gradHidden == null && gradWeight == null) {
            throw Check.fail("gradHidden, gradWeight", "at least one gradient to compute", "both null");
        }
        Object[][] grads = {{"gradHidden", gradHidden, d.rows()}, {"gradWeight", gradWeight, d.vocab()}};
        for (Object[] g : grads) {
            Tensor t = (Tensor) g[1];
            if (t == null) {
                continue;
            }
            String arg = (String) g[0];
            Check.output(arg, t);
            Check.dtype(arg, t, DType.F32);
            Check.shape(arg, t, (long) g[2], d.hidden());
            Check.distinct(arg, t, "hidden", hidden);
            Check.distinct(arg, t, "weight", weight);
            Check.distinct(arg, t, "targets", targets);
            for (int k = 0; k < otherInputs.length; k++) {
                if (otherInputs[k] != null) {
                    Check.distinct(arg, t, otherNames[k], otherInputs[k]);
                }
            }
        }
        if (gradHidden != null && gradWeight != null) {
            Check.distinct("gradHidden", gradHidden, "gradWeight", gradWeight);
        }
    }

    /** The fused loss form: the inputs as {@link #checkInputs}, the policy-loss inputs [N], the gradients as the backward's. */
    public static LinearLogProbs.Dims checkLoss(LinearLogProbs.Config config, PolicyLoss.Config loss, LinearLogProbs.LossInputs in,
                                                Tensor logp, Tensor gradHidden, Tensor gradWeight) {
        if (in == null) {
            throw Check.fail("inputs", "a LinearLogProbs.LossInputs", "null");
        }
        if (loss == null) {
            throw Check.fail("loss", "a PolicyLoss.Config", "null");
        }
        LinearLogProbs.Dims d = checkInputs(config, in.hidden(), in.weight(), in.targets());
        PolicyLossChecks.checkPerToken(loss, in.oldLogp(), in.advantages(), in.mask(), in.sequences(), in.refLogp(), in.rolloutLogp(),
                d.rows());
        if (logp != null) {
            Check.output("logp", logp);
            Check.dtype("logp", logp, DType.F32);
            Check.shape("logp", logp, d.rows());
        }
        checkGradients(d, in.hidden(), in.weight(), in.targets(), gradHidden, gradWeight,
                new String[] {"oldLogp", "advantages", "mask", "refLogp", "rolloutLogp", "logp"},
                new Tensor[] {in.oldLogp(), in.advantages(), in.mask(), in.refLogp(), in.rolloutLogp(), logp});
        return d;
    }
}
