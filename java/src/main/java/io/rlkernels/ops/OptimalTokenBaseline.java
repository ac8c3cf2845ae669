package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.Tensor;

/**
 * verl's optimal token baseline (OTB, {@code adv_estimator=optimal_token_baseline}; arXiv
 * 2602.07078) over token rows [S, T] (ARCHITECTURE §5.2): a baseline per position of each prompt
 * group, the group's returns weighted by each trajectory's "realized energy" up to that position,
 * the cumulative variance proxy of its score function:
 *
 * <pre>
 *   G_t = sum_{j &gt;= t} m_j r_j                          returns-to-go of the token rewards (gamma 1)
 *   w_t = (1 - 2 pi_t + sum_v pi_v^2) rho_t^2           pi_t = exp(old logp_t); rho: the rollout IS weights (1 without)
 *   W_t = sum_{j &lt;= t} m_j w_j
 *   B_t = sum_i m_t G_t W_t / (sum_i m_t W_t + eps)     over the group's trajectories i, at the same position t
 *   A_t = m_t (G_t - B_t)
 * </pre>
 *
 * A group of one has B = 0 (its advantages are its returns). With {@code handleZeroTail} (verl's
 * default), a group whose longest trajectory (by kept tokens, L_max) is unique gets B_t = 0 on
 * that trajectory from position L_2 on, L_2 the second longest: there no other trajectory is left
 * to compare with, and B_t would otherwise equal its own G_t. Positions are indices into the row,
 * as verl's padded rows index them. Sums are in double in member order; G and W are kept in
 * float32 between the passes, as verl keeps them. Returns (the second output) are G under the
 * mask; verl also writes carried sums at dropped positions, which everything downstream masks out.
 *
 * <p>{@code sumPiSquared} is sum_v pi_v^2 of each token's old-policy distribution (verl's
 * {@code sum_pi_squared}, exp(logsumexp(2 z) - 2 logsumexp(z))); with it 1 - 2 pi + sum pi^2 &gt;= (1 -
 * pi)^2 &gt;= 0, so W grows along the row. Inputs must be finite; an input that makes W or an output
 * leave float32 is refused.
 */
public final class OptimalTokenBaseline {
    private OptimalTokenBaseline() {}

    /** verl's epsilon of the baseline's denominator. */
    public static final float DEFAULT_EPS = 1e-8f;

    /** eps (finite, &gt;= 0) and verl's handle_zero_tail. */
    public record Config(float eps, boolean handleZeroTail) {
        /** Refuses an eps that is not finite and &gt;= 0. */
        public Config {
            if (!(eps >= 0) || !Float.isFinite(eps)) {
                throw Check.fail("eps", "a finite number >= 0", eps);
            }
        }

        /** verl's defaults: eps 1e-8, handle_zero_tail true. */
        public static Config defaults() {
            return new Config(DEFAULT_EPS, true);
        }

        /** The same with another eps. */
        public Config withEps(float e) {
            return new Config(e, handleZeroTail);
        }

        /** The same with handle_zero_tail on or off. */
        public Config withHandleZeroTail(boolean on) {
            return new Config(eps, on);
        }
    }

    /**
     * Token rewards, the response mask (f32 or u8), the old policy's log-probs, sum pi^2 and the
     * rollout IS weights (or null), all [S, T] and f32 but the mask; the groups of the S rows.
     */
    public record Inputs(Tensor tokenRewards, Tensor mask, Tensor oldLogp, Tensor sumPiSquared, Tensor isWeights,
                         GroupLayout groups) {}
}
