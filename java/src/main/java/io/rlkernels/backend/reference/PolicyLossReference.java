package io.rlkernels.backend.reference;

import io.rlkernels.ops.internal.PolicyLossChecks;
import static io.rlkernels.backend.reference.HostArgs.host;
import static io.rlkernels.backend.reference.HostArgs.finite;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * The policy loss (contract: {@link io.rlkernels.ops.PolicyLoss}, ARCHITECTURE §5.3) in f64, token by
 * token from the definition: the ratio (token or sequence), the clipped surrogate of each loss
 * type with dual clip, the KL estimators, the entropy bonus, the aggregation's weights, and each
 * statistic in its named slot. Written apart from the C/CUDA math header: it is the oracle.
 */
final class PolicyLossReference {
    private PolicyLossReference() {}

    static void policyLoss(PolicyLoss.Config c, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy, Tensor stats) {
        PolicyLossChecks.check(c, in, gradLogp, gradEntropy, stats);
        HostTensor logp = finite("logp", in.logp());
        HostTensor old = finite("oldLogp", in.oldLogp());
        HostTensor adv = finite("advantages", in.advantages());
        HostTensor mask = host("mask", in.mask());
        HostTensor ref = in.refLogp() == null ? null : finite("refLogp", in.refLogp());
        HostTensor entropy = in.entropy() == null ? null : finite("entropy", in.entropy());
        HostTensor rollout = in.rolloutLogp() == null ? null : finite("rolloutLogp", in.rolloutLogp());
        HostTensor grad = host("gradLogp", gradLogp);
        HostTensor gradH = gradEntropy == null ? null : host("gradEntropy", gradEntropy);
        long n = in.tokens();
        // the sequences, or the whole batch as one segment when the op does not need them
        long[] offsets = in.sequences() == null ? new long[] {0, n} : new long[in.sequences().sequences() + 1];
        if (in.sequences() != null) {
            for (int k = 0; k < offsets.length; k++) {
                offsets[k] = in.sequences().offsets().getLong(k);
            }
        }
        Correction rc = new Correction(c, logp, old, rollout, mask, offsets);
        double denominator = c.denominator();
        if (Double.isNaN(denominator)) {
            denominator = switch (c.aggregation()) {
                case TOKEN_MEAN -> {
                    double kept = 0;
                    for (long i = 0; i < n; i++) {
                        kept += rc.kept(i) ? 1 : 0;
                    }
                    yield kept;
                }
                case SEQ_MEAN_TOKEN_MEAN, SEQ_MEAN_TOKEN_SUM -> {
                    double seqs = 0;
                    for (int k = 0; k + 1 < offsets.length; k++) {
                        boolean any = false;
                        for (long i = offsets[k]; i < offsets[k + 1]; i++) {
                            any |= rc.kept(i);
                        }
                        seqs += any ? 1 : 0;
                    }
                    yield seqs;
                }
                case SEQ_MEAN_TOKEN_SUM_NORM -> in.sequences().longest();
                case TOKEN_SUM -> 1;
            };
            denominator = denominator == 0 ? 1 : denominator; // nothing kept: a zero loss either way
        }
        double normalizer = rc.normalizer();
        double[] st = new double[PolicyLoss.STATS_LENGTH];
        st[PolicyLoss.STAT_RATIO_MIN] = Double.POSITIVE_INFINITY;
        st[PolicyLoss.STAT_RATIO_MAX] = Double.NEGATIVE_INFINITY;
        st[PolicyLoss.STAT_RC_WEIGHT_MIN] = Double.POSITIVE_INFINITY;
        st[PolicyLoss.STAT_RC_WEIGHT_MAX] = Double.NEGATIVE_INFINITY;
        st[PolicyLoss.STAT_DENOMINATOR] = denominator;
        st[PolicyLoss.STAT_RC_NORMALIZER] = normalizer;
        rc.metrics(st);
        for (int k = 0; k + 1 < offsets.length; k++) {
            long b = offsets[k];
            long e = offsets[k + 1];
            double kept = 0;
            double sumLogRatio = 0;
            double sumSampler = 0; // of (sampler - logp), for the off-policy sequence mask
            for (long i = b; i < e; i++) {
                if (rc.kept(i)) {
                    kept++;
                    sumLogRatio += (double) logp.getFloat(i) - old.getFloat(i);
                    double sampler = rollout != null && !c.rollout().bypass() ? rollout.getFloat(i) : old.getFloat(i);
                    sumSampler += sampler - logp.getFloat(i);
                }
            }
            // geo_mean: the sequence's mean sign-clipped log-ratio, mean advantage and weight; vespo: its log w
            double geoX = 0;
            double advSum = 0;
            double logW = 0;
            double vespoLog = 0;
            boolean tokenWeights = rc.on() && c.rollout().level() == PolicyLoss.WeightLevel.TOKEN;
            for (long i = b; i < e; i++) {
                if (!rc.kept(i)) {
                    continue;
                }
                double a = adv.getFloat(i);
                double d = (double) logp.getFloat(i) - old.getFloat(i);
                geoX += a > 0 ? Math.min(d, c.clipHigh()) : a < 0 ? Math.max(d, -(double) c.clipLow()) : 0;
                advSum += a;
                logW += Math.log(rc.appliedWeight(i) + 1e-10);
                vespoLog += Math.max(-20, Math.min(20, d));
                if (tokenWeights) {
                    double wt = rc.appliedWeight(i);
                    vespoLog += wt > 0 ? Math.max(Math.log(1e-8), Math.min(20, Math.log(wt))) : Math.log(1e-8);
                }
            }
            double geoMean = kept > 0 ? geoX / kept : 0;
            double geoRatio = Math.exp(Math.max(c.options().seqLogMin(), Math.min(c.options().seqLogMax(), geoMean)));
            boolean geoClamped = geoMean < c.options().seqLogMin() || geoMean > c.options().seqLogMax();
            double geoWeight = 1;
            if (rc.on() && c.appliesWeights()) {
                geoWeight = (tokenWeights ? Math.exp(logW / Math.max(kept, 1)) : rc.appliedWeight(firstKept(rc, b, e))) / normalizer;
            }
            double geoShare = 0; // each through-token's share of the sequence's gradient
            if (c.loss() == PolicyLoss.LossType.GEO_MEAN && kept > 0) {
                double abar = advSum / kept;
                st[PolicyLoss.STAT_LOSS] += -abar * geoRatio * geoWeight / denominator;
                geoShare = geoClamped ? 0 : -abar * geoRatio * geoWeight / (kept * denominator);
            }
            double threshold = c.options().offPolicyMaskThreshold();
            boolean offPolicy = !Double.isNaN(threshold) && sumSampler / Math.max(kept, 1) > threshold;
            if (in.sequences() != null && kept > 0) {
                st[PolicyLoss.STAT_SEQUENCES]++;
            }
            double seqLog = kept > 0 ? sumLogRatio / kept : 0;
            double lo = c.options().seqLogMin();
            double hi = c.options().seqLogMax();
            boolean seqClamped = seqLog < lo || seqLog > hi;
            double seqRatio = Math.exp(Math.max(lo, Math.min(hi, seqLog)));
            double w = c.aggregation() == PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_MEAN ? 1 / (Math.max(kept, 1) * denominator)
                    : 1 / denominator;
            double seqCoef = 0; // sum of w dl/dr over the sequence, for the sequence ratio
            double[] g = new double[(int) (e - b)];
            for (long i = b; i < e; i++) {
                if (!rc.kept(i)) {
                    if (gradH != null) {
                        gradH.setFloat(i, 0f);
                    }
                    continue;
                }
                double lp = logp.getFloat(i);
                double a = adv.getFloat(i);
                double raw = lp - old.getFloat(i);
                double d = Math.max(-20, Math.min(20, raw));
                boolean token = c.ratio() == PolicyLoss.RatioLevel.TOKEN;
                boolean ownGradient = c.ratio() != PolicyLoss.RatioLevel.SEQUENCE; // token, or sg(r_s) p / sg(p)
                double r = c.loss() == PolicyLoss.LossType.GEO_MEAN ? geoRatio : token ? Math.exp(d) : seqRatio;
                boolean ratioClamped = token ? d != raw : seqClamped;
                double clipped = Math.min(Math.max(r, 1 - (double) c.clipLow()), 1 + (double) c.clipHigh());
                double pg;
                double dPgDr = 0;     // through the ratio
                double dPgDirect = 0; // through logp itself (cispo, reinforce, dro, dppo)
                switch (c.loss()) {
                    case PPO -> {
                        double delta = c.options().delta();
                        double bounded = delta > 0 ? Math.min(r, delta) : r; // the two-sided bound of the unclipped term
                        double unclippedLoss = -a * bounded;
                        double clippedLoss = -a * clipped;
                        pg = Math.max(unclippedLoss, clippedLoss);
                        if (unclippedLoss >= clippedLoss) {
                            dPgDr = bounded == r ? -a : 0; // a bounded ratio is a constant
                        } else {
                            dPgDr = clipped == r ? -a : 0; // the clipped term wins inside the bounds only under delta
                            st[PolicyLoss.STAT_CLIP_HIGH] += r > 1 + (double) c.clipHigh() ? 1 : 0;
                            st[PolicyLoss.STAT_CLIP_LOW] += r < 1 - (double) c.clipLow() ? 1 : 0;
                        }
                        if (c.dualClip() > 0 && a < 0 && pg > -c.dualClip() * a) {
                            pg = -c.dualClip() * a;
                            dPgDr = 0;
                            st[PolicyLoss.STAT_CLIP_DUAL]++;
                        }
                    }
                    case CISPO -> {
                        pg = -clipped * a * lp;
                        dPgDirect = -clipped * a;
                        st[PolicyLoss.STAT_CLIP_HIGH] += r > 1 + (double) c.clipHigh() ? 1 : 0;
                        st[PolicyLoss.STAT_CLIP_LOW] += r < 1 - (double) c.clipLow() ? 1 : 0;
                    }
                    case REINFORCE -> {
                        pg = -a * lp;
                        dPgDirect = -a;
                    }
                    case SAPO -> { // the gate sigmoid(tau (r - 1)) 4 / tau, its slope 4 sigmoid (1 - sigmoid)
                        double tau = a > 0 ? c.options().tauPos() : c.options().tauNeg();
                        double sig = 1 / (1 + Math.exp(-tau * (r - 1)));
                        pg = -sig * 4 / tau * a;
                        dPgDr = -a * 4 * sig * (1 - sig);
                    }
                    case DRO -> {
                        double lr = lp - old.getFloat(i);
                        pg = -(lp * a - 0.5 * c.options().droBeta() * lr * lr);
                        dPgDirect = -a + c.options().droBeta() * lr;
                    }
                    case DPPO_TV, DPPO_KL -> {
                        double p = Math.exp(lp);
                        double pOld = Math.exp(old.getFloat(i));
                        boolean valid;
                        if (c.loss() == PolicyLoss.LossType.DPPO_TV) {
                            valid = a > 0 ? p - pOld <= c.clipHigh() : p - pOld >= -c.clipLow();
                        } else {
                            double binaryKl = pOld * (old.getFloat(i) - lp) + (1 - pOld) * Math.log((1 - pOld + 1e-8) / (1 - p + 1e-8));
                            valid = a > 0 ? binaryKl <= c.clipHigh() || p <= pOld : binaryKl <= c.clipLow() || p >= pOld;
                        }
                        boolean truncated = c.dualClip() > 0 && r > c.dualClip();
                        double weight = truncated ? c.dualClip() : r; // detached
                        pg = valid ? -a * weight * lp : 0;
                        dPgDirect = valid ? -a * weight : 0;
                        if (!valid) {
                            st[a > 0 ? PolicyLoss.STAT_CLIP_HIGH : PolicyLoss.STAT_CLIP_LOW]++;
                        } else if (truncated) {
                            st[PolicyLoss.STAT_CLIP_DUAL]++;
                        }
                    }
                    case CLIP_COV -> { // PPO's clip without the dual clip; the chosen candidates detached
                        double unclippedLoss = -a * r;
                        double clippedLoss = -a * clipped;
                        PolicyLoss.Selection sel = c.selection();
                        double cov = (a - sel.covMeanAdvantage()) * (lp - sel.covMeanLogp());
                        boolean byOrigin = clippedLoss > unclippedLoss;
                        boolean chosen = !byOrigin && cov > sel.covLow() && cov < sel.covHigh()
                                && io.rlkernels.ops.PolicyLossSelection.selectKey(sel.seed(), sel.tokenOffset() + i) <= sel.covThreshold();
                        pg = chosen ? 0 : Math.max(unclippedLoss, clippedLoss);
                        dPgDr = chosen || byOrigin ? 0 : -a;
                        st[PolicyLoss.STAT_CLIP_HIGH] += chosen ? 1 : 0;
                    }
                    case KL_COV -> { // -A r unclipped; the top-covariance tokens add ppo_kl_coef |logp - old|
                        PolicyLoss.Selection sel = c.selection();
                        double cov = (a - sel.covMeanAdvantage()) * (lp - sel.covMeanLogp());
                        pg = -a * r;
                        dPgDr = -a;
                        if (cov >= sel.covThreshold()) {
                            pg += sel.ppoKlCoef() * Math.abs(raw);
                            dPgDirect = sel.ppoKlCoef() * Math.signum(raw);
                            st[PolicyLoss.STAT_CLIP_HIGH]++;
                        }
                    }
                    case GEO_MEAN -> { // the loss is the sequence's (above); the clip counts by the advantage's sign
                        pg = 0;
                        boolean clippedRatio = raw < -(double) c.clipLow() || raw > c.clipHigh();
                        st[PolicyLoss.STAT_CLIP_HIGH] += clippedRatio && a > 0 ? 1 : 0;
                        st[PolicyLoss.STAT_CLIP_LOW] += clippedRatio && a < 0 ? 1 : 0;
                    }
                    case VESPO -> { // phi = exp(lambda + k log w - lambda w), detached
                        double lw = Math.max(Math.log(1e-8), Math.min(20, vespoLog));
                        double kv = a >= 0 ? c.options().vespoKPos() : c.options().vespoKNeg();
                        double lambda = Math.max(1e-4, a >= 0 ? c.options().vespoLambdaPos() : c.options().vespoLambdaNeg());
                        double phi = Math.exp(lambda + kv * lw - lambda * Math.exp(lw));
                        phi = Double.isFinite(phi) ? phi : 0;
                        pg = -phi * a * lp;
                        dPgDirect = -phi * a;
                    }
                    default -> throw new IllegalStateException();
                }
                double isWeight = rc.lossWeight(i) / normalizer; // detached: a constant of the gradient
                if (offPolicy && a < 0) {
                    isWeight = 0; // the off-policy sequence mask: negative advantages of far-off sequences
                }
                if (c.selection().topEntropyQuantile() < 1 && entropy.getFloat(i) < c.selection().entropyThreshold()) {
                    isWeight = 0; // top_entropy_quantile: below the batch's quantile, no policy-gradient term
                }
                pg *= isWeight;
                dPgDr *= isWeight;
                dPgDirect *= isWeight;
                double kl = 0;
                double dKl = 0;
                if (c.kl() != PolicyLoss.KlEstimator.NONE && c.klCoef() != 0) {
                    double diff = lp - ref.getFloat(i);
                    switch (c.kl()) {
                        case K1 -> {
                            kl = diff;
                            dKl = 1;
                        }
                        case K2 -> {
                            kl = 0.5 * diff * diff;
                            dKl = diff;
                        }
                        case K3, K3_PLUS -> { // x = ref - logp, clamped to [-20, 20]; value clamped to [-10, 10]
                            double x = Math.max(-20, Math.min(20, -diff));
                            kl = Math.exp(x) - x - 1;
                            dKl = Math.abs(x) < 20 ? 1 - Math.exp(x) : 0;
                            if (kl > 10) {
                                kl = 10;
                                dKl = 0;
                            }
                            if (c.kl() == PolicyLoss.KlEstimator.K3_PLUS) {
                                dKl = diff; // straight-through: k3's value, k2's gradient
                            }
                        }
                        case K1_PLUS -> { // k1's value, k2's gradient
                            kl = diff;
                            dKl = diff;
                        }
                        case ABS -> {
                            kl = Math.abs(diff);
                            dKl = Math.signum(diff);
                        }
                        default -> throw new IllegalStateException();
                    }
                }
                double h = entropy == null ? 0 : entropy.getFloat(i);
                double l = pg + c.klCoef() * kl - c.entropyCoef() * h;
                st[PolicyLoss.STAT_LOSS] += w * l;
                st[PolicyLoss.STAT_TOKENS]++;
                st[PolicyLoss.STAT_NEG_APPROX_KL_SUM] += -d;
                st[PolicyLoss.STAT_RATIO_SUM] += r;
                st[PolicyLoss.STAT_RATIO_MIN] = Math.min(st[PolicyLoss.STAT_RATIO_MIN], r);
                st[PolicyLoss.STAT_RATIO_MAX] = Math.max(st[PolicyLoss.STAT_RATIO_MAX], r);
                g[(int) (i - b)] = w * (dPgDirect + c.klCoef() * dKl);
                boolean geoThrough = a > 0 ? raw < c.clipHigh() : a < 0 && raw > -(double) c.clipLow();
                if (c.loss() == PolicyLoss.LossType.GEO_MEAN && geoThrough) {
                    g[(int) (i - b)] += geoShare;
                }
                if (!ratioClamped) {
                    if (ownGradient) {
                        g[(int) (i - b)] += w * dPgDr * r; // dr/dlogp = r
                    } else {
                        seqCoef += w * dPgDr;
                    }
                }
                if (gradH != null) {
                    gradH.setFloat(i, (float) (-w * c.entropyCoef()));
                }
            }
            for (long i = b; i < e; i++) {
                // sequence ratio: dr_s/dlogp_j = r_s m_j / n_s, so every kept token shares the sequence's term
                boolean shared = c.ratio() == PolicyLoss.RatioLevel.SEQUENCE && rc.kept(i);
                grad.setFloat(i, (float) (g[(int) (i - b)] + (shared ? seqCoef * seqRatio / kept : 0)));
            }
        }
        if (st[PolicyLoss.STAT_TOKENS] == 0) {
            st[PolicyLoss.STAT_RATIO_MIN] = 0;
            st[PolicyLoss.STAT_RATIO_MAX] = 0;
        }
        if (!(st[PolicyLoss.STAT_RC_WEIGHT_MIN] <= st[PolicyLoss.STAT_RC_WEIGHT_MAX])) {
            st[PolicyLoss.STAT_RC_WEIGHT_MIN] = 0;
            st[PolicyLoss.STAT_RC_WEIGHT_MAX] = 0;
        }
        for (HostTensor o : gradH == null ? new HostTensor[] {grad} : new HostTensor[] {grad, gradH}) {
            long bad = Check.firstOutside(o, Float.MAX_VALUE);
            if (bad >= 0) {
                throw PolicyLossChecks.overflow(o == grad ? "gradLogp" : "gradEntropy", bad, o.getFloat(bad));
            }
        }
        HostTensor out = host("stats", stats);
        for (int j = 0; j < PolicyLoss.STATS_LENGTH; j++) {
            out.setDouble(j, st[j]);
        }
    }

