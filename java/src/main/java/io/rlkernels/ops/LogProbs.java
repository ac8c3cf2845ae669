package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * Token log-probs (ARCHITECTURE §5.1): log-softmax of logits [N, V] at temperature T, gathered at the
 * sampled tokens, with the entropy of each row and their backward.
 *
 * <pre>
 *   lse_i   = log sum_v exp(z_iv / T)  = m_i / T + ln s_i,   m_i = max_v z_iv,  s_i = sum_v exp((z_iv - m_i) / T)
 *   logp_i  = z_iy / T - lse_i
 *   H_i     = lse_i - sum_v p_iv z_iv / T,          p = softmax(z / T)
 *   dz_iv   = (g_i (1[v=y] - p_iv) - h_i p_iv (log p_iv + H_i)) / T,   log p_iv = (z_iv - m_i) / T - ln s_i
 * </pre>
 *
 * <p>Precision, every backend: logp, lse and entropy within max(1e-6 |x|, 1e-7) of their exact
 * (f64) values, near-certain tokens included (p_y up to 1 - 1e-7, where logp is -1e-7), and every
 * element of the gradient within 1e-5 relative (floor: 1e-7 of the row's largest |dz|), whatever
 * |lse| is. Two qualifications, both float32's own condition, not lost digits: an element whose
 * probability q (p_v, or 1 - p_y at the target) is below 2^-24 comes from a float32 exponent log2
 * q and is within 2^-21 |log2 q| relative (2.4e-5 at q = 1e-30); where g and h are both given,
 * an element is the sum of g's term and h's, which can cancel, and its error is bounded against
 * the magnitudes of the two terms (|g term| + |h| p (|log p| + H) / T), not their sum. The forward
 * keeps s = ties + eps as its two parts (ties: the logits equal to m) and takes ln s = ln(ties) +
 * log1p(eps / ties), so logp = -eps keeps its digits however small eps is. The backward takes the row's max m (a logit, so exact) and ln s, the
 * {@code lseParts} [N, 2] the forward writes, rather than lse, whose float32 rounding (ulp(|lse|)/2)
 * would reach every p; and it forms 1 - p_y as -expm1(logp_y). A row's outputs are bitwise the same
 * whatever the batch: its size, the row's position in it, the thread count (native), the grid
 * size (CUDA).
 *
 * Rows whose target equals {@code ignoreIndex} are not read: logp = lse = H = 0 and their gradient
 * is zero. Logits may be f32, bf16 or f16 (compared with f64 on the same rounded values);
 * accumulation is f32 with f64 where digits would be lost (f64 in the reference backend); outputs
 * are f32.
 *
 * <p>Non-finite values, the same on every backend: a -inf logit is a banned token (p = 0; logp
 * = -inf when it is the target); a NaN or +inf logit in a row gives NaN in that row's logp, lse
 * and entropy only, and so does a row whose logits are all -inf (it has no distribution). The
 * forward writes NaN lseParts for such a row, and the backward gives it a NaN gradient row (and
 * NaN at a NaN logit); the upstream gradients g and h must be finite (refused otherwise, naming
 * the element). Target ids are checked on every row: in [0, V) or the ignore index.
 */
public final class LogProbs {
    private LogProbs() {}

    public static final long DEFAULT_IGNORE_INDEX = -100;

    /** Temperature and ignore index. */
    public record Config(float temperature, long ignoreIndex) {
        public Config {
            Check.finitePositive("temperature", temperature);
            if (!Float.isFinite(1.0f / temperature)) {
                throw Check.fail("temperature", "a value whose reciprocal is a finite float", temperature);
            }
        }

        public static Config defaults() {
            return new Config(1.0f, DEFAULT_IGNORE_INDEX);
        }

        public Config withTemperature(float t) {
            return new Config(t, ignoreIndex);
        }

        public Config withIgnoreIndex(long index) {
            return new Config(temperature, index);
        }
    }

    /**
     * The largest |g| and |h| (upstream gradients of logp and of the entropy) for which every
     * element of the logits gradient, and every intermediate the kernels form, stays within
     * float32: |dz| <= (|g| + |h| (ln V + 1/e)) / T, and the kernels form g + h (a ln 2 + H) with
     * a ln 2 >= -88 before the factor p / T. Larger upstream gradients are refused, not turned
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
    public static IllegalArgumentException overflow(long row, Config config) {
        return Check.fail("logits", "logits whose lse and logp fit in float32 at temperature " + config.temperature(),
                "row " + row + ", whose lse or logp is beyond float32's range (|z/T| near 3.4e38: scale the logits"
                        + " or raise the temperature)");
    }

    /** Rows N and vocabulary V of a checked call. */
    public record Dims(long rows, long vocab) {}

    /**
     * The outputs of the allocating forward; closing it closes them. {@code entropy} may be null.
     * {@code lseParts} [N, 2] holds (m, ln s) per row: what {@link #checkBackward the backward}
     * takes.
     */
    public record Result(Tensor logp, Tensor lse, Tensor entropy, Tensor lseParts) implements AutoCloseable {
        @Override
        public void close() {
            logp.close();
            lse.close();
            if (entropy != null) {
                entropy.close();
            }
            lseParts.close();
        }
    }

    /**
     * Checks a forward call: logp [N] f32 is written; {@code lse} [N], {@code entropy} [N] and
     * {@code lseParts} [N, 2] (f32, the backward's input) are written when not null. Outputs must
     * be distinct.
     */
    public static Dims checkForward(Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                                    Tensor lseParts) {
        if (config == null) {
            throw Check.fail("config", "a LogProbs.Config", "null");
        }
        Dims d = checkInputs(logits, targets);
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
    private static void checkLseParts(Tensor lseParts, Dims d) {
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
    public static Dims checkBackward(Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                     Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        if (config == null) {
            throw Check.fail("config", "a LogProbs.Config", "null");
        }
        Dims d = checkInputs(logits, targets);
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
    public static Dims checkInputs(Tensor logits, Tensor targets) {
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
        return new Dims(n, v);
    }

    /** An f32 vector of one value per row (an output when {@code arg} is logp, lse or a forward's entropy). */
    private static void checkRow(String arg, Tensor t, Dims d) {
        Check.alive(arg, t);
        Check.dtype(arg, t, DType.F32);
        Check.shape(arg, t, d.rows());
    }

    private static void checkOutputRow(String arg, Tensor t, Dims d) {
        Check.output(arg, t);
        Check.dtype(arg, t, DType.F32);
        Check.shape(arg, t, d.rows());
    }
}
