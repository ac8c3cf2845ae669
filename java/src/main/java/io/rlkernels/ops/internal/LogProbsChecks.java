package io.rlkernels.ops.internal;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/** The log-probs op's argument checks and float32 bounds ({@link LogProbs}): what every backend refuses, and when. Not API. */
public final class LogProbsChecks {
    private LogProbsChecks() {}

    /**
     * The largest |g| and |h| (upstream gradients of logp and of the entropy) for which every
     * element of the logits gradient, and every intermediate the kernels form, stays within
     * float32: |dz| &lt;= (|g| + |h| (ln V + 1/e)) / T, and the kernels form g + h (a ln 2 + H) with
     * a ln 2 &gt;= -88 before the factor p / T. Larger upstream gradients are refused, not turned
     * into infinities. {g limit, h limit}.
     */
    public static float[] upstreamLimits(float temperature, long vocab) {
        double room = Float.MAX_VALUE * Math.min(1.0, temperature) / 2;
        return new float[] {(float) room, (float) (room / (Math.log(Math.max(vocab, 1)) + 90))};
    }

    /** Why {@link #upstreamLimits} bounds an upstream gradient: for messages. */
    public static String upstreamReason(float temperature) {
        return "so that the logits gradient stays within float32 at temperature " + temperature;
    }

    /** The refusal of finite logits whose lse or logp float32 cannot hold (found by the forward). */
    public static IllegalArgumentException overflow(long row, LogProbs.Config config) {
        return Check.fail("logits", "logits whose lse and logp fit in float32 at temperature " + config.temperature(),
                "row " + row + ", whose lse or logp is beyond float32's range (|z/T| near 3.4e38: scale the logits"
                        + " or raise the temperature)");
    }

    /**
     * Checks a forward call: logp [N] f32 is written; {@code lse} [N], {@code entropy} [N] and
     * {@code lseParts} [N, 2] (f32, the backward's input) are written when not null. Outputs must
     * be distinct.
     */
    public static LogProbs.Dims checkForward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                                    Tensor lseParts) {
        if (config == null) {
            throw Check.fail("config", "a LogProbs.Config", "null");
        }
        LogProbs.Dims d = checkInputs(logits, targets);
        checkOutputRow("logp", logp, d);
        String[] names = {"logp", "lse", "entropy", "lseParts"};
        Tensor[] outs = {logp, lse, entropy, lseParts};
        if (lse != null) {
            checkOutputRow("lse", lse, d);
        }
        if (entropy != null) {
            checkOutputRow("entropy", entropy, d);
        }
        if (lseParts != null) {
            checkLseParts(lseParts, d);
            Check.output("lseParts", lseParts);
        }
        for (int a = 0; a < outs.length; a++) {
            for (int b = a + 1; b < outs.length; b++) {
                if (outs[a] != null && outs[b] != null) {
                    Check.distinct(names[a], outs[a], names[b], outs[b]);
                }
            }
        }
        return d;
    }

    /** The forward's (m, ln s) per row: f32 [N, 2]. */
    static void checkLseParts(Tensor lseParts, LogProbs.Dims d) {
        Check.alive("lseParts", lseParts);
        Check.dtype("lseParts", lseParts, DType.F32);
        Check.shape("lseParts", lseParts, d.rows(), 2);
    }

    /**
     * Checks a backward call: {@code lseParts} [N, 2] f32 is the forward's (m, ln s) per row.
     * {@code gradLogp} and {@code gradEntropy} may each be null (a zero upstream gradient) but not
     * both; {@code entropy} is needed when {@code gradEntropy} is given. {@code gradLogits} may be
     * {@code logits} itself (in place); otherwise it must not overlap it.
     */
    public static LogProbs.Dims checkBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                     Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        if (config == null) {
            throw Check.fail("config", "a LogProbs.Config", "null");
        }
        LogProbs.Dims d = checkInputs(logits, targets);
        checkLseParts(lseParts, d);
        if (gradLogp == null && gradEntropy == null) {
            throw Check.fail("gradLogp, gradEntropy", "at least one upstream gradient", "both null");
        }
        if (gradLogp != null) {
            checkRow("gradLogp", gradLogp, d);
        }
        if (gradEntropy != null) {
            checkRow("gradEntropy", gradEntropy, d);
            if (entropy == null) {
                throw Check.fail("entropy", "the forward's entropy when gradEntropy is given", "null");
            }
            checkRow("entropy", entropy, d);
        }
        Check.output("gradLogits", gradLogits); // in place: the logits themselves, which must then be writable
        Check.floatingPoint("gradLogits", gradLogits);
        Check.shape("gradLogits", gradLogits, d.rows(), d.vocab());
        if (gradLogits != logits) {
            Check.distinct("logits", logits, "gradLogits", gradLogits);
        }
        return d;
    }

    /** Every target id is in [0, V) or equals the ignore index. */
    public static void checkTargets(HostTensor targets, long vocab, long ignoreIndex) {
        for (long i = 0, n = targets.numel(); i < n; i++) {
            long y = targets.getLong(i);
            if (y != ignoreIndex && (y < 0 || y >= vocab)) {
                throw Check.fail("targets[" + i + "]", "a token id in [0, " + vocab + ") or the ignore index "
                        + ignoreIndex, y);
            }
        }
    }

    /** Every id is a token id in [0, V): no ignore index (BGPO's response tokens, masked or not). */
    public static void checkTokenIds(HostTensor targets, long vocab) {
        for (long i = 0, n = targets.numel(); i < n; i++) {
            long y = targets.getLong(i);
            if (y < 0 || y >= vocab) {
                throw Check.fail("targets[" + i + "]", "a token id in [0, " + vocab + ")", y);
            }
        }
    }

    /** Checks logits [N, V] (f32, bf16 or f16) and targets [N] (i32 or i64); returns N and V. */
    public static LogProbs.Dims checkInputs(Tensor logits, Tensor targets) {
        Check.alive("logits", logits);
        Check.floatingPoint("logits", logits);
        Check.rank("logits", logits, 2);
        long n = logits.dim(0);
        long v = logits.dim(1);
        if (v < 1) {
            throw Check.fail("logits", "a vocabulary of at least 1 (shape [N, V])", java.util.Arrays.toString(logits.shape()));
        }
        Check.alive("targets", targets);
        Check.dtype("targets", targets, DType.I32, DType.I64);
        Check.shape("targets", targets, n);
        return new LogProbs.Dims(n, v);
    }

    /** An f32 vector of one value per row (an output when {@code arg} is logp, lse or a forward's entropy). */
    static void checkRow(String arg, Tensor t, LogProbs.Dims d) {
        Check.alive(arg, t);
        Check.dtype(arg, t, DType.F32);
        Check.shape(arg, t, d.rows());
    }

    static void checkOutputRow(String arg, Tensor t, LogProbs.Dims d) {
        Check.output(arg, t);
        Check.dtype(arg, t, DType.F32);
        Check.shape(arg, t, d.rows());
    }
}