    /** The first token rejection and the mask keep in [b, e) (b if none: its weight is then unused). */
    private static long firstKept(Correction rc, long b, long e) {
        for (long i = b; i < e; i++) {
            if (rc.kept(i)) {
                return i;
            }
        }
        return b;
    }

    /**
     * The rollout correction of one call, from its definition (PolicyLoss.RolloutCorrection): per
     * token d = log(prox / rollout), the weight of each token, which tokens rejection keeps, and
     * the metrics. Sequences are the offsets' runs (one run: the whole batch without a layout).
     */
    private static final class Correction {
        private final PolicyLoss.Config c;
        private final PolicyLoss.RolloutCorrection rc;
        private final boolean on;
        private final HostTensor mask;
        private final long[] offsets;
        private final double[] delta;   // per token; NaN where the mask drops it
        private final double[] raw;     // the weight before thresholds, per token
        private final boolean[] keep;   // kept after rejection
        private final int[] seqOf;

        Correction(PolicyLoss.Config c, HostTensor logp, HostTensor old, HostTensor rollout, HostTensor mask, long[] offsets) {
            this.c = c;
            this.rc = c.rollout();
            this.on = rollout != null || rc.bypass();
            this.mask = mask;
            this.offsets = offsets;
            int n = (int) offsets[offsets.length - 1];
            delta = new double[n];
            raw = new double[n];
            keep = new boolean[n];
            seqOf = new int[n];
            for (int k = 0; k + 1 < offsets.length; k++) {
                double sum = 0;
                double count = 0;
                double sumK1 = 0;
                double sumK2 = 0;
                double sumK3 = 0;
                double maxK2 = 0;
                double maxK3 = 0;
                for (long i = offsets[k]; i < offsets[k + 1]; i++) {
                    seqOf[(int) i] = k;
                    if (mask.getFloat(i) == 0) {
                        continue;
                    }
                    double d = !on ? 0 : rc.bypass() ? (double) logp.getFloat(i) - old.getFloat(i)
                            : (double) old.getFloat(i) - rollout.getFloat(i);
                    delta[(int) i] = d;
                    double ds = Math.max(-20, Math.min(20, d));
                    double k2 = ds * ds / 2;
                    double k3 = Math.exp(ds) - 1 - ds;
                    sum += d;
                    count++;
                    sumK1 -= ds;
                    sumK2 += k2;
                    sumK3 += k3;
                    maxK2 = count == 1 ? k2 : Math.max(maxK2, k2);
                    maxK3 = count == 1 ? k3 : Math.max(maxK3, k3);
                }
                double x = switch (rc.level()) {
                    case SEQUENCE -> sum;
                    case GEOMETRIC -> count > 0 ? sum / count : 0;
                    default -> 0;
                };
                boolean seqPasses = true;
                double[] seqStat = new double[PolicyLoss.Rejection.Option.values().length];
                double per = Math.max(count, 1);
                seqStat[PolicyLoss.Rejection.Option.SEQ_SUM_K1.ordinal()] = sumK1;
                seqStat[PolicyLoss.Rejection.Option.SEQ_SUM_K2.ordinal()] = sumK2;
                seqStat[PolicyLoss.Rejection.Option.SEQ_SUM_K3.ordinal()] = sumK3;
                seqStat[PolicyLoss.Rejection.Option.SEQ_MEAN_K1.ordinal()] = sumK1 / per;
                seqStat[PolicyLoss.Rejection.Option.SEQ_MEAN_K2.ordinal()] = sumK2 / per;
                seqStat[PolicyLoss.Rejection.Option.SEQ_MEAN_K3.ordinal()] = sumK3 / per;
                seqStat[PolicyLoss.Rejection.Option.SEQ_MAX_K2.ordinal()] = maxK2;
                seqStat[PolicyLoss.Rejection.Option.SEQ_MAX_K3.ordinal()] = maxK3;
                for (PolicyLoss.Rejection r : on ? rc.rejection() : java.util.List.<PolicyLoss.Rejection>of()) {
                    if (r.option().perSequence()) {
                        seqPasses &= within(r, seqStat[r.option().ordinal()]);
                    }
                }
                for (long i = offsets[k]; i < offsets[k + 1]; i++) {
                    if (mask.getFloat(i) == 0) {
                        continue;
                    }
                    double d = delta[(int) i];
                    double ds = Math.max(-20, Math.min(20, d));
                    raw[(int) i] = Math.exp(Math.max(-20, Math.min(20, rc.level() == PolicyLoss.WeightLevel.TOKEN ? d : x)));
                    boolean passes = seqPasses;
                    for (PolicyLoss.Rejection r : on ? rc.rejection() : java.util.List.<PolicyLoss.Rejection>of()) {
                        passes &= switch (r.option()) {
                            case TOKEN_K1 -> within(r, -ds);
                            case TOKEN_K2 -> within(r, ds * ds / 2);
                            case TOKEN_K3 -> within(r, Math.exp(ds) - 1 - ds);
                            default -> true;
                        };
                    }
                    keep[(int) i] = passes;
                }
            }
        }

