package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.Tensor;
import java.util.Locale;

/**
 * verl's advantage estimators ({@code algorithm.adv_estimator}) as compositions of this library's
 * ops ({@link GroupAdvantages}, {@link Gae}, {@link MaskedWhiten}, {@link OptimalTokenBaseline}), so each runs on every backend,
 * two-pass and deterministic as they are; {@code io.rlkernels.backend.AdvantageEstimators}
 * computes them. Outputs are per token, [S, T] under the response mask, as verl's are.
 *
 * <pre>
 *   grpo                          (r - mean) / (std + eps) per group; r - mean with normAdvByStdInGrpo false
 *   rloo                          r - the mean of the others
 *   gpg                           alpha (r - mean), alpha = S / the nonzero rewards
 *   opo                           r - the group's length-weighted mean (lengths: the mask's row sums)
 *   grpo_passk                    the group's best: r_max - r_second (over std + eps); others 0
 *   reinforce_plus_plus_baseline  r - the group mean (a group of one keeps r), whitened over the batch's tokens
 *   reinforce_plus_plus           the discounted returns of the token rewards (gamma), whitened over the tokens
 *   remax                         the returns of the token rewards minus the greedy baseline's reward
 *   gdpo                          per reward k: grpo; then sum_k w_k a_k, normalised over the batch (arXiv 2601.05242)
 *   optimal_token_baseline        G_t minus a baseline per position and group, weighted by the realized energy W_t
 *                                 ({@link OptimalTokenBaseline}; arXiv 2602.07078)
 * </pre>
 *
 * The sequence-level estimators read rewards [S] (the sum of verl's token-level rewards); gdpo
 * reads K rewards [K, S] and K weights; reinforce_plus_plus, remax and optimal_token_baseline read
 * token rewards [S, T]; remax also the baseline rewards [S]; optimal_token_baseline also the groups,
 * the old policy's log-probs and sum pi^2 [S, T], and optionally the rollout IS weights [S, T]. grpo's group of one gets 0 here (verl: r / (1 + eps)): a
 * group of one has nothing to compare with. Returns (verl's second output) are the advantages,
 * except for reinforce_plus_plus and remax, where they are the returns.
 */
public enum AdvantageEstimator {
    /** (r - mean) / (std + eps) per group (r - mean without the std). */
    GRPO,
    /** r minus the mean of the group's others. */
    RLOO,
    /** alpha (r - mean), alpha = S over the nonzero rewards. */
    GPG,
    /** r minus the group's length-weighted mean. */
    OPO,
    /** The group's best gets r_max - r_second; the others 0. */
    GRPO_PASSK,
    /** r minus the group mean, whitened over the batch's tokens. */
    REINFORCE_PLUS_PLUS_BASELINE,
    /** Discounted returns of the token rewards, whitened over the tokens. */
    REINFORCE_PLUS_PLUS,
    /** Returns of the token rewards minus the greedy baseline's reward. */
    REMAX,
    /** grpo per reward, their weighted sum normalised over the batch. */
    GDPO,
    /** A baseline per position and group, weighted by the realized energy ({@link OptimalTokenBaseline}). */
    OPTIMAL_TOKEN_BASELINE;

    /** verl's name. */
    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The estimator of verl's name (case-insensitive), refused naming adv_estimator otherwise. */
    public static AdvantageEstimator parse(String s) {
        for (AdvantageEstimator e : values()) {
            if (e.toString().equals(s.trim().toLowerCase(Locale.ROOT))) {
                return e;
            }
        }
        throw Check.fail("adv_estimator", "one of " + java.util.Arrays.toString(values()), s);
    }

    /** Whether the estimator reads token rewards [S, T] rather than rewards [S]. */
    public boolean tokenRewards() {
        return this == REINFORCE_PLUS_PLUS || this == REMAX || this == OPTIMAL_TOKEN_BASELINE;
    }

    /** Whether it groups sequences (needs a GroupLayout). */
    public boolean grouped() {
        return !tokenRewards() || this == OPTIMAL_TOKEN_BASELINE;
    }

