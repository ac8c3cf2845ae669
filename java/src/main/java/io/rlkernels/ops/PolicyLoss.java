package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.Locale;

/**
 * Clipped importance-ratio policy losses, forward and dL/dlogp fused (ARCHITECTURE §5.3). Per kept
 * token i (mask m_i = 1) of a flat batch of N tokens:
 *
 * <pre>
 *   d_i = clamp(logp_i - old_i, -20, 20),  r_i = exp(d_i)                   ratio: token
 *   r_i = exp(clamp(sum_{j in s} m_j (logp_j - old_j) / n_s, -20, 20))      ratio: sequence (GSPO)
 *   ppo:        l = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high)); for A < 0 with dual clip c > 1: min(l, -c A)
 *   cispo:      l = -sg(clip(r, 1 - eps_low, 1 + eps_high)) A logp          (gradient -clip(r) A)
 *   reinforce:  l = -A logp
 *   plus        kl_coef * k(logp, ref)  (k1 logp - ref; k2 (logp - ref)^2 / 2; k3 exp(ref - logp) - (ref - logp) - 1,
 *               clamped to [-10, 10]; abs |logp - ref|)   and   - entropy_coef * H_i
 * </pre>
 *
 * The loss is L = sum_i w_i l_i with w_i = m_i / D (token-mean, seq-mean-token-sum,
 * seq-mean-token-sum-norm) or m_i / (n_s D) (seq-mean-token-mean), n_s the kept tokens of i's
 * sequence. The denominator D is explicit: pass the global token count (token-mean), the global
 * sequence count (seq-mean-*) or a constant (…-norm, Dr. GRPO) and the losses and gradients of
 * micro-batches or data-parallel ranks sum to exactly those of the whole batch. Left unset (NaN),
 * D is what the mode implies for this batch alone: its kept tokens, its sequences with a kept
 * token, or its longest sequence.
 *
 * <p>For the sequence ratio the gradient is the true derivative of r_s: dr_s/dlogp_j = r_s m_j /
 * n_s. When advantages are constant within a sequence (GSPO's setting) this equals verl's
 * GSPO-token gradient. Statistics: the loss, kept tokens and sequences, clipped tokens (high: the
 * upper clip binds, low: the lower clip binds, dual: the dual clip binds), sum of old - logp
 * (approximate KL), and the ratio's sum, min and max over kept tokens — sums, so micro-batches
 * combine with {@link Stats#merge}.
 */
public final class PolicyLoss {
    private PolicyLoss() {}

    public enum LossType {
        PPO, CISPO, REINFORCE;

        public static LossType parse(String s) {
            return PolicyLoss.parse(LossType.class, "loss", s);
        }

        @Override
        public String toString() {
            return PolicyLoss.display(this);
        }
    }

    public enum RatioLevel {
        TOKEN, SEQUENCE;

        public static RatioLevel parse(String s) {
            return PolicyLoss.parse(RatioLevel.class, "ratio", s);
        }

        @Override
        public String toString() {
            return PolicyLoss.display(this);
        }
    }

    public enum Aggregation {
        TOKEN_MEAN, SEQ_MEAN_TOKEN_MEAN, SEQ_MEAN_TOKEN_SUM, SEQ_MEAN_TOKEN_SUM_NORM;

        public boolean perSequence() {
            return this != TOKEN_MEAN;
        }

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
        NONE, K1, K2, K3, ABS, K1_PLUS("k1+"), K3_PLUS("k3+");

        private final String key;

        KlEstimator() {
            this.key = null;
        }

        KlEstimator(String key) {
            this.key = key;
        }

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