        /** A statistic against a criterion: k1 against the log of its ratio bounds, k2 and k3 against the upper bound. */
        private static boolean within(PolicyLoss.Rejection r, double stat) {
            return r.option().k1() ? stat >= Math.log(r.lower()) && stat <= Math.log(r.upper()) : stat <= r.upper();
        }

        /** Kept by the mask and, with a correction, by the rejection. */
        boolean kept(long i) {
            return mask.getFloat(i) != 0 && keep[(int) i];
        }

        /** The weight after the threshold: truncated (TIS) or 0 outside the bounds (mask). */
        private double applied(double w) {
            if (rc.mode() == PolicyLoss.WeightMode.MASK) {
                return w < rc.lower() || w > rc.upper() ? 0 : w;
            }
            return Math.min(w, rc.upper());
        }

        /** Whether a correction is on (a rollout log-prob, or bypass mode). */
        boolean on() {
            return on;
        }

        /** Token i's weight after the threshold (1 without a weight level), applied to the loss or not. */
        double appliedWeight(long i) {
            return on && rc.level() != PolicyLoss.WeightLevel.NONE ? applied(raw[(int) i]) : 1;
        }

        /** The factor of token i's policy-gradient term, before normalisation (1 without weights). */
        double lossWeight(long i) {
            return on && c.appliesWeights() ? applied(raw[(int) i]) : 1;
        }

