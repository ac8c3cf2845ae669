package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Clipped importance-ratio policy losses, forward and dL/dlogp fused (ARCHITECTURE §5.3). Per kept
 * token i (mask m_i = 1) of a flat batch of N tokens:
 *
 * <pre>
 *   d_i = clamp(logp_i - old_i, -20, 20),  r_i = exp(d_i)                        ratio: token
 *   r_i = exp(clamp(sum_{j in s} m_j (logp_j - old_j) / n_s, lo, hi))            ratio: sequence, sequence-token
 *   ppo:        l = max(-A r', -A clip(r, 1 - eps_low, 1 + eps_high)); for A &lt; 0 with dual clip c &gt; 1: min(l, -c A);
 *               r' = min(r, delta) with the two-sided bound delta &gt; 1 (TRL, INTELLECT-2), else r
 *   cispo:      l = -sg(clip(r, 1 - eps_low, 1 + eps_high)) A logp               (gradient -clip(r) A)
 *   reinforce:  l = -A logp                                                      (verl's gpg)
 *   sapo:       l = -A 4/tau sigmoid(tau (r - 1)),  tau = tau_pos (A &gt; 0) or tau_neg
 *   dro:        l = -(A logp - beta/2 (logp - old)^2)                            (the log-ratio unclamped)
 *   dppo_tv:    l = -A sg(min(r, c)) logp  where A &gt; 0 ? p - p_old &lt;= eps_high : p - p_old &gt;= -eps_low, else 0
 *   dppo_kl:    the same with the binary KL  p_old log(p_old / p) + (1 - p_old) log((1 - p_old) / (1 - p)) &lt;= eps
 *               (or p &lt;= p_old for A &gt; 0, p &gt;= p_old for A &lt;= 0);  p = exp(logp), c the dual clip (0: none)
 *   geo_mean:   per sequence -mean(A) exp(mean_t x_t) / D, x_t = min(d_t, eps_high) (A &gt; 0), max(d_t, -eps_low) (A &lt; 0),
 *               0 (A = 0), d_t = logp - old (GMPO; its weight the geometric mean of the tokens'; a seq-mean aggregation)
 *   vespo:      l = -sg(phi) A logp, phi = exp(lambda + k log w - lambda w), log w = clamp(sum_t clamp(d_t, +-20)
 *               + sum_t log of the token weights, log 1e-8, 20); (k, lambda) by the sign of A (TRL's VESPO)
 *   plus        kl_coef * k(logp, ref)  (k1 logp - ref; k2 (logp - ref)^2 / 2; k3 exp(ref - logp) - (ref - logp) - 1,
 *               clamped to [-10, 10]; abs |logp - ref|)   and   - entropy_coef * H_i
 * </pre>
 *
 * The loss is L = sum_i w_i l_i with w_i = m_i / D (token-mean, seq-mean-token-sum,
 * seq-mean-token-sum-norm, token-sum) or m_i / (n_s D) (seq-mean-token-mean), n_s the kept tokens
 * of i's sequence. The denominator D is explicit: pass the global token count (token-mean), the
 * global sequence count (seq-mean-*) or a constant (…-norm, Dr. GRPO) and the losses and gradients
 * of micro-batches or data-parallel ranks sum to exactly those of the whole batch. Left unset
 * (NaN), D is what the mode implies for this batch alone: its kept tokens, its sequences with a
 * kept token, its longest sequence, or 1 (token-sum).
 *
 * <p>For the sequence ratio the gradient is the true derivative of r_s: dr_s/dlogp_j = r_s m_j /
 * n_s (TRL's sequence level); the sequence-token ratio has r_s's value and each token's own
 * gradient, r = sg(r_s) p_j / sg(p_j) (verl's GSPO: the two agree when advantages are constant
 * within a sequence). The off-policy sequence mask ({@link Options#offPolicyMaskThreshold()})
 * drops the policy-gradient term of tokens with A &lt; 0 in sequences whose mean of (sampler - logp)
 * exceeds the threshold. Statistics: the loss, kept tokens and sequences, clipped tokens (high:
 * the upper clip binds, low: the lower clip binds, dual: the dual clip binds; DPPO: left the trust
 * region on the A &gt; 0 / A &lt;= 0 side, truncated), sum of old - logp (approximate KL), and the
 * ratio's sum, min and max over kept tokens — sums, so micro-batches combine with {@link Stats#merge}.
 *
 * <p><b>Rollout correction</b> ({@link RolloutCorrection}; verl's {@code rollout_is}, {@code rollout_rs}):
 * the tokens were sampled by a rollout engine whose log-probs (rollout) differ from the trainer's.
 * With d = old - rollout per token (in bypass mode d = logp - old, old being the rollout policy),
 * each kept token's policy-gradient term (not the KL or entropy terms) is multiplied by a detached
 * weight w: exp(clamp(x, -20, 20)) of x = d (token), the sequence's sum of d (sequence: the product
 * of the token ratios) or its mean (geometric); truncated at an upper threshold (TIS) or set to 0
 * outside [lower, upper] (mask, IcePop); optionally divided by its batch mean (given, for
 * micro-batches, or this batch's). Rejection removes tokens or whole sequences whose mismatch
 * statistic (k1 = -d within log bounds, k2 = d^2 / 2, k3 = e^d - 1 - d under an upper bound; per
 * token, or a sequence's sum, mean or max) is out of bounds: they leave the mask, and with it the
 * denominators. The statistics add the correction's metrics as sums (see {@link Stats}).
 */
public final class PolicyLoss {
    private PolicyLoss() {}

    /** The loss of a token (or sequence): the formulas of this class's summary, by verl's names ({@link PolicyLossKeys}). */
    public enum LossType {
        /** PPO's clipped surrogate (verl's vanilla), with the dual clip and TRL's delta. */
        PPO,
        /** CISPO: the clipped ratio, detached, times A logp. */
        CISPO,
        /** -A logp (verl's gpg). */
        REINFORCE,
        /** SAPO: a sigmoid gate of temperature tau_pos or tau_neg. */
        SAPO,
        /** DRO: A logp minus a quadratic penalty of the log-ratio. */
        DRO,
        /** DPPO with the total-variation trust region. */
        DPPO_TV,
        /** DPPO with the binary-KL trust region. */
        DPPO_KL,
        /** GMPO: the geometric mean of the clipped token ratios per sequence. */
        GEO_MEAN,
        /** TRL's VESPO: a detached sequence weight phi(w) times A logp. */
        VESPO,
        /** verl's clip_cov: PPO, with tokens chosen by the covariance of A and logp detached. */
        CLIP_COV,
        /** verl's kl_cov: PPO plus a KL penalty on tokens chosen by that covariance. */
        KL_COV;

        /** The loss of its name (case-insensitive), refused naming "loss" otherwise. */
        public static LossType parse(String s) {
            return PolicyLoss.parse(LossType.class, "loss", s);
        }

        @Override
        public String toString() {
            return PolicyLoss.display(this);
        }
    }

    /** Where the importance ratio lives. */
    public enum RatioLevel {
        /** One ratio per token. */
        TOKEN,
        /** The sequence's ratio, exp of the mean log-ratio, with its true derivative (TRL's GSPO). */
        SEQUENCE,
        /** The sequence ratio's value with each token's own gradient (verl's GSPO). */
        SEQUENCE_TOKEN;

        /** The level of its name, refused naming "ratio" otherwise. */
        public static RatioLevel parse(String s) {
            return PolicyLoss.parse(RatioLevel.class, "ratio", s);
        }

        @Override
        public String toString() {
            return PolicyLoss.display(this);
        }
    }

    /** verl's loss_agg_mode: how token losses become the batch's loss (over the global denominator). */
    public enum Aggregation {
        /** The sum over kept tokens over the number of kept tokens. */
        TOKEN_MEAN,
        /** The mean over sequences of each sequence's token mean. */
        SEQ_MEAN_TOKEN_MEAN,
        /** The mean over sequences of each sequence's token sum. */
        SEQ_MEAN_TOKEN_SUM,
        /** The sum over sequences of token sums, over a fixed horizon (Dr. GRPO). */
        SEQ_MEAN_TOKEN_SUM_NORM,
        /** The sum over kept tokens. */
        TOKEN_SUM;

        /** Whether it needs sequences (the seq-* modes). */
        public boolean perSequence() {
            return this != TOKEN_MEAN && this != TOKEN_SUM;
        }

        /** The mode of its name (verl's, with dashes), refused naming "agg" otherwise. */
        public static Aggregation parse(String s) {
            return PolicyLoss.parse(Aggregation.class, "agg", s);
        }

        @Override
        public String toString() {
            return PolicyLoss.display(this);
        }
    }

    /**
     * KL(pi || ref) per token from d = logp - ref: k1 = d, k2 = d^2 / 2, k3 = exp(-d) + d - 1 (capped
     * at 10), abs = |d|; and verl's straight-through "k1+" and "k3+", k1's or k3's value with k2's
     * gradient d (unbiased: the expected gradient of k1 and k3 is not the KL's).
     */
    public enum KlEstimator {
        /** No KL penalty. */
        NONE,
        /** d. */
        K1,
        /** d^2 / 2 (verl's mse). */
        K2,
        /** exp(-d) + d - 1, capped at 10 (verl's low_var_kl). */
        K3,
        /** |d|. */
        ABS,
        /** k1's value, k2's gradient. */
        K1_PLUS("k1+"),
        /** k3's value, k2's gradient. */
        K3_PLUS("k3+");

        private final String key;

        KlEstimator() {
            this.key = null;
        }

        KlEstimator(String key) {
            this.key = key;
        }

        /** The estimator of its name (k1, kl, mse, low_var_kl, k3+, ...), refused naming "kl" otherwise. */
        public static KlEstimator parse(String s) {
            return PolicyLoss.parse(KlEstimator.class, "kl", s);
        }

        @Override
        public String toString() {
            return key != null ? key : PolicyLoss.display(this);
        }
    }

    private static <E extends Enum<E>> E parse(Class<E> type, String arg, String s) {
        for (E e : type.getEnumConstants()) {
            if (e.toString().equals(s.trim().toLowerCase(Locale.ROOT))) {
                return e;
            }
        }
        StringBuilder names = new StringBuilder();
        for (E e : type.getEnumConstants()) {
            names.append(names.length() > 0 ? ", " : "").append(e);
        }
        throw Check.fail(arg, "one of " + names, s);
    }

    private static String display(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    /**
     * Everything but the tensors. {@code denominator} NaN: implied by the batch (see the class
     * comment); {@code rollout}: the rollout correction ({@link RolloutCorrection#none()}: off).
     */
    public record Config(LossType loss, RatioLevel ratio, float clipLow, float clipHigh, float dualClip,
                         Aggregation aggregation, double denominator, KlEstimator kl, float klCoef, float entropyCoef,
                         RolloutCorrection rollout, Options options, Selection selection) {
        /** Checks every component, refusing a bad one by name (the expected and the found value). */
        public Config {
            if (loss == null || ratio == null || aggregation == null || kl == null || rollout == null || options == null
                    || selection == null) {
                throw Check.fail("config", "a loss type, ratio level, aggregation, KL estimator, rollout correction and options", "null");
            }
            Check.clipping(clipLow, clipHigh, dualClip);
            if (!Double.isNaN(denominator) && !(denominator > 0 && Double.isFinite(denominator))) {
                throw Check.fail("denominator", "a finite number > 0, or NaN for the count the mode implies", denominator);
            }
            if (!Float.isFinite(klCoef)) {
                throw Check.fail("klCoef", "a finite number", klCoef);
            }
            if (!Float.isFinite(entropyCoef)) {
                throw Check.fail("entropyCoef", "a finite number", entropyCoef);
            }
        }

        /**
         * The checks between components, which a chain of withers may pass through on its way
         * (so they are made when the op is called, not here): geo_mean and vespo take the token
         * ratio, geo_mean a seq-mean aggregation, vespo token weights, bypass mode ppo or reinforce.
         */
        public void requireConsistent() {
            if ((loss == LossType.GEO_MEAN || loss == LossType.VESPO) && ratio != RatioLevel.TOKEN) {
                throw Check.fail("ratio", "token for " + loss + " (its sequence term is its own)", ratio);
            }
            if (loss == LossType.GEO_MEAN && !aggregation.perSequence()) {
                throw Check.fail("agg", "a seq-mean aggregation for geo_mean (its loss is a mean over sequences)", aggregation);
            }
            if (loss == LossType.VESPO && rollout.level() != WeightLevel.NONE && rollout.level() != WeightLevel.TOKEN) {
                throw Check.fail("rollout_is", "token weights for vespo (TRL's token_truncate, token_mask)", rollout.level());
            }
            if (rollout.bypass() && loss != LossType.PPO && loss != LossType.REINFORCE) {
                throw Check.fail("rollout.bypass", "the ppo or reinforce loss (verl's bypass loss_type ppo_clip, reinforce)", loss);
            }
            if ((loss == LossType.CLIP_COV || loss == LossType.KL_COV) && ratio != RatioLevel.TOKEN) {
                throw Check.fail("ratio", "token for " + loss, ratio);
            }
        }

        /** Whether a batch statistic of the token selections is still to be found (NaN): the op finds this batch's. */
        public boolean selectsOnThisBatch() {
            boolean cov = loss == LossType.CLIP_COV || loss == LossType.KL_COV;
            return selection.topEntropyQuantile() < 1 && Double.isNaN(selection.entropyThreshold())
                    || cov && (Double.isNaN(selection.covMeanAdvantage()) || Double.isNaN(selection.covMeanLogp())
                    || Double.isNaN(selection.covThreshold()));
        }

        /** Without a rollout correction or options. */
        public Config(LossType loss, RatioLevel ratio, float clipLow, float clipHigh, float dualClip, Aggregation aggregation,
                      double denominator, KlEstimator kl, float klCoef, float entropyCoef) {
            this(loss, ratio, clipLow, clipHigh, dualClip, aggregation, denominator, kl, klCoef, entropyCoef, RolloutCorrection.none(),
                    Options.defaults(), Selection.none());
        }

        /** PPO, token ratio, clip 0.2 both sides, no dual clip, token-mean, implied denominator, no KL or entropy, no correction. */
        public static Config defaults() {
            return new Config(LossType.PPO, RatioLevel.TOKEN, 0.2f, 0.2f, 0f, Aggregation.TOKEN_MEAN, Double.NaN,
                    KlEstimator.NONE, 0f, 0f, RolloutCorrection.none(), Options.defaults(), Selection.none());
        }

        /** The same with another loss. */
        public Config withLoss(LossType l) {
            return new Config(l, ratio, clipLow, clipHigh, dualClip, aggregation, denominator, kl, klCoef, entropyCoef, rollout, options, selection);
        }

        /** The same with another ratio level. */
        public Config withRatio(RatioLevel r) {
            return new Config(loss, r, clipLow, clipHigh, dualClip, aggregation, denominator, kl, klCoef, entropyCoef, rollout, options, selection);
        }

        /** The same with other clip bounds (epsilon_low, epsilon_high). */
        public Config withClip(float low, float high) {
            return new Config(loss, ratio, low, high, dualClip, aggregation, denominator, kl, klCoef, entropyCoef, rollout, options, selection);
        }

        /** The same with the dual clip c (0: off). */
        public Config withDualClip(float c) {
            return new Config(loss, ratio, clipLow, clipHigh, c, aggregation, denominator, kl, klCoef, entropyCoef, rollout, options, selection);
        }

        /** The same with another aggregation. */
        public Config withAggregation(Aggregation a) {
            return new Config(loss, ratio, clipLow, clipHigh, dualClip, a, denominator, kl, klCoef, entropyCoef, rollout, options, selection);
        }

        /** The same with the global denominator (NaN: the batch's own). */
        public Config withDenominator(double d) {
            return new Config(loss, ratio, clipLow, clipHigh, dualClip, aggregation, d, kl, klCoef, entropyCoef, rollout, options, selection);
        }

        /** The same with a KL penalty against the reference policy. */
        public Config withKl(KlEstimator k, float coef) {
            return new Config(loss, ratio, clipLow, clipHigh, dualClip, aggregation, denominator, k, coef, entropyCoef, rollout, options, selection);
        }

        /** The same with an entropy bonus coefficient. */
        public Config withEntropyCoef(float coef) {
            return new Config(loss, ratio, clipLow, clipHigh, dualClip, aggregation, denominator, kl, klCoef, coef, rollout, options, selection);
        }

        /** The same with a rollout correction. */
        public Config withRollout(RolloutCorrection rc) {
            return new Config(loss, ratio, clipLow, clipHigh, dualClip, aggregation, denominator, kl, klCoef, entropyCoef, rc, options, selection);
        }

        /** The same with token selections (entropy quantile, covariance). */
        public Config withSelection(Selection sel) {
            return new Config(loss, ratio, clipLow, clipHigh, dualClip, aggregation, denominator, kl, klCoef, entropyCoef, rollout, options,
                    sel);
        }

        /** The same with other loss options. */
        public Config withOptions(Options o) {
            return new Config(loss, ratio, clipLow, clipHigh, dualClip, aggregation, denominator, kl, klCoef, entropyCoef, rollout, o, selection);
        }

        /** Whether the op needs to know the sequences. */
        public boolean needsSequences() {
            return ratio != RatioLevel.TOKEN || aggregation.perSequence() || rollout.needsSequences()
                    || !Double.isNaN(options.offPolicyMaskThreshold());
        }

        /**
         * Whether the correction's weights multiply the loss: when a weight level is set, except in
         * bypass mode with the PPO loss, whose ratio to the rollout policy already is the weight
         * (verl computes them there for the metrics only), and for vespo, whose phi takes them in.
         */
        public boolean appliesWeights() {
            return rollout.level() != WeightLevel.NONE && !(rollout.bypass() && loss == LossType.PPO) && loss != LossType.VESPO;
        }
    }

    /**
     * The options of particular losses: SAPO's gate temperatures {@code tauPos} (A &gt; 0) and
     * {@code tauNeg} (verl: 1.0, 1.05); DRO's penalty {@code droBeta} (0.1); {@code delta}, a bound
     * on the ratio in PPO's unclipped term (TRL's two-sided clip, INTELLECT-2; 0 = off); the
     * off-policy sequence mask's threshold on a sequence's mean of (sampler - logp), the sampler
     * being the rollout policy when given, else old, applied to tokens with A &lt; 0 (TRL's
     * off_policy_mask_threshold, DeepSeek-V3.2; NaN = off); and the bounds of a sequence ratio's
     * logarithm ([-20, 20]; verl's GSPO caps it at 10 only; geo_mean's ratio too); VESPO's k and
     * lambda for A &gt;= 0 and A &lt; 0 (TRL: 2, 3, 3, 2).
     */
    public record Options(float tauPos, float tauNeg, float droBeta, float delta, double offPolicyMaskThreshold,
                          double seqLogMin, double seqLogMax, float vespoKPos, float vespoLambdaPos, float vespoKNeg,
                          float vespoLambdaNeg) {
        /** Checks every component, refusing a bad one by name (the expected and the found value). */
        public Options {
            if (!(tauPos > 0 && Float.isFinite(tauPos))) {
                throw Check.fail("tau_pos", "a finite number > 0", tauPos);
            }
            if (!(tauNeg > 0 && Float.isFinite(tauNeg))) {
                throw Check.fail("tau_neg", "a finite number > 0", tauNeg);
            }
            if (!(droBeta >= 0 && Float.isFinite(droBeta))) {
                throw Check.fail("dro_beta", "a finite number >= 0", droBeta);
            }
            if (!(delta == 0 || delta > 1 && Float.isFinite(delta))) {
                throw Check.fail("delta", "0 (off) or a finite number > 1", delta);
            }
            if (Double.isInfinite(offPolicyMaskThreshold)) {
                throw Check.fail("off_policy_mask_threshold", "a finite number, or NaN for off", offPolicyMaskThreshold);
            }
            if (!(seqLogMin < seqLogMax) || Double.isNaN(seqLogMin) || seqLogMin > 0 || seqLogMax < 0) {
                throw Check.fail("seqLogMin", "bounds seqLogMin <= 0 <= seqLogMax of a sequence ratio's log", seqLogMin + ", " + seqLogMax);
            }
            for (float v : new float[] {vespoKPos, vespoLambdaPos, vespoKNeg, vespoLambdaNeg}) {
                if (!Float.isFinite(v)) {
                    throw Check.fail("vespo", "finite k and lambda", vespoKPos + ", " + vespoLambdaPos + ", " + vespoKNeg + ", "
                            + vespoLambdaNeg);
                }
            }
        }

        /** verl's and TRL's defaults. */
        public static Options defaults() {
            return new Options(1.0f, 1.05f, 0.1f, 0f, Double.NaN, -20, 20, 2f, 3f, 3f, 2f);
        }

        /** The same with SAPO's temperatures for A &gt; 0 and A &lt; 0. */
        public Options withSapoTemperatures(float pos, float neg) {
            return new Options(pos, neg, droBeta, delta, offPolicyMaskThreshold, seqLogMin, seqLogMax, vespoKPos, vespoLambdaPos,
                    vespoKNeg, vespoLambdaNeg);
        }

        /** The same with DRO's beta. */
        public Options withDroBeta(float beta) {
            return new Options(tauPos, tauNeg, beta, delta, offPolicyMaskThreshold, seqLogMin, seqLogMax, vespoKPos, vespoLambdaPos,
                    vespoKNeg, vespoLambdaNeg);
        }

        /** The same with TRL's two-sided ratio bound delta (&gt; 1). */
        public Options withDelta(float d) {
            return new Options(tauPos, tauNeg, droBeta, d, offPolicyMaskThreshold, seqLogMin, seqLogMax, vespoKPos, vespoLambdaPos,
                    vespoKNeg, vespoLambdaNeg);
        }

        /** The same with TRL's off-policy sequence mask threshold. */
        public Options withOffPolicyMask(double threshold) {
            return new Options(tauPos, tauNeg, droBeta, delta, threshold, seqLogMin, seqLogMax, vespoKPos, vespoLambdaPos, vespoKNeg,
                    vespoLambdaNeg);
        }

        /** The same with bounds of the sequence log-ratio. */
        public Options withSequenceLogBounds(double min, double max) {
            return new Options(tauPos, tauNeg, droBeta, delta, offPolicyMaskThreshold, min, max, vespoKPos, vespoLambdaPos, vespoKNeg,
                    vespoLambdaNeg);
        }

        /** VESPO's gamma weighting: k and lambda for A &gt;= 0 and for A &lt; 0 (TRL: 2, 3, 3, 2). */
        public Options withVespo(float kPos, float lambdaPos, float kNeg, float lambdaNeg) {
            return new Options(tauPos, tauNeg, droBeta, delta, offPolicyMaskThreshold, seqLogMin, seqLogMax, kPos, lambdaPos, kNeg,
                    lambdaNeg);
        }
    }

    /**
     * Token selections by a batch statistic. TRL's {@code top_entropy_quantile} rho (1 = off): only
     * tokens whose entropy is at least the batch's (1 - rho) quantile keep their policy-gradient
     * term ({@code entropyThreshold}, NaN: this batch's; the entropy input is needed). verl's
     * covariance losses, over the kept tokens' cov = (A - mean A)(logp - mean logp): kl_cov adds
     * {@code ppoKlCoef} |logp - old| to the top {@code covRatio} of them (at least one; the
     * threshold the smallest selected cov), clip_cov detaches {@code covRatio} of the candidates lb
     * &lt; cov &lt; ub its clip leaves unclipped, chosen by the smallest keys {@code rlk_select_key(seed,
     * tokenOffset + i)} (the threshold the largest chosen key). Every statistic left NaN is this
     * batch's (found on the host); pass the whole batch's ({@code PolicyLossSelection.resolve}) and
     * the token offset of each micro-batch, and the selections are the whole batch's. verl's
     * defaults: ratio 2e-4, lb 1, ub 5, ppo_kl_coef 0.1.
     */
    public record Selection(double topEntropyQuantile, double entropyThreshold, double covRatio, double covLow, double covHigh,
                            float ppoKlCoef, double covMeanAdvantage, double covMeanLogp, double covThreshold, long seed,
                            long tokenOffset) {
        /** Checks every component, refusing a bad one by name (the expected and the found value). */
        public Selection {
            if (!(topEntropyQuantile > 0 && topEntropyQuantile <= 1)) {
                throw Check.fail("top_entropy_quantile", "a number in (0, 1]", topEntropyQuantile);
            }
            if (!(covRatio > 0 && covRatio <= 1)) {
                throw Check.fail("cov_ratio", "a number in (0, 1] (clip_cov_ratio, kl_cov_ratio)", covRatio);
            }
            if (!(covLow < covHigh)) {
                throw Check.fail("clip_cov_lb", "lb < ub", covLow + ", " + covHigh);
            }
            if (!Float.isFinite(ppoKlCoef)) {
                throw Check.fail("ppo_kl_coef", "a finite number", ppoKlCoef);
            }
            if (seed < 0 || seed >= 1L << 53 || tokenOffset < 0 || tokenOffset >= 1L << 53) {
                throw Check.fail("seed", "a seed and token offset in [0, 2^53)", seed + ", " + tokenOffset);
            }
        }

        /** No selection: every kept token carries gradient. */
        public static Selection none() {
            return new Selection(1, Double.NaN, 2e-4, 1, 5, 0.1f, Double.NaN, Double.NaN, Double.NaN, 0, 0);
        }

        /** The same keeping only the top rho (in (0, 1]) of tokens by entropy. */
        public Selection withTopEntropyQuantile(double rho) {
            return new Selection(rho, entropyThreshold, covRatio, covLow, covHigh, ppoKlCoef, covMeanAdvantage, covMeanLogp,
                    covThreshold, seed, tokenOffset);
        }

        /** The same with clip_cov's or kl_cov's covariance selection (ratio, bounds, kl_cov's coefficient). */
        public Selection withCovariance(double ratio, double lb, double ub, float klCoef) {
            return new Selection(topEntropyQuantile, entropyThreshold, ratio, lb, ub, klCoef, covMeanAdvantage, covMeanLogp,
                    covThreshold, seed, tokenOffset);
        }

        /** The same with clip_cov's seed and this part's token offset in the whole batch. */
        public Selection withSeed(long s, long offset) {
            return new Selection(topEntropyQuantile, entropyThreshold, covRatio, covLow, covHigh, ppoKlCoef, covMeanAdvantage,
                    covMeanLogp, covThreshold, s, offset);
        }

        /** The batch statistics: the entropy threshold, the covariance means and threshold (NaN: this batch's). */
        public Selection withStatistics(double entropy, double meanAdvantage, double meanLogp, double cov) {
            return new Selection(topEntropyQuantile, entropy, covRatio, covLow, covHigh, ppoKlCoef, meanAdvantage, meanLogp, cov, seed,
                    tokenOffset);
        }
    }

    /** The rollout correction's weight level (verl's rollout_is: token, sequence; and the geometric mean). */
    public enum WeightLevel {
        /** No weights. */
        NONE,
        /** A weight per token. */
        TOKEN,
        /** The product over the sequence. */
        SEQUENCE,
        /** The geometric mean over the sequence. */
        GEOMETRIC;

        /** The level of its name, refused naming rollout_is otherwise. */
        public static WeightLevel parse(String s) {
            return PolicyLoss.parse(WeightLevel.class, "rollout_is", s);
        }

        @Override
        public String toString() {
            return PolicyLoss.display(this);
        }
    }

    /** What the threshold does to a weight: truncate it above (TIS) or zero it outside [lower, upper] (IcePop). */
    public enum WeightMode {
        /** Truncated above the threshold (TIS). */
        TRUNCATE,
        /** Zeroed outside [lower, upper] (IcePop). */
        MASK;

        @Override
        public String toString() {
            return PolicyLoss.display(this);
        }
    }

    /**
     * One rejection criterion (verl's rollout_rs options): a statistic of d = log(prox / rollout)
     * per token or per sequence, kept within [lower, upper]. For the k1 options the bounds are
     * ratio bounds (the statistic -d is compared with their logarithms); k2 and k3 have an upper
     * bound only (lower is 0).
     */
    public record Rejection(Option option, double lower, double upper) {
        /** verl's names: token_k1 .. seq_max_k3; the codes are rlk_contract.h's RLK_RS_*. */
        public enum Option {
            /** Per token, on the ratio. */
            TOKEN_K1,
            /** Per token, on k2. */
            TOKEN_K2,
            /** Per token, on k3. */
            TOKEN_K3,
            /** Per sequence, the sum of the log-ratios. */
            SEQ_SUM_K1,
            /** Per sequence, the sum of k2. */
            SEQ_SUM_K2,
            /** Per sequence, the sum of k3. */
            SEQ_SUM_K3,
            /** Per sequence, the mean log-ratio. */
            SEQ_MEAN_K1,
            /** Per sequence, the mean of k2. */
            SEQ_MEAN_K2,
            /** Per sequence, the mean of k3. */
            SEQ_MEAN_K3,
            /** Per sequence, the largest k2. */
            SEQ_MAX_K2,
            /** Per sequence, the largest k3. */
            SEQ_MAX_K3;

            /** Whether its bounds are ratio bounds (the k1 options). */
            public boolean k1() {
                return name().endsWith("K1");
            }

            /** Whether it rejects whole sequences. */
            public boolean perSequence() {
                return !name().startsWith("TOKEN");
            }

            @Override
            public String toString() {
                return name().toLowerCase(Locale.ROOT);
            }

            /** The option of verl's name, refused naming rollout_rs otherwise. */
            public static Option parse(String s) {
                return PolicyLoss.parse(Option.class, "rollout_rs", s);
            }
        }

        /** Checks every component, refusing a bad one by name (the expected and the found value). */
        public Rejection {
            if (option == null) {
                throw Check.fail("rollout_rs", "an option", "null");
            }
            if (option.k1()) {
                if (!(lower > 0 && upper >= lower && Double.isFinite(upper))) {
                    throw Check.fail("rollout_rs_threshold", "ratio bounds 0 < lower <= upper for " + option, lower + "_" + upper);
                }
            } else if (lower != 0 || !(upper > 0 && Double.isFinite(upper))) {
                throw Check.fail("rollout_rs_threshold", "one finite upper bound > 0 for " + option, lower == 0 ? upper : lower + "_" + upper);
            }
        }

        /**
         * verl's syntax: {@code rs} comma-separated options, {@code threshold} one spec for all or
         * one per option; a spec is a number (k1: the upper ratio bound, the lower its reciprocal)
         * or, for k1, {@code "lower_upper"}.
         */
        public static List<Rejection> parse(String rs, String threshold) {
            List<Option> options = new ArrayList<>();
            for (String part : rs.split(",")) {
                if (!part.isBlank()) {
                    Option o = Option.parse(part);
                    if (!options.contains(o)) {
                        options.add(o);
                    }
                }
            }
            if (options.isEmpty()) {
                throw Check.fail("rollout_rs", "one or more of " + Arrays.toString(Option.values()), rs);
            }
            if (threshold == null || threshold.isBlank()) {
                throw Check.fail("rollout_rs_threshold", "a threshold for " + options, "none");
            }
            List<String> specs = new ArrayList<>();
            for (String part : threshold.split(",")) {
                if (!part.isBlank()) {
                    specs.add(part.trim());
                }
            }
            if (specs.size() != 1 && specs.size() != options.size()) {
                throw Check.fail("rollout_rs_threshold", "one threshold, or one per option (" + options.size() + ")", threshold);
            }
            List<Rejection> out = new ArrayList<>();
            for (int i = 0; i < options.size(); i++) {
                Option o = options.get(i);
                String spec = specs.get(specs.size() == 1 ? 0 : i);
                int us = spec.indexOf('_');
                if (us >= 0 && !o.k1()) {
                    throw Check.fail("rollout_rs_threshold", "a single upper bound for " + o, spec);
                }
                double upper = number("rollout_rs_threshold", us >= 0 ? spec.substring(us + 1) : spec);
                double lower = us >= 0 ? number("rollout_rs_threshold", spec.substring(0, us)) : o.k1() ? 1 / upper : 0;
                out.add(new Rejection(o, lower, upper));
            }
            return List.copyOf(out);
        }

        /** The bounds the kernels compare the statistic with: log bounds for k1. */
        public double[] bounds() {
            return option.k1() ? new double[] {Math.log(lower), Math.log(upper)}
                    : new double[] {Double.NEGATIVE_INFINITY, upper};
        }
    }

    private static double number(String arg, String s) {
        try {
            return Double.parseDouble(s.trim());
        } catch (NumberFormatException e) {
            throw Check.fail(arg, "a number", s);
        }
    }

    /**
     * The rollout correction (see the class comment). {@code lower} and {@code upper} are the
     * weight's thresholds: for TRUNCATE, upper &gt;= 1 truncates and lower = 1 / upper only bounds the
     * metrics; for MASK, weights outside [lower, upper] are 0. {@code normalizer}: the batch mean
     * the weights are divided by when {@code batchNormalize}, NaN for this batch's (pass the global
     * one to micro-batches: {@link Stats#rolloutIsBatchMean()} of the whole batch). {@code bypass}:
     * old is the rollout policy and the weights are between logp and it (detached).
     */
    public record RolloutCorrection(WeightLevel level, WeightMode mode, double lower, double upper, boolean batchNormalize,
                                    double normalizer, List<Rejection> rejection, boolean bypass) {
        /** Checks every component, refusing a bad one by name (the expected and the found value). */
        public RolloutCorrection {
            if (level == null || mode == null || rejection == null) {
                throw Check.fail("rollout", "a weight level, mode and rejection list", "null");
            }
            rejection = List.copyOf(rejection);
            if (level != WeightLevel.NONE) {
                if (mode == WeightMode.TRUNCATE && !(upper >= 1 && Double.isFinite(upper))) {
                    throw Check.fail("rollout_is_threshold", "a finite truncation threshold >= 1", upper);
                }
                if (mode == WeightMode.MASK && !(lower >= 0 && lower <= upper && Double.isFinite(upper) && upper > 0)) {
                    throw Check.fail("rollout_is_threshold", "bounds 0 <= lower <= upper (lower_upper)", lower + "_" + upper);
                }
                if (mode == WeightMode.TRUNCATE) {
                    lower = 1 / upper;
                }
            }
            if (!Double.isNaN(normalizer) && !(normalizer > 0 && Double.isFinite(normalizer))) {
                throw Check.fail("rollout_is_normalizer", "a finite number > 0, or NaN for this batch's mean", normalizer);
            }
        }

        /** No correction. */
        public static RolloutCorrection none() {
            return new RolloutCorrection(WeightLevel.NONE, WeightMode.TRUNCATE, 0.5, 2.0, false, Double.NaN, List.of(), false);
        }

        /** verl's rollout_is with threshold: truncated weights at this level. */
        public static RolloutCorrection truncated(WeightLevel level, double threshold) {
            return none().withWeights(level).withTruncation(threshold);
        }

        /** The same with another weight level. */
        public RolloutCorrection withWeights(WeightLevel l) {
            return new RolloutCorrection(l, mode, lower, upper, batchNormalize, normalizer, rejection, bypass);
        }

        /** Truncated importance sampling: w = min(w, threshold). */
        public RolloutCorrection withTruncation(double threshold) {
            return new RolloutCorrection(level, WeightMode.TRUNCATE, 1 / threshold, threshold, batchNormalize, normalizer, rejection, bypass);
        }

        /** IcePop's two-sided mask: w = 0 outside [lo, hi]. */
        public RolloutCorrection withMask(double lo, double hi) {
            return new RolloutCorrection(level, WeightMode.MASK, lo, hi, batchNormalize, normalizer, rejection, bypass);
        }

        /**
         * verl's rollout_is_threshold: a number truncates (TIS), {@code "lower_upper"} masks
         * (IcePop).
         */
        public RolloutCorrection withThreshold(String spec) {
            int us = spec.indexOf('_');
            return us < 0 ? withTruncation(number("rollout_is_threshold", spec))
                    : withMask(number("rollout_is_threshold", spec.substring(0, us)), number("rollout_is_threshold", spec.substring(us + 1)));
        }

        /** Divide the weights by their batch mean: {@code mean} given (NaN: this batch's). */
        public RolloutCorrection withBatchNormalize(boolean on, double mean) {
            return new RolloutCorrection(level, mode, lower, upper, on, mean, rejection, bypass);
        }

        /** The same with these rejection criteria (all must hold). */
        public RolloutCorrection withRejection(List<Rejection> r) {
            return new RolloutCorrection(level, mode, lower, upper, batchNormalize, normalizer, r, bypass);
        }

        /** The same in bypass mode (old is the rollout policy). */
        public RolloutCorrection withBypass(boolean on) {
            return new RolloutCorrection(level, mode, lower, upper, batchNormalize, normalizer, rejection, on);
        }

        /** Whether this needs the rollout log-probs as an input (a weight or a rejection, not in bypass mode). */
        public boolean needsRolloutLogp() {
            return !bypass && (level != WeightLevel.NONE || !rejection.isEmpty());
        }

        /** Whether a weight or a criterion is per sequence. */
        public boolean needsSequences() {
            return level == WeightLevel.SEQUENCE || level == WeightLevel.GEOMETRIC
                    || rejection.stream().anyMatch(r -> r.option().perSequence());
        }
    }

    /**
     * The per-token inputs, all [N]: logp, old logp and advantages f32; mask f32 or u8; the
     * sequences (needed by the sequence ratio, the seq-* modes and the per-sequence corrections);
     * optional reference logp (for KL), entropy (for the bonus) and rollout logp (for the rollout
     * correction; in bypass mode old is the rollout's and this stays null). Every value must be
     * finite, padding included.
     */
    public record Inputs(Tensor logp, Tensor oldLogp, Tensor advantages, Tensor mask, SequenceLayout sequences,
                         Tensor refLogp, Tensor entropy, Tensor rolloutLogp) {
        /** Token-level inputs [N]: log-probs, the old policy's, advantages (f32) and the mask (f32 or u8). */
        public Inputs(Tensor logp, Tensor oldLogp, Tensor advantages, Tensor mask) {
            this(logp, oldLogp, advantages, mask, null, null, null, null);
        }

        /** Inputs with sequences, reference log-probs and entropies (no rollout log-probs). */
        public Inputs(Tensor logp, Tensor oldLogp, Tensor advantages, Tensor mask, SequenceLayout sequences, Tensor refLogp,
                      Tensor entropy) {
            this(logp, oldLogp, advantages, mask, sequences, refLogp, entropy, null);
        }

        /** The same with the sequences of the tokens. */
        public Inputs withSequences(SequenceLayout s) {
            return new Inputs(logp, oldLogp, advantages, mask, s, refLogp, entropy, rolloutLogp);
        }

        /** The same with the reference policy's log-probs [N] (the KL penalty). */
        public Inputs withRefLogp(Tensor ref) {
            return new Inputs(logp, oldLogp, advantages, mask, sequences, ref, entropy, rolloutLogp);
        }

        /** The same with the tokens' entropies [N] (the entropy bonus, entropy selection). */
        public Inputs withEntropy(Tensor h) {
            return new Inputs(logp, oldLogp, advantages, mask, sequences, refLogp, h, rolloutLogp);
        }

        /** The same with the rollout engine's log-probs [N] (the rollout correction). */
        public Inputs withRolloutLogp(Tensor rollout) {
            return new Inputs(logp, oldLogp, advantages, mask, sequences, refLogp, entropy, rollout);
        }

        /** N, the token rows. */
        public long tokens() {
            return logp.dim(0);
        }
    }

    /** Length of the f64 stats vector the op writes (see {@link Stats}). */
    public static final int STATS_LENGTH = 29;
    /** The slots of the f64 stats vector, in the order of {@link Stats}'s components (the kernels': rlk_contract.h). */
    public static final int STAT_LOSS = 0;
    /** Slot of tokens. */
    public static final int STAT_TOKENS = 1;
    /** Slot of sequences. */
    public static final int STAT_SEQUENCES = 2;
    /** Slot of clip high. */
    public static final int STAT_CLIP_HIGH = 3;
    /** Slot of clip low. */
    public static final int STAT_CLIP_LOW = 4;
    /** Slot of clip dual. */
    public static final int STAT_CLIP_DUAL = 5;
    /** Slot of neg approx kl sum. */
    public static final int STAT_NEG_APPROX_KL_SUM = 6;
    /** Slot of ratio sum. */
    public static final int STAT_RATIO_SUM = 7;
    /** Slot of the rollout correction: tokens. */
    public static final int STAT_RC_TOKENS = 8;
    /** Slot of the rollout correction: sequences. */
    public static final int STAT_RC_SEQUENCES = 9;
    /** Slot of the rollout correction: rejected tokens. */
    public static final int STAT_RC_REJECTED_TOKENS = 10;
    /** Slot of the rollout correction: rejected sequences. */
    public static final int STAT_RC_REJECTED_SEQUENCES = 11;
    /** Slot of the rollout correction: weight sum. */
    public static final int STAT_RC_WEIGHT_SUM = 12;
    /** Slot of the rollout correction: weight high. */
    public static final int STAT_RC_WEIGHT_HIGH = 13;
    /** Slot of the rollout correction: weight low. */
    public static final int STAT_RC_WEIGHT_LOW = 14;
    /** Slot of the rollout correction: clamped sum. */
    public static final int STAT_RC_CLAMPED_SUM = 15;
    /** Slot of the rollout correction: clamped sq sum. */
    public static final int STAT_RC_CLAMPED_SQ_SUM = 16;
    /** Slot of the rollout correction: norm sum. */
    public static final int STAT_RC_NORM_SUM = 17;
    /** Slot of the rollout correction: norm count. */
    public static final int STAT_RC_NORM_COUNT = 18;
    /** Slot of the rollout correction: kl sum. */
    public static final int STAT_RC_KL_SUM = 19;
    /** Slot of the rollout correction: k3 sum. */
    public static final int STAT_RC_K3_SUM = 20;
    /** Slot of the rollout correction: chi2 token sum. */
    public static final int STAT_RC_CHI2_TOKEN_SUM = 21;
    /** Slot of the rollout correction: chi2 seq sum. */
    public static final int STAT_RC_CHI2_SEQ_SUM = 22;
    /** Slot of ratio min. */
    public static final int STAT_RATIO_MIN = 23;
    /** Slot of the rollout correction: weight min. */
    public static final int STAT_RC_WEIGHT_MIN = 24;
    /** Slot of ratio max. */
    public static final int STAT_RATIO_MAX = 25;
    /** Slot of the rollout correction: weight max. */
    public static final int STAT_RC_WEIGHT_MAX = 26;
    /** Slot of denominator. */
    public static final int STAT_DENOMINATOR = 27;
    /** Slot of the rollout correction: normalizer. */
    public static final int STAT_RC_NORMALIZER = 28;
    /** Sums come before this slot, then minima (before {@link #STATS_FIRST_MAX}), maxima, and the values used. */
    public static final int STATS_FIRST_MIN = 23;
    /** The first slot of maxima. */
    public static final int STATS_FIRST_MAX = 25;
    /** The first slot of values used (not summed). */
    public static final int STATS_FIRST_SET = 27;

    /**
     * The statistics of one call, as sums (then minima, maxima, and the denominator and normaliser
     * used): micro-batches combine with {@link #merge}. The rc* components are the rollout
     * correction's, over the tokens kept before rejection (0 without a correction): those tokens and
     * their sequences, the rejected ones, the weights before any threshold (sum, min, max), how many
     * were above / below the thresholds (tokens, or sequences at the sequence and geometric levels),
     * the weights clamped to [lower, upper] and their squares, the applied weights' sum and count
     * (what batch normalisation divides by), and the mismatch between rollout and prox: sums of
     * rollout - prox (k1), e^d - d - 1 (k3), e^(2d) per token and per sequence (chi^2).
     */
    public record Stats(double loss, double tokens, double sequences, double clipHigh, double clipLow, double clipDual,
                        double negApproxKlSum, double ratioSum, double rcTokens, double rcSequences, double rcRejectedTokens,
                        double rcRejectedSequences, double rcWeightSum, double rcWeightHigh, double rcWeightLow,
                        double rcClampedSum, double rcClampedSqSum, double rcNormSum, double rcNormCount, double rcKlSum,
                        double rcK3Sum, double rcChi2TokenSum, double rcChi2SeqSum, double ratioMin, double rcWeightMin,
                        double ratioMax, double rcWeightMax, double denominator, double rcNormalizer) {

        /** The statistics from their slots [STATS_LENGTH]. */
        public static Stats of(double[] v) {
            if (v.length != STATS_LENGTH) {
                throw Check.fail("stats", STATS_LENGTH + " values", v.length);
            }
            return new Stats(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15],
                    v[16], v[17], v[18], v[19], v[20], v[21], v[22], v[23], v[24], v[25], v[26], v[27], v[28]);
        }

        /** Reads an f64 [STATS_LENGTH] host tensor. */
        public static Stats of(HostTensor t) {
            double[] v = new double[STATS_LENGTH];
            for (int i = 0; i < STATS_LENGTH; i++) {
                v[i] = t.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_DOUBLE, i);
            }
            return of(v);
        }

        /** The slots, in order. */
        public double[] toArray() {
            return new double[] {loss, tokens, sequences, clipHigh, clipLow, clipDual, negApproxKlSum, ratioSum, rcTokens,
                rcSequences, rcRejectedTokens, rcRejectedSequences, rcWeightSum, rcWeightHigh, rcWeightLow, rcClampedSum,
                rcClampedSqSum, rcNormSum, rcNormCount, rcKlSum, rcK3Sum, rcChi2TokenSum, rcChi2SeqSum, ratioMin, rcWeightMin,
                ratioMax, rcWeightMax, denominator, rcNormalizer};
        }

        /** The fraction of kept tokens whose upper clip bound binds (verl's pg_clipfrac). */
        public double clipFractionHigh() {
            return tokens > 0 ? clipHigh / tokens : 0;
        }

        /** The fraction whose lower bound binds (verl's pg_clipfrac_lower). */
        public double clipFractionLow() {
            return tokens > 0 ? clipLow / tokens : 0;
        }

        /** The fraction whose dual clip binds. */
        public double clipFractionDual() {
            return tokens > 0 ? clipDual / tokens : 0;
        }

        /** mean over kept tokens of -log r = old - logp. */
        public double approxKl() {
            return tokens > 0 ? negApproxKlSum / tokens : 0;
        }

        /** The mean ratio over kept tokens. */
        public double ratioMean() {
            return tokens > 0 ? ratioSum / tokens : 0;
        }

        private static double mean(double sum, double count) {
            return count > 0 ? sum / count : 0;
        }

        /** verl's rollout_corr/rollout_is_mean: the weights' mean over tokens, before thresholds. */
        public double rolloutIsMean() {
            return mean(rcWeightSum, rcTokens);
        }

        /** The fraction of weights above the upper threshold (of tokens, or of sequences at the sequence levels). */
        public double rolloutIsFractionHigh(WeightLevel level) {
            return mean(rcWeightHigh, level == WeightLevel.TOKEN ? rcTokens : rcSequences);
        }

        /** The fraction of weights below the lower threshold (of tokens, or of sequences at the sequence levels). */
        public double rolloutIsFractionLow(WeightLevel level) {
            return mean(rcWeightLow, level == WeightLevel.TOKEN ? rcTokens : rcSequences);
        }

        /** verl's rollout_is_std: of the weights clamped to [lower, upper], over tokens. */
        public double rolloutIsStd() {
            if (rcTokens <= 1) {
                return 0;
            }
            double m = rcClampedSum / rcTokens;
            return Math.sqrt(Math.max(0, rcClampedSqSum / rcTokens - m * m));
        }

        /** verl's rollout_is_eff_sample_size: 1 / mean((w / mean w)^2) of the clamped weights. */
        public double rolloutIsEffectiveSampleSize() {
            if (rcTokens == 0 || rcClampedSqSum == 0) {
                return 0;
            }
            double m = rcClampedSum / rcTokens;
            return m * m / (rcClampedSqSum / rcTokens);
        }

        /** The applied weights' batch mean: pass it to micro-batches as the normaliser. */
        public double rolloutIsBatchMean() {
            return mean(rcNormSum, rcNormCount);
        }

        /** verl's rollout_rs_masked_fraction: of the tokens kept before rejection. */
        public double rolloutRsMaskedFraction() {
            return mean(rcRejectedTokens, rcTokens);
        }

        /** verl's rollout_rs_seq_masked_fraction: sequences with a rejected token. */
        public double rolloutRsSeqMaskedFraction() {
            return mean(rcRejectedSequences, rcSequences);
        }

        /** verl's rollout_corr/kl: mean of rollout - prox, KL(rollout || prox) by k1. */
        public double rolloutKl() {
            return mean(rcKlSum, rcTokens);
        }

        /** verl's rollout_corr/k3_kl. */
        public double rolloutK3Kl() {
            return mean(rcK3Sum, rcTokens);
        }

        /** verl's rollout_corr/chi2_token: E[rho^2] - 1 over tokens. */
        public double rolloutChi2Token() {
            return rcTokens > 0 ? rcChi2TokenSum / rcTokens - 1 : 0;
        }

        /** verl's rollout_corr/chi2_seq: E[(prod rho)^2] - 1 over sequences. */
        public double rolloutChi2Seq() {
            return rcSequences > 0 ? rcChi2SeqSum / rcSequences - 1 : 0;
        }

        /**
         * The statistics of two disjoint parts of a batch: sums add, minima and maxima combine, the
         * denominator and normaliser are this part's (pass the global ones, and the losses add).
         */
        public Stats merge(Stats o) {
            double[] a = toArray();
            double[] b = o.toArray();
            for (int j = 0; j < STATS_FIRST_SET; j++) {
                // a part without the tokens a minimum or maximum is over reports 0 there: it does not count
                double countA = j == STAT_RATIO_MIN || j == STAT_RATIO_MAX ? tokens : rcTokens;
                double countB = j == STAT_RATIO_MIN || j == STAT_RATIO_MAX ? o.tokens : o.rcTokens;
                if (j < STATS_FIRST_MIN) {
                    a[j] += b[j];
                } else if (countB == 0) {
                    continue;
                } else if (countA == 0) {
                    a[j] = b[j];
                } else {
                    a[j] = j < STATS_FIRST_MAX ? Math.min(a[j], b[j]) : Math.max(a[j], b[j]);
                }
            }
            return of(a);
        }
    }
}
