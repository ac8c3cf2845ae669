package io.rlkernels.ops.internal;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.Tensor;

/** The policy loss's argument checks and kernel codes ({@link PolicyLoss}). Not API. */
public final class PolicyLossChecks {
    private PolicyLossChecks() {}

    /**
     * Checks the inputs and outputs: gradLogp [N] f32 (required); gradEntropy [N] f32 or null;
     * stats f64 [PolicyLoss.STATS_LENGTH].
     */
    public static void check(PolicyLoss.Config config, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy, Tensor stats) {
        if (config == null) {
            throw Check.fail("config", "a PolicyLoss.Config", "null");
        }
        if (in == null) {
            throw Check.fail("inputs", "a PolicyLoss.Inputs", "null");
        }
        Check.alive("logp", in.logp());
        Check.dtype("logp", in.logp(), DType.F32);
        Check.rank("logp", in.logp(), 1);
        long n = in.tokens();
        checkPerToken(config, in.oldLogp(), in.advantages(), in.mask(), in.sequences(), in.refLogp(), in.rolloutLogp(), n);
        if (in.entropy() != null) {
            row("entropy", in.entropy(), n);
        } else if (config.selection().topEntropyQuantile() < 1) {
            throw Check.fail("entropy", "the entropy of each token for top_entropy_quantile " + config.selection().topEntropyQuantile(),
                    "null");
        } else if (config.entropyCoef() != 0) {
            throw Check.fail("entropy", "the entropy of each token for an entropy coefficient of " + config.entropyCoef(), "null");
        }
        Check.output("gradLogp", gradLogp);
        row("gradLogp", gradLogp, n);
        if (gradEntropy != null) {
            Check.output("gradEntropy", gradEntropy);
            row("gradEntropy", gradEntropy, n);
        }
        Check.output("stats", stats);
        Check.dtype("stats", stats, DType.F64);
        Check.shape("stats", stats, PolicyLoss.STATS_LENGTH);
    }

    /**
     * The inputs other than logp and entropy, [N]: old logp and advantages f32, mask f32 or u8,
     * the reference logp when a KL term is on, the rollout logp when the correction needs it (and
     * none in bypass mode), the sequences (N tokens) when the mode needs them.
     */
    public static void checkPerToken(PolicyLoss.Config config, Tensor oldLogp, Tensor advantages, Tensor mask,
                                     SequenceLayout sequences, Tensor refLogp, Tensor rolloutLogp, long n) {
        config.requireConsistent();
        row("oldLogp", oldLogp, n);
        row("advantages", advantages, n);
        Check.alive("mask", mask);
        Check.dtype("mask", mask, DType.F32, DType.U8);
        Check.shape("mask", mask, n);
        if (refLogp != null) {
            row("refLogp", refLogp, n);
        } else if (config.kl() != PolicyLoss.KlEstimator.NONE && config.klCoef() != 0) {
            throw Check.fail("refLogp", "reference log-probs for the " + config.kl() + " KL term", "null");
        }
        if (sequences != null) {
            sequences.requireAlive("sequences");
        }
        if (sequences != null && sequences.tokens() != n) {
            throw Check.fail("sequences", "a layout of " + n + " tokens", sequences.tokens() + " tokens");
        }
        if (sequences == null && config.needsSequences()) {
            throw Check.fail("sequences", "the sequences (seqIds) for ratio " + config.ratio() + ", agg " + config.aggregation()
                    + (config.rollout().needsSequences() ? " and the per-sequence rollout correction" : "")
                    + (Double.isNaN(config.options().offPolicyMaskThreshold()) ? "" : " and the off-policy sequence mask"), "null");
        }
        if (rolloutLogp != null) {
            if (config.rollout().bypass()) {
                throw Check.fail("rolloutLogp", "none in bypass mode (oldLogp is the rollout policy's there)", "a tensor");
            }
            row("rolloutLogp", rolloutLogp, n);
        } else if (config.rollout().needsRolloutLogp()) {
            throw Check.fail("rolloutLogp", "the rollout policy's log-probs for the rollout correction", "null");
        }
    }

    /** The slots of the kernels' f64 parameter array (rlk_contract.h, enum rlk_pl_param). */
    public static final int PARAM_LOSS = 0;
    public static final int PARAM_RATIO = 1;
    public static final int PARAM_AGG = 2;
    public static final int PARAM_KL = 3;
    public static final int PARAM_CLIP_LOW = 4;
    public static final int PARAM_CLIP_HIGH = 5;
    public static final int PARAM_DUAL_CLIP = 6;
    public static final int PARAM_KL_COEF = 7;
    public static final int PARAM_ENTROPY_COEF = 8;
    public static final int PARAM_DENOMINATOR = 9;
    public static final int PARAM_LONGEST = 10;
    public static final int PARAM_BYPASS = 11;
    public static final int PARAM_IS_LEVEL = 12;
    public static final int PARAM_IS_MODE = 13;
    public static final int PARAM_IS_LOWER = 14;
    public static final int PARAM_IS_UPPER = 15;
    public static final int PARAM_IS_APPLY = 16;
    public static final int PARAM_IS_NORMALIZE = 17;
    public static final int PARAM_IS_NORMALIZER = 18;
    public static final int PARAM_TAU_POS = 19;
    public static final int PARAM_TAU_NEG = 20;
    public static final int PARAM_DRO_BETA = 21;
    public static final int PARAM_DELTA = 22;
    public static final int PARAM_OPSM = 23;
    public static final int PARAM_SEQ_LOG_MIN = 24;
    public static final int PARAM_SEQ_LOG_MAX = 25;
    public static final int PARAM_VESPO_K_POS = 26;
    public static final int PARAM_VESPO_LAMBDA_POS = 27;
    public static final int PARAM_VESPO_K_NEG = 28;
    public static final int PARAM_VESPO_LAMBDA_NEG = 29;
    public static final int PARAM_ENTROPY_THRESHOLD = 30;
    public static final int PARAM_COV_MEAN_ADV = 31;
    public static final int PARAM_COV_MEAN_LOGP = 32;
    public static final int PARAM_COV_THRESHOLD = 33;
    public static final int PARAM_COV_LB = 34;
    public static final int PARAM_COV_UB = 35;
    public static final int PARAM_PPO_KL_COEF = 36;
    public static final int PARAM_SEED = 37;
    public static final int PARAM_TOKEN_OFFSET = 38;
    public static final int PARAM_RS_BOUNDS = 39;
    public static final int PARAM_COUNT = 61;
    /** The rejection options (rlk_contract.h RLK_RS_OPTIONS): PolicyLoss.Rejection.Option. */
    public static final int RS_OPTIONS = 11;