        /** The mean the weights are divided by: given, or this batch's (tokens, or sequences), or 1. */
        double normalizer() {
            if (!(on && c.appliesWeights() && rc.batchNormalize())) {
                return 1;
            }
            if (!Double.isNaN(rc.normalizer())) {
                return rc.normalizer();
            }
            double[] sums = normSums();
            double mean = sums[1] > 0 ? sums[0] / sums[1] : 0;
            return mean > 1e-8 ? mean : 1; // verl: no normalisation when the mean is (nearly) 0
        }

        /** The applied weights' sum and count: over tokens at the token level, over sequences else. */
        private double[] normSums() {
            double sum = 0;
            double count = 0;
            for (int k = 0; k + 1 < offsets.length; k++) {
                long first = -1;
                for (long i = offsets[k]; i < offsets[k + 1]; i++) {
                    if (mask.getFloat(i) == 0) {
                        continue;
                    }
                    if (rc.level() == PolicyLoss.WeightLevel.TOKEN) {
                        sum += applied(raw[(int) i]);
                        count++;
                    } else if (first < 0) {
                        first = i;
                    }
                }
                if (rc.level() != PolicyLoss.WeightLevel.TOKEN && first >= 0) {
                    sum += applied(raw[(int) first]);
                    count++;
                }
            }
            return new double[] {sum, count};
        }

