package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import java.util.Locale;

/**
 * Group-normalised advantages (ARCHITECTURE §5.2): each sequence's reward against the other sequences
 * of its group (the samples of one prompt).
 *
 * <pre>
 *   grpo     (r - mean) / (std + eps)
 *   drgrpo   r - mean                       (Dr. GRPO: no std division)
 *   rloo     r - mean of the others        = (r - mean) * n / (n - 1)
 *   batch    (r - mean) / (std + eps) over the whole batch, group ids ignored
 *   none     r
 * </pre>
 *
 * std is unbiased (n - 1) by default. A group of one gets advantage 0 in every mode, and a
 * constant group (std = 0) gets exactly 0 in grpo and batch whatever eps is, eps = 0 included
 * (a sequence equal to its group's mean gets 0). Means and
 * variances are two-pass in f64 on every backend (a sum-of-squares variance loses every digit on
 * groups such as {1000.0001, 1000.0002, 1000.0003, 1000.0004}), and every sum is taken in a fixed
 * order, so the output is bitwise the same run after run. Sequences are grouped by a
 * {@link GroupLayout}, built once on the host and reusable across steps.
 */
public final class GroupAdvantages {
    private GroupAdvantages() {}

    public enum Mode {
        GRPO, DRGRPO, RLOO, BATCH, NONE;

        /** The code the native and CUDA kernels receive. */
        public int code() {
            return ordinal();
        }

        public static Mode parse(String s) {
            for (Mode m : values()) {
                if (m.name().equalsIgnoreCase(s.trim())) {
                    return m;
                }
            }
            throw Check.fail("mode", "grpo, drgrpo, rloo, batch or none", s);
        }

        @Override
        public String toString() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** Mode, unbiased (n - 1) or biased (n) std, and the eps added to std. */
    public record Config(Mode mode, boolean unbiasedStd, float eps) {
        public static final float DEFAULT_EPS = 1e-6f;

        public Config {
            if (mode == null) {
                throw Check.fail("mode", "a mode", "null");
            }
            if (!(eps >= 0) || !Float.isFinite(eps)) {
                throw Check.fail("eps", "a finite number >= 0", eps);
            }
        }

        public static Config defaults() {
            return new Config(Mode.GRPO, true, DEFAULT_EPS);
        }

        public Config withMode(Mode m) {
            return new Config(m, unbiasedStd, eps);
        }

        public Config withUnbiasedStd(boolean unbiased) {
            return new Config(mode, unbiased, eps);
        }

        public Config withEps(float e) {
            return new Config(mode, unbiasedStd, e);
        }
    }
}
