package io.rlkernels.backend.reference;

import static io.rlkernels.backend.reference.HostArgs.host;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.tensor.DType;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.internal.LinearLogProbsChecks;
import io.rlkernels.ops.internal.LogProbsChecks;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * Log-probs from hidden states (contract: {@link LinearLogProbs}) from the definition, in f64:
 * each row's logits z_i = W H_i summed in f64 (one row of V doubles at a time, never [N, V]),
 * then the log-probs reference's row functions. The backward recomputes the row in f64 and takes
 * its own m and ln s rather than the forward's f32 lseParts (which it checks for shape only):
 * the truth the other backends are compared with, not a copy of their rounding.
 */
final class LinearLogProbsReference {
    private LinearLogProbsReference() {}

    static void forward(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets, Tensor logp, Tensor lse,
                        Tensor entropy, Tensor lseParts) {
        LinearLogProbs.Dims d = LinearLogProbsChecks.checkForward(config, hidden, weight, targets, logp, lse, entropy, lseParts);
        HostTensor h = host("hidden", hidden);
        HostTensor w = host("weight", weight);
        HostTensor y = host("targets", targets);
        LogProbs.Config lp = config.logProbs();
        double[] z = new double[LogProbsReference.rowLength(d.vocab())];
        double[] hi = new double[(int) d.hidden()];
        for (long i = 0; i < d.rows(); i++) {
            long target = y.getLong(i);
            LogProbsReference.Row r;
            if (target == lp.ignoreIndex()) {
                r = LogProbsReference.Row.IGNORED;
            } else {
                r = LogProbsReference.logProbsRow(logits(h, w, i, d, hi, z), (int) target, lp.temperature());
                if (Float.isInfinite((float) r.lse())) {
                    throw LogProbsChecks.overflow(i, lp);
                }
            }
            host("logp", logp).setFloat(i, (float) r.logp());
            if (lse != null) {
                host("lse", lse).setFloat(i, (float) r.lse());
            }
            if (entropy != null) {
                host("entropy", entropy).setFloat(i, (float) r.entropy());
            }
            if (lseParts != null) {
                HostTensor parts = host("lseParts", lseParts);
                parts.setFloat(2 * i, (float) r.max());
                parts.setFloat(2 * i + 1, (float) r.logSum());
            }
        }
    }

    static void backward(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets, Tensor lseParts,
                         Tensor entropy, Tensor gradLogp, Tensor gradEntropy, Tensor gradHidden, Tensor gradWeight) {
        LinearLogProbs.Dims d = LinearLogProbsChecks.checkBackward(config, hidden, weight, targets, lseParts, entropy, gradLogp,
                gradEntropy, gradHidden, gradWeight);
        HostTensor h = host("hidden", hidden);
        HostTensor w = host("weight", weight);
        HostTensor y = host("targets", targets);
        HostTensor g = gradLogp == null ? null : host("gradLogp", gradLogp);
        HostTensor gh = gradEntropy == null ? null : host("gradEntropy", gradEntropy);
        LogProbs.Config lp = config.logProbs();
        float[] limits = LogProbsChecks.upstreamLimits(lp.temperature(), d.vocab());
        if (g != null) {
            Check.within("gradLogp", g, limits[0], LogProbsChecks.upstreamReason(lp.temperature()));
        }
        if (gh != null) {
            Check.within("gradEntropy", gh, limits[1], LogProbsChecks.upstreamReason(lp.temperature()));
        }
        int dim = (int) d.hidden();
        double[] z = new double[LogProbsReference.rowLength(d.vocab())];
        double[] dz = new double[z.length];
        double[] hi = new double[dim];
        double[] dW = gradWeight == null ? null : new double[(int) (d.vocab() * dim)];
        for (long i = 0; i < d.rows(); i++) {
            long target = y.getLong(i);
            if (target == lp.ignoreIndex()) {
                java.util.Arrays.fill(dz, 0);
            } else {
                logits(h, w, i, d, hi, z);
                LogProbsReference.Row r = LogProbsReference.logProbsRow(z, (int) target, lp.temperature());
                LogProbsReference.logProbsGradRow(z, (int) target, lp.temperature(), r.max(), r.logSum(), r.entropy(),
                        g == null ? 0 : g.getFloat(i), gh == null ? 0 : gh.getFloat(i), dz);
            }
            if (gradHidden != null) {
                HostTensor out = host("gradHidden", gradHidden);
                for (int k = 0; k < dim; k++) {
                    double sum = 0;
                    for (int v = 0; v < z.length; v++) {
                        sum += dz[v] * w.getFloat((long) v * dim + k);
                    }
                    out.setFloat(i * dim + k, (float) sum);
                }
            }
            if (dW != null) {
                for (int v = 0; v < z.length; v++) {
                    if (dz[v] != 0) {
                        for (int k = 0; k < dim; k++) {
                            dW[v * dim + k] += dz[v] * hi[k];
                        }
                    }
                }
            }
        }
        if (dW != null) {
            HostTensor out = host("gradWeight", gradWeight);
            for (int e = 0; e < dW.length; e++) {
                out.setFloat(e, (float) (out.getFloat(e) + dW[e]));
            }
        }
    }

    /**
     * The fused loss form by definition, unchunked: the forward over the whole batch, the policy
     * loss on its log-probs, the backward from the loss's gradients.
     */
    static PolicyLoss.Stats loss(LinearLogProbs.Config config, PolicyLoss.Config loss, LinearLogProbs.LossInputs in, Tensor logp,
                                 Tensor gradHidden, Tensor gradWeight) {
        LinearLogProbs.Dims d = LinearLogProbsChecks.checkLoss(config, loss, in, logp, gradHidden, gradWeight);
        long n = d.rows();
        boolean withEntropy = loss.entropyCoef() != 0 || loss.selection().topEntropyQuantile() < 1;
        try (HostTensor own = HostTensor.allocate(DType.F32, n); HostTensor parts = HostTensor.allocate(DType.F32, n, 2);
             HostTensor entropy = withEntropy ? HostTensor.allocate(DType.F32, n) : null;
             HostTensor g = HostTensor.allocate(DType.F32, n);
             HostTensor h = withEntropy ? HostTensor.allocate(DType.F32, n) : null;
             HostTensor stats = HostTensor.allocate(DType.F64, PolicyLoss.STATS_LENGTH)) {
            Tensor lp = logp != null ? logp : own;
            forward(config, in.hidden(), in.weight(), in.targets(), lp, null, entropy, parts);
            PolicyLoss.Config resolved = loss.selectsOnThisBatch()
                    ? io.rlkernels.ops.PolicyLossSelection.resolve(loss, in.perToken(lp, entropy)) : loss;
            PolicyLossReference.policyLoss(resolved, in.perToken(lp, entropy), g, h, stats);
            backward(config, in.hidden(), in.weight(), in.targets(), parts, entropy, g, h, gradHidden, gradWeight);
            return PolicyLoss.Stats.of(stats);
        }
    }

    /** Row i's logits in f64 into z (and its hidden state into hi); returns z. */
    private static double[] logits(HostTensor h, HostTensor w, long i, LinearLogProbs.Dims d, double[] hi, double[] z) {
        int dim = (int) d.hidden();
        for (int k = 0; k < dim; k++) {
            hi[k] = h.getFloat(i * dim + k);
        }
        for (int v = 0; v < z.length; v++) {
            double sum = 0;
            long base = (long) v * dim;
            for (int k = 0; k < dim; k++) {
                sum += hi[k] * w.getFloat(base + k);
            }
            z[v] = sum;
        }
        return z;
    }
}
