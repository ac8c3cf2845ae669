package io.rlkernels.backend.reference;

import io.rlkernels.ops.internal.MaskedWhitenChecks;
import io.rlkernels.ops.internal.GroupAdvantagesChecks;
import io.rlkernels.ops.internal.GaeChecks;
import static io.rlkernels.backend.reference.HostArgs.host;
import static io.rlkernels.backend.reference.HostArgs.finite;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.OptimalTokenBaseline;
import io.rlkernels.ops.internal.OptimalTokenBaselineChecks;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * The advantage ops (contracts: {@link io.rlkernels.ops.GroupAdvantages}, {@link io.rlkernels.ops.Gae},
 * {@link io.rlkernels.ops.MaskedWhiten}; ARCHITECTURE §5.2) in f64: two-pass group statistics, the
 * reverse GAE scan, masked whitening, the optimal token baseline.
 */
final class AdvantagesReference {
    private AdvantagesReference() {}

    static void groupAdvantages(GroupAdvantages.Config config, Tensor rewards, Tensor weights, GroupLayout groups, Tensor advantages) {
        GroupAdvantagesChecks.check(config, rewards, weights, groups, advantages);
        HostTensor r = host("rewards", rewards);
        HostTensor out = host("advantages", advantages);
        Check.finite("rewards", r);
        boolean opo = config.mode() == GroupAdvantages.Mode.OPO;
        HostTensor w = opo ? host("weights", weights) : null;
        if (opo) {
            Check.finite("weights", w);
        }
        double alpha = 1; // gpg: the batch's sequences over its nonzero rewards
        if (config.mode() == GroupAdvantages.Mode.GPG) {
            long nonzero = 0;
            for (long i = 0; i < r.numel(); i++) {
                nonzero += r.getFloat(i) != 0 ? 1 : 0;
            }
            alpha = (double) r.numel() / Math.max(nonzero, 1);
        }
        GroupLayout layout = GroupAdvantagesChecks.layoutFor(config, groups);
        try {
            HostTensor order = layout.order();
            HostTensor offsets = layout.offsets();
            for (int g = 0; g < layout.groups(); g++) {
                long begin = offsets.getLong(g);
                long n = offsets.getLong(g + 1) - begin;
                double mean = 0;
                double weightSum = 0;
                for (long k = begin; k < begin + n; k++) {
                    long i = order.getLong(k);
                    double weight = opo ? w.getFloat(i) : 1;
                    mean += weight * r.getFloat(i);
                    weightSum += weight;
                }
                mean = opo ? (weightSum > 0 ? mean / weightSum : 0) : mean / n; // opo: the length-weighted mean
                double squares = 0; // two-pass: the deviations first, then their squares
                for (long k = begin; k < begin + n; k++) {
                    double d = r.getFloat(order.getLong(k)) - mean;
                    squares += d * d;
                }
                double std = n > 1 ? Math.sqrt(squares / (config.unbiasedStd() ? n - 1 : n)) : 0;
                long best = -1; // passk: the first of the group's maxima, and the largest of the rest
                double second = Double.NEGATIVE_INFINITY;
                if (config.mode() == GroupAdvantages.Mode.PASSK) {
                    for (long k = begin; k < begin + n; k++) {
                        if (best < 0 || r.getFloat(order.getLong(k)) > r.getFloat(order.getLong(best))) {
                            best = k;
                        }
                    }
                    for (long k = begin; k < begin + n; k++) {
                        if (k != best) {
                            second = Math.max(second, r.getFloat(order.getLong(k)));
                        }
                    }
                }
                for (long k = begin; k < begin + n; k++) {
                    long i = order.getLong(k);
                    double x = r.getFloat(i);
                    double a = switch (config.mode()) {
                        case GPG -> alpha * (n == 1 ? x : x - mean); // a group of one: mean 0, as verl
                        case OPO -> n == 1 ? x : x - mean;
                        case PASSK -> k != best || x == second ? 0 // a tie for the best: 0, even for eps = 0
                                : config.scaleByStd() ? (x - second) / (std + config.eps()) : x - second;
                        default -> n == 1 ? 0 : switch (config.mode()) {
                            case GRPO, BATCH -> x == mean ? 0 : (x - mean) / (std + config.eps()); // constant: 0 for any eps
                            case DRGRPO -> x - mean;
                            case RLOO -> (x - mean) * n / (n - 1);
                            case NONE -> x;
                            default -> throw new IllegalStateException();
                        };
                    };
                    out.setFloat(i, (float) a);
                }
            }
        } finally {
            if (layout != groups) {
                layout.close();
            }
        }
        long bad = Check.firstOutside(out, Float.MAX_VALUE);
        if (bad >= 0) {
            throw GroupAdvantagesChecks.overflow(config, bad, out.getFloat(bad));
        }
    }

