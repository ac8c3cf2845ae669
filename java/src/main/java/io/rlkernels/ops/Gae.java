package io.rlkernels.ops;

import io.rlkernels.internal.Check;

/**
 * Generalised advantage estimation over token rows [B, T] (ARCHITECTURE §5.2), and discounted
 * returns-to-go. A reverse scan per row over the positions the response mask keeps; positions it
 * drops are skipped as if absent (the next kept position supplies the next value) and get 0:
 *
 * <pre>
 *   delta_t = r_t + gamma * V_next(t) - V_t        V_next(t): V at the next kept position, 0 at the end
 *   A_t     = delta_t + gamma * lambda * A_next(t)
 *   R_t     = A_t + V_t                            (returns)
 *   G_t     = r_t + gamma * G_next(t)              (discounted returns-to-go, no values)
 * </pre>
 *
 * This is verl's masked GAE; verl also writes carried values at dropped positions, which
 * everything downstream masks out — compare under the mask.
 */
public final class Gae {
    private Gae() {}

    /** gamma and lambda, both in [0, 1]. */
    public record Config(float gamma, float lambda) {
        /** Refuses gamma or lambda outside [0, 1]. */
        public Config {
            checkGamma(gamma);
            if (!(lambda >= 0 && lambda <= 1)) {
                throw Check.fail("lambda", "a number in [0, 1]", lambda);
            }
        }

        /** gamma = lambda = 1 (verl's defaults). */
        public static Config defaults() {
            return new Config(1.0f, 1.0f);
        }
    }

    /** Refuses a gamma outside [0, 1], naming it. */
    public static void checkGamma(float gamma) {
        if (!(gamma >= 0 && gamma <= 1)) {
            throw Check.fail("gamma", "a number in [0, 1]", gamma);
        }
    }
}
