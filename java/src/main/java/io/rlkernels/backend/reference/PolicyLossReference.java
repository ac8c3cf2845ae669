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
        double denominator = c.denominator();
        if (Double.isNaN(denominator)) {
            denominator = switch (c.aggregation()) {
                case TOKEN_MEAN -> {
                    double kept = 0;
                    for (long i = 0; i < n; i++) {
                        kept += mask.getFloat(i) != 0 ? 1 : 0;
                    }
                    yield kept;
                }
                case SEQ_MEAN_TOKEN_MEAN, SEQ_MEAN_TOKEN_SUM -> {
                    double seqs = 0;
                    for (int k = 0; k + 1 < offsets.length; k++) {
                        boolean any = false;
                        for (long i = offsets[k]; i < offsets[k + 1]; i++) {
                            any |= mask.getFloat(i) != 0;
                        }
                        seqs += any ? 1 : 0;
                    }
                    yield seqs;
                }
                case SEQ_MEAN_TOKEN_SUM_NORM -> in.sequences().longest();
            };
            denominator = denominator == 0 ? 1 : denominator; // nothing kept: a zero loss either way
        }
        double[] st = new double[PolicyLoss.STATS_LENGTH];
        st[PolicyLoss.STAT_RATIO_MIN] = Double.POSITIVE_INFINITY;
        st[PolicyLoss.STAT_RATIO_MAX] = Double.NEGATIVE_INFINITY;
        st[PolicyLoss.STAT_DENOMINATOR] = denominator;
        for (int k = 0; k + 1 < offsets.length; k++) {
            long b = offsets[k];
            long e = offsets[k + 1];
            double kept = 0;
            double sumLogRatio = 0;
            for (long i = b; i < e; i++) {
                if (mask.getFloat(i) != 0) {
                    kept++;
                    sumLogRatio += (double) logp.getFloat(i) - old.getFloat(i);
                }
            }
            if (in.sequences() != null && kept > 0) {
                st[PolicyLoss.STAT_SEQUENCES]++;
            }
            double seqLog = kept > 0 ? sumLogRatio / kept : 0;
            boolean seqClamped = Math.abs(seqLog) > 20;
            double seqRatio = Math.exp(Math.max(-20, Math.min(20, seqLog)));
            double w = c.aggregation() == PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_MEAN ? 1 / (Math.max(kept, 1) * denominator)
                    : 1 / denominator;
            double seqCoef = 0; // sum of w dl/dr over the sequence, for the sequence ratio
            double[] g = new double[(int) (e - b)];
            for (long i = b; i < e; i++) {
                if (mask.getFloat(i) == 0) {
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
                double r = token ? Math.exp(d) : seqRatio;
                boolean ratioClamped = token ? d != raw : seqClamped;
                double clipped = Math.min(Math.max(r, 1 - (double) c.clipLow()), 1 + (double) c.clipHigh());
                double pg;
                double dPgDr = 0;     // through the ratio
                double dPgDirect = 0; // through logp itself (cispo, reinforce)
                switch (c.loss()) {
                    case PPO -> {
                        double unclippedLoss = -a * r;
                        double clippedLoss = -a * clipped;
                        pg = Math.max(unclippedLoss, clippedLoss);
                        dPgDr = unclippedLoss >= clippedLoss ? -a : 0;
                        if (clippedLoss > unclippedLoss) {
                            st[r > 1 + (double) c.clipHigh() ? PolicyLoss.STAT_CLIP_HIGH : PolicyLoss.STAT_CLIP_LOW]++;
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
                    default -> throw new IllegalStateException();
                }
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
                if (!ratioClamped) {
                    if (token) {
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
                boolean shared = c.ratio() == PolicyLoss.RatioLevel.SEQUENCE && mask.getFloat(i) != 0;
                grad.setFloat(i, (float) (g[(int) (i - b)] + (shared ? seqCoef * seqRatio / kept : 0)));
            }
        }
        if (st[PolicyLoss.STAT_TOKENS] == 0) {
            st[PolicyLoss.STAT_RATIO_MIN] = 0;
            st[PolicyLoss.STAT_RATIO_MAX] = 0;
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
}