    static void sequenceToTokens(Tensor perSequence, Tensor mask, Tensor perToken) {
        GroupAdvantagesChecks.checkBroadcast(perSequence, mask, perToken);
        HostTensor a = host("perSequence", perSequence);
        HostTensor m = host("mask", mask);
        HostTensor out = host("perToken", perToken);
        long t = mask.dim(1);
        for (long s = 0; s < a.numel(); s++) {
            for (long j = 0; j < t; j++) {
                out.setFloat(s * t + j, m.getFloat(s * t + j) != 0 ? a.getFloat(s) : 0f);
            }
        }
    }

    static void gae(Gae.Config config, Tensor rewards, Tensor values, Tensor mask, Tensor advantages, Tensor returns) {
        GaeChecks.check(rewards, values, mask, advantages, returns);
        scan(config.gamma(), config.lambda(), host("rewards", rewards), host("values", values), host("mask", mask),
                host("advantages", advantages), host("returns", returns));
    }

    static void discountedReturns(float gamma, Tensor rewards, Tensor mask, Tensor returns) {
        Gae.checkGamma(gamma);
        GaeChecks.check(rewards, null, mask, returns);
        scan(gamma, 1, host("rewards", rewards), null, host("mask", mask), null, host("returns", returns));
    }

    /**
     * The reverse scan of both: with values, GAE (advantages and returns = advantages + values);
     * without, discounted returns-to-go (A_t = r_t + gamma * A_next, lambda unused).
     */
    private static void scan(double gamma, double lambda, HostTensor r, HostTensor v, HostTensor m, HostTensor adv,
                             HostTensor ret) {
        Check.finite("rewards", r);
        if (v != null) {
            Check.finite("values", v);
        }
        long b = r.dim(0);
        long t = r.dim(1);
        for (long row = 0; row < b; row++) {
            double next = 0;      // A at the next kept position
            double nextValue = 0; // V at the next kept position
            for (long j = t - 1; j >= 0; j--) {
                long i = row * t + j;
                if (m.getFloat(i) == 0) {
                    if (adv != null) {
                        adv.setFloat(i, 0f);
                    }
                    ret.setFloat(i, 0f);
                    continue;
                }
                if (v == null) {
                    next = r.getFloat(i) + gamma * next;
                    ret.setFloat(i, (float) next);
                } else {
                    double value = v.getFloat(i);
                    double delta = r.getFloat(i) + gamma * nextValue - value;
                    next = delta + gamma * lambda * next;
                    nextValue = value;
                    adv.setFloat(i, (float) next);
                    ret.setFloat(i, (float) (next + value));
                }
            }
        }
        for (HostTensor out : adv == null ? new HostTensor[] {ret} : new HostTensor[] {adv, ret}) {
            long bad = Check.firstOutside(out, Float.MAX_VALUE);
            if (bad >= 0) {
                throw GaeChecks.overflow(out == adv ? "advantages" : "returns", bad, out.getFloat(bad));
            }
        }
    }

