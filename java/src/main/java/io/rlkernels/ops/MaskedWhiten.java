package io.rlkernels.ops;

import io.rlkernels.internal.Check;

/**
 * Whitening of token values under a mask (verl's masked_whiten): over the kept positions,
 * {@code (x - mean) / sqrt(var + eps)}, var unbiased by default; dropped positions get 0. Two
 * passes in f64, fixed summation order: bitwise the same run after run.
 */
public final class MaskedWhiten {
    private MaskedWhiten() {}

    /** eps inside the square root (verl: 1e-8) and whether the variance is unbiased (verl: true). */
    public record Config(float eps, boolean unbiased) {
        public static final float DEFAULT_EPS = 1e-8f;

        /** Refuses an eps that is not finite and &gt;= 0. */
        public Config {
            if (!(eps >= 0) || !Float.isFinite(eps)) {
                throw Check.fail("eps", "a finite number >= 0", eps);
            }
        }

        /** verl's masked_whiten: eps 1e-8, unbiased variance. */
        public static Config defaults() {
            return new Config(DEFAULT_EPS, true);
        }
    }
}