    /**
     * The kernels' parameters: codes (enum ordinals, as rlk_contract.h numbers them), thresholds
     * and coefficients as the kernels compute with them (f32 options widened exactly; rejection
     * bounds in the statistic's units, -inf/+inf where an option is off).
     */
    public static double[] params(PolicyLoss.Config c, SequenceLayout sequences) {
        double[] p = new double[PARAM_COUNT];
        p[PARAM_LOSS] = c.loss().ordinal();
        p[PARAM_RATIO] = c.ratio().ordinal();
        p[PARAM_AGG] = c.aggregation().ordinal();
        p[PARAM_KL] = c.kl().ordinal();
        p[PARAM_CLIP_LOW] = c.clipLow();
        p[PARAM_CLIP_HIGH] = c.clipHigh();
        p[PARAM_DUAL_CLIP] = c.dualClip();
        p[PARAM_KL_COEF] = c.klCoef();
        p[PARAM_ENTROPY_COEF] = c.entropyCoef();
        p[PARAM_DENOMINATOR] = c.denominator();
        p[PARAM_LONGEST] = sequences == null ? 0 : sequences.longest();
        PolicyLoss.Options o = c.options();
        p[PARAM_TAU_POS] = o.tauPos();
        p[PARAM_TAU_NEG] = o.tauNeg();
        p[PARAM_DRO_BETA] = o.droBeta();
        p[PARAM_DELTA] = o.delta();
        p[PARAM_OPSM] = o.offPolicyMaskThreshold();
        p[PARAM_SEQ_LOG_MIN] = o.seqLogMin();
        p[PARAM_SEQ_LOG_MAX] = o.seqLogMax();
        p[PARAM_VESPO_K_POS] = o.vespoKPos();
        p[PARAM_VESPO_LAMBDA_POS] = o.vespoLambdaPos();
        p[PARAM_VESPO_K_NEG] = o.vespoKNeg();
        p[PARAM_VESPO_LAMBDA_NEG] = o.vespoLambdaNeg();
        PolicyLoss.Selection sel = c.selection();
        p[PARAM_ENTROPY_THRESHOLD] = sel.topEntropyQuantile() < 1 ? sel.entropyThreshold() : Double.NaN;
        p[PARAM_COV_MEAN_ADV] = sel.covMeanAdvantage();
        p[PARAM_COV_MEAN_LOGP] = sel.covMeanLogp();
        p[PARAM_COV_THRESHOLD] = sel.covThreshold();
        p[PARAM_COV_LB] = sel.covLow();
        p[PARAM_COV_UB] = sel.covHigh();
        p[PARAM_PPO_KL_COEF] = sel.ppoKlCoef();
        p[PARAM_SEED] = sel.seed();
        p[PARAM_TOKEN_OFFSET] = sel.tokenOffset();
        PolicyLoss.RolloutCorrection rc = c.rollout();
        p[PARAM_BYPASS] = rc.bypass() ? 1 : 0;
        p[PARAM_IS_LEVEL] = rc.level().ordinal();
        p[PARAM_IS_MODE] = rc.mode().ordinal();
        p[PARAM_IS_LOWER] = rc.lower();
        p[PARAM_IS_UPPER] = rc.upper();
        p[PARAM_IS_APPLY] = c.appliesWeights() ? 1 : 0;
        p[PARAM_IS_NORMALIZE] = rc.batchNormalize() ? 1 : 0;
        p[PARAM_IS_NORMALIZER] = rc.normalizer();
        for (int k = 0; k < RS_OPTIONS; k++) {
            p[PARAM_RS_BOUNDS + 2 * k] = Double.NEGATIVE_INFINITY;
            p[PARAM_RS_BOUNDS + 2 * k + 1] = Double.POSITIVE_INFINITY;
        }
        for (PolicyLoss.Rejection r : rc.rejection()) { // several criteria on one option: the tightest bounds
            double[] b = r.bounds();
            int at = PARAM_RS_BOUNDS + 2 * r.option().ordinal();
            p[at] = Math.max(p[at], b[0]);
            p[at + 1] = Math.min(p[at + 1], b[1]);
        }
        return p;
    }

    /** The refusal of finite inputs whose per-token gradient float32 cannot hold. */
    public static IllegalArgumentException overflow(String output, long index, float value) {
        return Check.overflowed("advantages, denominator, klCoef, entropyCoef", output, index, value,
                "a token's gradient is its coefficient over the denominator");
    }

    static void row(String arg, Tensor t, long n) {
        Check.alive(arg, t);
        Check.dtype(arg, t, DType.F32);
        Check.shape(arg, t, n);
    }
}