    /**
     * The optimal token baseline in f64 from its definition ({@link OptimalTokenBaseline}): G and W
     * per row, then per group and position the weighted mean of G; W beyond float32 is refused, as
     * the kernels, which keep W in float32, would turn it into NaN.
     */
    static void optimalTokenBaseline(OptimalTokenBaseline.Config config, OptimalTokenBaseline.Inputs in, Tensor advantages,
                                     Tensor returns) {
        OptimalTokenBaselineChecks.check(config, in, advantages, returns);
        HostTensor r = host("tokenRewards", in.tokenRewards());
        HostTensor m = host("mask", in.mask());
        HostTensor lp = host("oldLogp", in.oldLogp());
        HostTensor q = host("sumPiSquared", in.sumPiSquared());
        HostTensor rho = in.isWeights() == null ? null : host("isWeights", in.isWeights());
        HostTensor adv = host("advantages", advantages);
        HostTensor ret = host("returns", returns);
        Check.finite("tokenRewards", r);
        Check.finite("oldLogp", lp);
        Check.finite("sumPiSquared", q);
        if (rho != null) {
            Check.finite("isWeights", rho);
        }
        int s = (int) r.dim(0);
        int t = (int) r.dim(1);
        double[][] g = new double[s][t];
        double[][] w = new double[s][t];
        int[] length = new int[s];
        for (int row = 0; row < s; row++) {
            double sum = 0;
            for (int j = t - 1; j >= 0; j--) {
                long i = (long) row * t + j;
                sum += m.getFloat(i) != 0 ? r.getFloat(i) : 0;
                g[row][j] = sum;
            }
            double cumulative = 0;
            for (int j = 0; j < t; j++) {
                long i = (long) row * t + j;
                if (m.getFloat(i) != 0) {
                    double weight = rho == null ? 1 : rho.getFloat(i);
                    cumulative += (1 - 2 * Math.exp(lp.getFloat(i)) + q.getFloat(i)) * weight * weight;
                    length[row]++;
                    if (!(Math.abs(cumulative) <= Float.MAX_VALUE)) {
                        throw OptimalTokenBaselineChecks.overflow("W", i, (float) cumulative);
                    }
                }
                w[row][j] = cumulative;
            }
        }
        HostTensor order = in.groups().order();
        HostTensor offsets = in.groups().offsets();
        for (int grp = 0; grp < in.groups().groups(); grp++) {
            int begin = (int) offsets.getLong(grp);
            int n = (int) offsets.getLong(grp + 1) - begin;
            int longest = -1; // the row of a unique longest trajectory, if it outlasts the second longest
            int second = -1;
            int max = -1;
            for (int k = begin; k < begin + n; k++) {
                int len = length[(int) order.getLong(k)];
                if (len > max) {
                    second = max;
                    max = len;
                    longest = (int) order.getLong(k);
                } else if (len > second) {
                    second = len;
                }
            }
            boolean zeroTail = config.handleZeroTail() && n > 1 && max > second;
            for (int j = 0; j < t; j++) {
                double num = 0;
                double den = 0;
                for (int k = begin; k < begin + n; k++) {
                    int row = (int) order.getLong(k);
                    if (m.getFloat((long) row * t + j) != 0) {
                        num += g[row][j] * w[row][j];
                        den += w[row][j];
                    }
                }
                double baseline = den + config.eps() != 0 ? num / (den + config.eps()) : 0;
                for (int k = begin; k < begin + n; k++) {
                    int row = (int) order.getLong(k);
                    long i = (long) row * t + j;
                    boolean kept = m.getFloat(i) != 0;
                    double b = n == 1 || (zeroTail && row == longest && j >= second) ? 0 : baseline;
                    adv.setFloat(i, kept ? (float) (g[row][j] - b) : 0f);
                    ret.setFloat(i, kept ? (float) g[row][j] : 0f);
                }
            }
        }
        for (HostTensor out : new HostTensor[] {adv, ret}) {
            long bad = Check.firstOutside(out, Float.MAX_VALUE);
            if (bad >= 0) {
                throw OptimalTokenBaselineChecks.overflow(out == adv ? "advantages" : "returns", bad, out.getFloat(bad));
            }
        }
    }

    static void maskedWhiten(MaskedWhiten.Config config, Tensor x, Tensor mask, Tensor out) {
        MaskedWhitenChecks.check(x, mask, out);
        HostTensor in = host("x", x);
        HostTensor m = host("mask", mask);
        HostTensor o = host("out", out);
        Check.finite("x", in);
        long n = in.numel();
        long kept = 0;
        double mean = 0;
        for (long i = 0; i < n; i++) {
            if (m.getFloat(i) != 0) {
                mean += in.getFloat(i);
                kept++;
            }
        }
        mean = kept > 0 ? mean / kept : 0;
        double squares = 0;
        for (long i = 0; i < n; i++) {
            if (m.getFloat(i) != 0) {
                double d = in.getFloat(i) - mean;
                squares += d * d;
            }
        }
        long dof = config.unbiased() ? kept - 1 : kept;
        double var = dof > 0 ? squares / dof : 0;
        double std = Math.sqrt(var + config.eps());
        for (long i = 0; i < n; i++) {
            o.setFloat(i, m.getFloat(i) != 0 && std > 0 ? (float) ((in.getFloat(i) - mean) / std) : 0f);
        }
    }
}