        /** The correction's statistics (PolicyLoss.Stats' rc* components). */
        void metrics(double[] st) {
            if (!on) {
                return;
            }
            boolean weights = rc.level() != PolicyLoss.WeightLevel.NONE;
            boolean tokenLevel = rc.level() == PolicyLoss.WeightLevel.TOKEN;
            for (int k = 0; k + 1 < offsets.length; k++) {
                double sumD = 0;
                long first = -1;
                boolean rejected = false;
                for (long i = offsets[k]; i < offsets[k + 1]; i++) {
                    if (mask.getFloat(i) == 0) {
                        continue;
                    }
                    first = first < 0 ? i : first;
                    double d = delta[(int) i];
                    double w = raw[(int) i];
                    sumD += d;
                    st[PolicyLoss.STAT_RC_TOKENS]++;
                    st[PolicyLoss.STAT_RC_KL_SUM] += -d;
                    st[PolicyLoss.STAT_RC_K3_SUM] += Math.exp(d) - d - 1;
                    st[PolicyLoss.STAT_RC_CHI2_TOKEN_SUM] += Math.exp(2 * Math.max(-20, Math.min(20, d)));
                    if (!keep[(int) i]) {
                        st[PolicyLoss.STAT_RC_REJECTED_TOKENS]++;
                        rejected = true;
                    }
                    if (weights) {
                        double clamped = Math.max(rc.lower(), Math.min(rc.upper(), w));
                        st[PolicyLoss.STAT_RC_WEIGHT_SUM] += w;
                        st[PolicyLoss.STAT_RC_CLAMPED_SUM] += clamped;
                        st[PolicyLoss.STAT_RC_CLAMPED_SQ_SUM] += clamped * clamped;
                        st[PolicyLoss.STAT_RC_WEIGHT_MIN] = Math.min(st[PolicyLoss.STAT_RC_WEIGHT_MIN], w);
                        st[PolicyLoss.STAT_RC_WEIGHT_MAX] = Math.max(st[PolicyLoss.STAT_RC_WEIGHT_MAX], w);
                        if (tokenLevel) {
                            st[PolicyLoss.STAT_RC_WEIGHT_HIGH] += w > rc.upper() ? 1 : 0;
                            st[PolicyLoss.STAT_RC_WEIGHT_LOW] += w < rc.lower() ? 1 : 0;
                            st[PolicyLoss.STAT_RC_NORM_SUM] += applied(w);
                            st[PolicyLoss.STAT_RC_NORM_COUNT]++;
                        }
                    }
                }
                if (first < 0) {
                    continue;
                }
                st[PolicyLoss.STAT_RC_SEQUENCES]++;
                st[PolicyLoss.STAT_RC_REJECTED_SEQUENCES] += rejected ? 1 : 0;
                st[PolicyLoss.STAT_RC_CHI2_SEQ_SUM] += Math.exp(2 * Math.max(-20, Math.min(20, sumD)));
                if (weights && !tokenLevel) {
                    double w = raw[(int) first];
                    st[PolicyLoss.STAT_RC_WEIGHT_HIGH] += w > rc.upper() ? 1 : 0;
                    st[PolicyLoss.STAT_RC_WEIGHT_LOW] += w < rc.lower() ? 1 : 0;
                    st[PolicyLoss.STAT_RC_NORM_SUM] += applied(w);
                    st[PolicyLoss.STAT_RC_NORM_COUNT]++;
                }
            }
        }
    }
}
