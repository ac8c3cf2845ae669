package io.rlkernels.ops;

import io.rlkernels.internal.Check;
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

    /** PyTorch's and verl's ignore index: a row with this target is not read and gives zeros. */
    public static final long DEFAULT_IGNORE_INDEX = -100;

    /** Temperature and ignore index. */
    public record Config(float temperature, long ignoreIndex) {
        /** Refuses a temperature that is not finite and positive. */
        public Config {
            Check.finitePositive("temperature", temperature);
            if (!Float.isFinite(1.0f / temperature)) {
                throw Check.fail("temperature", "a value whose reciprocal is a finite float", temperature);
            }
        }

        /** Temperature 1, ignore index -100. */
        public static Config defaults() {
            return new Config(1.0f, DEFAULT_IGNORE_INDEX);
        }

        /** The same with temperature {@code t} (logits are divided by it). */
        public Config withTemperature(float t) {
            return new Config(t, ignoreIndex);
        }

        /** The same with another ignore index. */
        public Config withIgnoreIndex(long index) {
            return new Config(temperature, index);
        }
    }

    /** Rows N and vocabulary V of a checked call. */
    public record Dims(long rows, long vocab) {}

    /**
     * The outputs of the allocating forward; closing it closes them. {@code entropy} may be null.
     * {@code lseParts} [N, 2] holds (m, ln s) per row: what the backward ({@link io.rlkernels.backend.Backend#logProbsBackward})
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
}