    /** Everything but the tensors. {@code denominator} NaN: implied by the batch (see the class comment). */
    public record Config(LossType loss, RatioLevel ratio, float clipLow, float clipHigh, float dualClip,
                         Aggregation aggregation, double denominator, KlEstimator kl, float klCoef, float entropyCoef) {
        public Config {
            if (loss == null || ratio == null || aggregation == null || kl == null) {
                throw Check.fail("config", "a loss type, ratio level, aggregation and KL estimator", "null");
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

        /** PPO, token ratio, clip 0.2 both sides, no dual clip, token-mean, implied denominator, no KL or entropy. */
        public static Config defaults() {
            return new Config(LossType.PPO, RatioLevel.TOKEN, 0.2f, 0.2f, 0f, Aggregation.TOKEN_MEAN, Double.NaN,
                    KlEstimator.NONE, 0f, 0f);
        }

        public Config withLoss(LossType l) {
            return new Config(l, ratio, clipLow, clipHigh, dualClip, aggregation, denominator, kl, klCoef, entropyCoef);
        }

        public Config withRatio(RatioLevel r) {
            return new Config(loss, r, clipLow, clipHigh, dualClip, aggregation, denominator, kl, klCoef, entropyCoef);
        }

        public Config withClip(float low, float high) {
            return new Config(loss, ratio, low, high, dualClip, aggregation, denominator, kl, klCoef, entropyCoef);
        }

        public Config withDualClip(float c) {
            return new Config(loss, ratio, clipLow, clipHigh, c, aggregation, denominator, kl, klCoef, entropyCoef);
        }

        public Config withAggregation(Aggregation a) {
            return new Config(loss, ratio, clipLow, clipHigh, dualClip, a, denominator, kl, klCoef, entropyCoef);
        }

        public Config withDenominator(double d) {
            return new Config(loss, ratio, clipLow, clipHigh, dualClip, aggregation, d, kl, klCoef, entropyCoef);
        }

        public Config withKl(KlEstimator k, float coef) {
            return new Config(loss, ratio, clipLow, clipHigh, dualClip, aggregation, denominator, k, coef, entropyCoef);
        }

        public Config withEntropyCoef(float coef) {
            return new Config(loss, ratio, clipLow, clipHigh, dualClip, aggregation, denominator, kl, klCoef, coef);
        }

        /** Whether the op needs to know the sequences. */
        public boolean needsSequences() {
            return ratio == RatioLevel.SEQUENCE || aggregation.perSequence();
        }
    }

    /**
     * The per-token inputs, all [N]: logp, old logp and advantages f32; mask f32 or u8; the
     * sequences (needed by the sequence ratio and seq-* modes); optional reference logp (for KL)
     * and entropy (for the bonus). Every value must be finite, padding included.
     */
    public record Inputs(Tensor logp, Tensor oldLogp, Tensor advantages, Tensor mask, SequenceLayout sequences,
                         Tensor refLogp, Tensor entropy) {
        public Inputs(Tensor logp, Tensor oldLogp, Tensor advantages, Tensor mask) {
            this(logp, oldLogp, advantages, mask, null, null, null);
        }

        public Inputs withSequences(SequenceLayout s) {
            return new Inputs(logp, oldLogp, advantages, mask, s, refLogp, entropy);
        }

        public Inputs withRefLogp(Tensor ref) {
            return new Inputs(logp, oldLogp, advantages, mask, sequences, ref, entropy);
        }

        public Inputs withEntropy(Tensor h) {
            return new Inputs(logp, oldLogp, advantages, mask, sequences, refLogp, h);
        }

        public long tokens() {
            return logp.dim(0);
        }
    }

    /** Length of the f64 stats vector the op writes (see {@link Stats}). */
    public static final int STATS_LENGTH = 11;
    /** The slots of the f64 stats vector, in the order of {@link Stats}'s components (the kernels': rlk_contract.h). */
    public static final int STAT_LOSS = 0;
    public static final int STAT_TOKENS = 1;
    public static final int STAT_SEQUENCES = 2;
    public static final int STAT_CLIP_HIGH = 3;
    public static final int STAT_CLIP_LOW = 4;
    public static final int STAT_CLIP_DUAL = 5;
    public static final int STAT_NEG_APPROX_KL_SUM = 6;
    public static final int STAT_RATIO_SUM = 7;
    public static final int STAT_RATIO_MIN = 8;
    public static final int STAT_RATIO_MAX = 9;
    public static final int STAT_DENOMINATOR = 10;

    /** The statistics of one call, as sums: micro-batches combine with {@link #merge}. */
    public record Stats(double loss, double tokens, double sequences, double clipHigh, double clipLow, double clipDual,
                        double negApproxKlSum, double ratioSum, double ratioMin, double ratioMax, double denominator) {

        public static Stats of(double[] v) {
            return new Stats(v[STAT_LOSS], v[STAT_TOKENS], v[STAT_SEQUENCES], v[STAT_CLIP_HIGH], v[STAT_CLIP_LOW], v[STAT_CLIP_DUAL],
                    v[STAT_NEG_APPROX_KL_SUM], v[STAT_RATIO_SUM], v[STAT_RATIO_MIN], v[STAT_RATIO_MAX], v[STAT_DENOMINATOR]);
        }

        /** Reads an f64 [STATS_LENGTH] host tensor. */
        public static Stats of(HostTensor t) {
            double[] v = new double[STATS_LENGTH];
            for (int i = 0; i < STATS_LENGTH; i++) {
                v[i] = t.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_DOUBLE, i);
            }
            return of(v);
        }

        public double clipFractionHigh() {
            return tokens > 0 ? clipHigh / tokens : 0;
        }

        public double clipFractionLow() {
            return tokens > 0 ? clipLow / tokens : 0;
        }

        public double clipFractionDual() {
            return tokens > 0 ? clipDual / tokens : 0;
        }

        /** mean over kept tokens of -log r = old - logp. */
        public double approxKl() {
            return tokens > 0 ? negApproxKlSum / tokens : 0;
        }

        public double ratioMean() {
            return tokens > 0 ? ratioSum / tokens : 0;
        }

        /** The statistics of two disjoint parts of a batch (their losses add: pass the global denominator). */
        public Stats merge(Stats o) {
            return new Stats(loss + o.loss, tokens + o.tokens, sequences + o.sequences, clipHigh + o.clipHigh,
                    clipLow + o.clipLow, clipDual + o.clipDual, negApproxKlSum + o.negApproxKlSum, ratioSum + o.ratioSum,
                    Math.min(ratioMin, o.ratioMin), Math.max(ratioMax, o.ratioMax), denominator);
        }
    }
}