    /**
     * The estimator and its options: verl's norm_adv_by_std_in_grpo (grpo, grpo_passk), epsilon
     * (1e-6; optimal_token_baseline's 1e-8), gamma (reinforce_plus_plus; 1.0), gdpo's reward weights
     * (one per reward row; null: 1 each) and optimal_token_baseline's handle_zero_tail (true).
     */
    public record Config(AdvantageEstimator estimator, boolean normAdvByStdInGrpo, float epsilon, float gamma, float[] gdpoWeights,
                         boolean handleZeroTail) {
        /** Refuses a null estimator, an epsilon that is not finite and &gt;= 0, a gamma outside [0, 1], non-finite gdpo weights. */
        public Config {
            if (estimator == null) {
                throw Check.fail("adv_estimator", "an estimator", "null");
            }
            if (!(epsilon >= 0) || !Float.isFinite(epsilon)) {
                throw Check.fail("epsilon", "a finite number >= 0", epsilon);
            }
            if (!(gamma >= 0 && gamma <= 1)) {
                throw Check.fail("gamma", "a number in [0, 1]", gamma);
            }
            if (gdpoWeights != null) {
                if (gdpoWeights.length == 0) {
                    throw Check.fail("gdpo_reward_weights", "one weight per reward (or null: 1 each)", "none");
                }
                for (float w : gdpoWeights) {
                    if (!Float.isFinite(w)) {
                        throw Check.fail("gdpo_reward_weights", "finite weights", java.util.Arrays.toString(gdpoWeights));
                    }
                }
                gdpoWeights = gdpoWeights.clone();
            }
        }

        /** The estimator with verl's defaults. */
        public static Config of(AdvantageEstimator e) {
            return new Config(e, true, defaultEpsilon(e), 1.0f, null, true);
        }

        /** verl's epsilon of the estimator: 1e-6, optimal_token_baseline's 1e-8. */
        public static float defaultEpsilon(AdvantageEstimator e) {
            return e == OPTIMAL_TOKEN_BASELINE ? OptimalTokenBaseline.DEFAULT_EPS : GroupAdvantages.Config.DEFAULT_EPS;
        }

        /** The same with norm_adv_by_std_in_grpo on or off. */
        public Config withNormAdvByStd(boolean on) {
            return new Config(estimator, on, epsilon, gamma, gdpoWeights, handleZeroTail);
        }

        /** The same with another epsilon. */
        public Config withEpsilon(float e) {
            return new Config(estimator, normAdvByStdInGrpo, e, gamma, gdpoWeights, handleZeroTail);
        }

        /** The same with another gamma (reinforce_plus_plus). */
        public Config withGamma(float g) {
            return new Config(estimator, normAdvByStdInGrpo, epsilon, g, gdpoWeights, handleZeroTail);
        }

        /** The same with gdpo's reward weights, one per reward row. */
        public Config withGdpoWeights(float... w) {
            return new Config(estimator, normAdvByStdInGrpo, epsilon, gamma, w, handleZeroTail);
        }

        /** The same with optimal_token_baseline's handle_zero_tail on or off. */
        public Config withHandleZeroTail(boolean on) {
            return new Config(estimator, normAdvByStdInGrpo, epsilon, gamma, gdpoWeights, on);
        }
    }

    /**
     * The inputs: rewards [S] f32 (gdpo: [K, S]), the groups, the response mask [S, T] (f32 or
     * u8), token rewards [S, T] f32 (reinforce_plus_plus, remax, optimal_token_baseline), remax's
     * baseline rewards [S] f32, and optimal_token_baseline's old log-probs, sum pi^2 and rollout IS
     * weights (optional), [S, T] f32.
     */
    public record Inputs(Tensor rewards, GroupLayout groups, Tensor mask, Tensor tokenRewards, Tensor baselineRewards, Tensor oldLogp,
                         Tensor sumPiSquared, Tensor isWeights) {
        /** The sequence-level estimators' inputs: rewards [S] (gdpo: [K, S]), the groups, the response mask [S, T]. */
        public static Inputs grouped(Tensor rewards, GroupLayout groups, Tensor mask) {
            return new Inputs(rewards, groups, mask, null, null, null, null, null);
        }

        /** reinforce_plus_plus's and remax's inputs: token rewards and the response mask, [S, T]. */
        public static Inputs tokens(Tensor tokenRewards, Tensor mask) {
            return new Inputs(null, null, mask, tokenRewards, null, null, null, null);
        }

        /** optimal_token_baseline's inputs ({@code isWeights} may be null). */
        public static Inputs optimalTokenBaseline(Tensor tokenRewards, GroupLayout groups, Tensor mask, Tensor oldLogp,
                                                  Tensor sumPiSquared, Tensor isWeights) {
            return new Inputs(null, groups, mask, tokenRewards, null, oldLogp, sumPiSquared, isWeights);
        }

        /** The same with remax's greedy-baseline rewards [S]. */
        public Inputs withBaselineRewards(Tensor baseline) {
            return new Inputs(rewards, groups, mask, tokenRewards, baseline, oldLogp, sumPiSquared, isWeights);
        }
    }
}
