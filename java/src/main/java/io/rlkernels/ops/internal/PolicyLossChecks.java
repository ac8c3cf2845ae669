package io.rlkernels.ops.internal;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.Tensor;

/** The policy loss's argument checks and kernel codes ({@link PolicyLoss}). Not API. */
public final class PolicyLossChecks {
    private PolicyLossChecks() {}

    /**
     * Checks the inputs and outputs: gradLogp [N] f32 (required); gradEntropy [N] f32 or null;
     * stats f64 [PolicyLoss.STATS_LENGTH].
     */
    public static void check(PolicyLoss.Config config, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy, Tensor stats) {
        if (config == null) {
            throw Check.fail("config", "a PolicyLoss.Config", "null");
        }
        if (in == null) {
            throw Check.fail("inputs", "a PolicyLoss.Inputs", "null");
        }
        Check.alive("logp", in.logp());
        Check.dtype("logp", in.logp(), DType.F32);
        Check.rank("logp", in.logp(), 1);
        long n = in.tokens();
        checkPerToken(config, in.oldLogp(), in.advantages(), in.mask(), in.sequences(), in.refLogp(), n);
        if (in.entropy() != null) {
            row("entropy", in.entropy(), n);
        } else if (config.entropyCoef() != 0) {
            throw Check.fail("entropy", "the entropy of each token for an entropy coefficient of " + config.entropyCoef(), "null");
        }
        Check.output("gradLogp", gradLogp);
        row("gradLogp", gradLogp, n);
        if (gradEntropy != null) {
            Check.output("gradEntropy", gradEntropy);
            row("gradEntropy", gradEntropy, n);
        }
        Check.output("stats", stats);
        Check.dtype("stats", stats, DType.F64);
        Check.shape("stats", stats, PolicyLoss.STATS_LENGTH);
    }

    /**
     * The inputs other than logp and entropy, [N]: old logp and advantages f32, mask f32 or u8,
     * the reference logp when a KL term is on, the sequences (N tokens) when the mode needs them.
     */
    public static void checkPerToken(PolicyLoss.Config config, Tensor oldLogp, Tensor advantages, Tensor mask,
                                     SequenceLayout sequences, Tensor refLogp, long n) {
        row("oldLogp", oldLogp, n);
        row("advantages", advantages, n);
        Check.alive("mask", mask);
        Check.dtype("mask", mask, DType.F32, DType.U8);
        Check.shape("mask", mask, n);
        if (refLogp != null) {
            row("refLogp", refLogp, n);
        } else if (config.kl() != PolicyLoss.KlEstimator.NONE && config.klCoef() != 0) {
            throw Check.fail("refLogp", "reference log-probs for the " + config.kl() + " KL term", "null");
        }
        if (sequences != null) {
            sequences.requireAlive("sequences");
        }
        if (sequences != null && sequences.tokens() != n) {
            throw Check.fail("sequences", "a layout of " + n + " tokens", sequences.tokens() + " tokens");
        }
        if (sequences == null && config.needsSequences()) {
            throw Check.fail("sequences", "the sequences (seqIds) for ratio " + config.ratio() + " and agg " + config.aggregation(),
                    "null");
        }
    }

    /** The refusal of finite inputs whose per-token gradient float32 cannot hold. */
    public static IllegalArgumentException overflow(String output, long index, float value) {
        return Check.overflowed("advantages, denominator, klCoef, entropyCoef", output, index, value,
                "a token's gradient is its coefficient over the denominator");
    }

    static void row(String arg, Tensor t, long n) {
        Check.alive(arg, t);
        Check.dtype(arg, t, DType.F32);
        Check.shape(arg, t, n);
    }

    /** Kernel codes: loss type, ratio level, aggregation and KL estimator as the native and CUDA kernels number them. */
    public static int[] codes(PolicyLoss.Config c) {
        return new int[] {c.loss().ordinal(), c.ratio().ordinal(), c.aggregation().ordinal(), c.kl().ordinal()};
    }
}
