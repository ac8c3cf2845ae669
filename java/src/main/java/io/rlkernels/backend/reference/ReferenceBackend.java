package io.rlkernels.backend.reference;

import io.rlkernels.backend.BackendBase;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.Matmul;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * Plain Java with f64 accumulation, written to be obviously right: the oracle every other
 * backend is tested against. Single-threaded; host tensors only. The per-row math is public
 * ({@link #logProbsRow}, {@link #logProbsGradRow}) so that tests can take finite differences of it.
 */
public final class ReferenceBackend extends BackendBase {

    /** One row's forward in f64; {@code max} and {@code logSum} are the row's m and ln s (lse = m/t + ln s). */
    public record Row(double logp, double lse, double entropy, double max, double logSum) {
        static final Row NONE = new Row(Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN);
        static final Row IGNORED = new Row(0, 0, 0, 0, 0);
    }

    /**
     * logp, lse and entropy of logits z at temperature t for target y. With x_j = (z_j - max)/t:
     * lse = max/t + log s, logp = x_y - log s, H = log s - sum_j e^x_j x_j / s, s = sum_j e^x_j,
     * whose terms at x_j = 0 are counted apart from the rest (near-certain rows: see the code).
     * A row with a NaN or +inf logit, or with no finite logit, has no distribution: all three NaN.
     * A -inf logit is a banned token (p = 0; logp = -inf if it is the target).
     */
    public static Row logProbsRow(double[] z, int y, double t) {
        double max = Double.NEGATIVE_INFINITY;
        for (double zj : z) {
            max = Math.max(max, zj); // NaN if any is NaN
        }
        if (!(max < Double.POSITIVE_INFINITY) || max == Double.NEGATIVE_INFINITY) {
            return Row.NONE;
        }
        long ties = 0; // the logits equal to max, each e^0 = 1: s = ties + rest, kept apart so that
        double rest = 0; // log s = log(ties) + log1p(rest / ties) keeps rest's digits below 1e-16
        double weighted = 0;
        for (double zj : z) {
            if (zj == Double.NEGATIVE_INFINITY) {
                continue; // p = 0, and 0 * -inf would be NaN
            }
            double x = (zj - max) / t;
            if (x == 0) {
                ties++;
                continue;
            }
            double e = Math.exp(x);
            rest += e;
            weighted += e * x;
        }
        double logSum = Math.log(ties) + Math.log1p(rest / ties);
        return new Row((z[y] - max) / t - logSum, max / t + logSum, logSum - weighted / (ties + rest), max, logSum);
    }

    /**
     * dz_j = (g (1[j=y] - p_j) - h p_j (log p_j + H)) / t with log p_j = (z_j - m)/t - ln s, from
     * the row's max m and ln s (never from lse, whose rounding would reach every p), written into
     * {@code dz}; at the target 1 - p_y = -expm1(log p_y), which keeps its digits when p_y is near
     * 1. A row whose m or ln s is not finite (the forward's NaN for a row without a distribution)
     * gets NaN everywhere.
     */
    public static void logProbsGradRow(double[] z, int y, double t, double max, double logSum, double entropy, double g,
                                       double h, double[] dz) {
        if (!Double.isFinite(max) || !Double.isFinite(logSum)) {
            java.util.Arrays.fill(dz, Double.NaN);
            return;
        }
        for (int j = 0; j < z.length; j++) {
            double logP = (z[j] - max) / t - logSum;
            double p = Math.exp(logP);
            double entropyTerm = p == 0 ? 0 : h * p * (logP + entropy); // 0 for a banned token (z = -inf)
            double oneHotMinusP = j == y ? -Math.expm1(logP) : -p;
            dz[j] = (g * oneHotMinusP - entropyTerm) / t;
        }
    }

    @Override
    public BackendKind kind() {
        return BackendKind.REFERENCE;
    }

    @Override
    public String description() {
        return "reference: plain Java, f64 accumulation, 1 thread";
    }

    @Override
    protected Tensor newTensor(DType dtype, long... shape) {
        return HostTensor.allocate(dtype, shape);
    }

    @Override
    protected void runLogProbs(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                               Tensor lseParts) {
        LogProbs.Dims d = LogProbs.checkForward(config, logits, targets, logp, lse, entropy, lseParts);
        HostTensor z = host("logits", logits);
        HostTensor y = host("targets", targets);
        HostTensor outLogp = host("logp", logp);
        HostTensor outLse = lse == null ? null : host("lse", lse);
        HostTensor outEntropy = entropy == null ? null : host("entropy", entropy);
        HostTensor outParts = lseParts == null ? null : host("lseParts", lseParts);
        LogProbs.checkTargets(y, d.vocab(), config.ignoreIndex());
        double[] row = new double[rowLength(d.vocab())];

        for (long i = 0; i < d.rows(); i++) {
            long target = y.getLong(i);
            Row r = target == config.ignoreIndex() ? Row.IGNORED
                    : logProbsRow(readRow(z, i, row), (int) target, config.temperature());
            if (Float.isInfinite((float) r.lse()) || (Float.isInfinite((float) r.logp()) && Double.isFinite(row[(int) target]))) {
                throw LogProbs.overflow(i, config);
            }
            outLogp.setFloat(i, (float) r.logp());
            if (outLse != null) {
                outLse.setFloat(i, (float) r.lse());
            }
            if (outEntropy != null) {
                outEntropy.setFloat(i, (float) r.entropy());
            }
            if (outParts != null) {
                outParts.setFloat(2 * i, (float) r.max()); // one of the logits: exact
                outParts.setFloat(2 * i + 1, (float) r.logSum());
            }
        }
    }

    @Override
    protected void runLogProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                 Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        LogProbs.Dims d = LogProbs.checkBackward(config, logits, targets, lseParts, entropy, gradLogp, gradEntropy, gradLogits);
        HostTensor z = host("logits", logits);
        HostTensor y = host("targets", targets);
        HostTensor parts = host("lseParts", lseParts);
        HostTensor entropyIn = gradEntropy == null ? null : host("entropy", entropy);
        HostTensor g = gradLogp == null ? null : host("gradLogp", gradLogp);
        HostTensor h = gradEntropy == null ? null : host("gradEntropy", gradEntropy);
        HostTensor out = host("gradLogits", gradLogits);
        LogProbs.checkTargets(y, d.vocab(), config.ignoreIndex());
        float[] limits = LogProbs.upstreamLimits(config.temperature(), d.vocab());
        if (g != null) {
            Check.within("gradLogp", g, limits[0], LogProbs.upstreamReason(config.temperature()));
        }
        if (h != null) {
            Check.within("gradEntropy", h, limits[1], LogProbs.upstreamReason(config.temperature()));
        }
        double[] row = new double[rowLength(d.vocab())];
        double[] dz = new double[row.length];

        for (long i = 0; i < d.rows(); i++) {
            long target = y.getLong(i);
            if (target == config.ignoreIndex()) {
                java.util.Arrays.fill(dz, 0);
            } else {
                logProbsGradRow(readRow(z, i, row), (int) target, config.temperature(), parts.getFloat(2 * i),
                        parts.getFloat(2 * i + 1), entropyIn == null ? 0 : entropyIn.getFloat(i), g == null ? 0 : g.getFloat(i),
                        h == null ? 0 : h.getFloat(i), dz);
            }
            for (int j = 0; j < dz.length; j++) {
                out.setFloat(i * dz.length + j, (float) dz[j]);
            }
        }
    }

    @Override
    protected void runGroupAdvantages(GroupAdvantages.Config config, Tensor rewards, GroupLayout groups, Tensor advantages) {
        GroupAdvantages.check(config, rewards, groups, advantages);
        HostTensor r = host("rewards", rewards);
        HostTensor out = host("advantages", advantages);
        Check.finite("rewards", r);
        GroupLayout layout = GroupAdvantages.layoutFor(config, groups);
        try {
            HostTensor order = layout.order();
            HostTensor offsets = layout.offsets();
            for (int g = 0; g < layout.groups(); g++) {
                long begin = offsets.getLong(g);
                long n = offsets.getLong(g + 1) - begin;
                double mean = 0;
                for (long k = begin; k < begin + n; k++) {
                    mean += r.getFloat(order.getLong(k));
                }
                mean /= n;
                double squares = 0; // two-pass: the deviations first, then their squares
                for (long k = begin; k < begin + n; k++) {
                    double d = r.getFloat(order.getLong(k)) - mean;
                    squares += d * d;
                }
                double std = n > 1 ? Math.sqrt(squares / (config.unbiasedStd() ? n - 1 : n)) : 0;
                for (long k = begin; k < begin + n; k++) {
                    long i = order.getLong(k);
                    double x = r.getFloat(i);
                    double a = n == 1 ? 0 : switch (config.mode()) {
                        case GRPO, BATCH -> x == mean ? 0 : (x - mean) / (std + config.eps()); // constant: 0 for any eps
                        case DRGRPO -> x - mean;
                        case RLOO -> (x - mean) * n / (n - 1);
                        case NONE -> x;
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
            throw GroupAdvantages.overflow(config, bad, out.getFloat(bad));
        }
    }

    @Override
    protected void runSequenceToTokens(Tensor perSequence, Tensor mask, Tensor perToken) {
        GroupAdvantages.checkBroadcast(perSequence, mask, perToken);
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

    @Override
    protected void runGae(Gae.Config config, Tensor rewards, Tensor values, Tensor mask, Tensor advantages, Tensor returns) {
        Gae.check(rewards, values, mask, advantages, returns);
        scan(config.gamma(), config.lambda(), host("rewards", rewards), host("values", values), host("mask", mask),
                host("advantages", advantages), host("returns", returns));
    }

    @Override
    protected void runDiscountedReturns(float gamma, Tensor rewards, Tensor mask, Tensor returns) {
        Gae.checkGamma(gamma);
        Gae.check(rewards, null, mask, returns);
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
                throw Gae.overflow(out == adv ? "advantages" : "returns", bad, out.getFloat(bad));
            }
        }
    }

    @Override
    protected void runMaskedWhiten(MaskedWhiten.Config config, Tensor x, Tensor mask, Tensor out) {
        MaskedWhiten.check(x, mask, out);
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

    @Override
    protected void runPolicyLoss(PolicyLoss.Config c, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy, Tensor stats) {
        PolicyLoss.check(c, in, gradLogp, gradEntropy, stats);
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
                            st[r > 1 + (double) c.clipHigh() ? 3 : 4]++;
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
                        case K3 -> { // x = ref - logp, clamped to [-20, 20]; value clamped to [-10, 10]
                            double x = Math.max(-20, Math.min(20, -diff));
                            kl = Math.exp(x) - x - 1;
                            dKl = Math.abs(x) < 20 ? 1 - Math.exp(x) : 0;
                            if (kl > 10) {
                                kl = 10;
                                dKl = 0;
                            }
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
                throw PolicyLoss.overflow(o == grad ? "gradLogp" : "gradEntropy", bad, o.getFloat(bad));
            }
        }
        HostTensor out = host("stats", stats);
        for (int j = 0; j < PolicyLoss.STATS_LENGTH; j++) {
            out.setDouble(j, st[j]);
        }
    }

    @Override
    protected void runMaskRows(Tensor targets, Tensor mask, long vocab, Tensor out) {
        Bgpo.checkMaskRows(targets, mask, vocab, out);
        HostTensor y = host("targets", targets);
        HostTensor m = host("mask", mask);
        HostTensor o = host("out", out);
        LogProbs.checkTokenIds(y, vocab);
        for (long i = 0; i < y.numel(); i++) {
            o.setLong(i, m.getFloat(i) != 0 ? y.getLong(i) : Bgpo.UNMASKED);
        }
    }

    @Override
    protected void runBgpoCoefficients(Bgpo.Config c, Tensor logp, SequenceLayout rows, Tensor mask, Tensor weights, Tensor oldValues,
                                 Tensor advantages, Tensor values, Tensor upstream, Tensor state) {
        Bgpo.checkCoefficients(c, logp, rows, mask, weights, oldValues, advantages, values, upstream, state);
        HostTensor lp = host("logp", logp);
        HostTensor m = host("mask", mask);
        HostTensor w = host("weights", weights);
        Bgpo.checkWeights(w);
        HostTensor old = finite("oldValues", oldValues);
        HostTensor adv = finite("advantages", advantages);
        HostTensor out = host("values", values);
        HostTensor g = host("upstream", upstream);
        double scale = 1.0 / (c.denominatorFor(rows.sequences()) * c.samples());
        double[] st = Bgpo.Stats.initial();
        for (int s = 0; s < rows.sequences(); s++) {
            long b = rows.offsets().getLong(s);
            long e = rows.offsets().getLong(s + 1);
            double sum = 0;
            boolean any = false;
            for (long p = b; p < e; p++) {
                if (m.getFloat(p) != 0) {
                    sum += lp.getFloat(p);
                    any = true;
                }
            }
            Coefficient k = coefficient(c, adv.getFloat(s), w.getFloat(s) * sum - old.getFloat(s), st);
            st[Bgpo.STAT_LOSS] += k.f() * scale;
            st[Bgpo.STAT_EMPTY] += any ? 0 : 1;
            out.setFloat(s, (float) (w.getFloat(s) * sum));
            float up = (float) (-adv.getFloat(s) * k.dfdd() * w.getFloat(s) * scale);
            for (long p = b; p < e; p++) {
                g.setFloat(p, m.getFloat(p) != 0 ? up : 0f);
            }
        }
        requireRepresentable(c, out, g);
        addState(host("state", state), st);
    }

    /** f(A, d) of one sequence-sample and -df/dd / A = psi'(d) kappa; counts clipping and d into st. */
    private record Coefficient(double f, double dfdd) {}

    private static Coefficient coefficient(Bgpo.Config c, double a, double d, double[] st) {
        double psi;
        double dpsi;
        if (a >= 0) {
            psi = 1 + d;
            dpsi = 1;
        } else {
            double dc = Math.max(-20, Math.min(20, d));
            psi = Math.exp(dc);
            dpsi = dc == d ? psi : 0;
        }
        double clipped = Math.min(Math.max(psi, 1 - (double) c.clipLow()), 1 + (double) c.clipHigh());
        double unclippedLoss = -a * psi;
        double clippedLoss = -a * clipped;
        double f = Math.max(unclippedLoss, clippedLoss);
        double kappa = unclippedLoss >= clippedLoss ? 1 : 0;
        if (clippedLoss > unclippedLoss) {
            st[psi > 1 + (double) c.clipHigh() ? 2 : 3]++;
        }
        if (c.dualClip() > 0 && a < 0 && f > -c.dualClip() * a) {
            f = -c.dualClip() * a;
            kappa = 0;
            st[Bgpo.STAT_CLIP_DUAL]++;
        }
        st[Bgpo.STAT_SEEN]++;
        st[Bgpo.STAT_D_SUM] += d;
        st[Bgpo.STAT_D_MIN] = Math.min(st[Bgpo.STAT_D_MIN], d);
        st[Bgpo.STAT_D_MAX] = Math.max(st[Bgpo.STAT_D_MAX], d);
        st[Bgpo.STAT_PSI_SUM] += psi;
        return new Coefficient(f, kappa * dpsi);
    }

    /** state += st (min and max combined). */
    private static void addState(HostTensor state, double[] st) {
        for (int j = 0; j < Bgpo.STATS_LENGTH; j++) {
            double v = state.getDouble(j);
            state.setDouble(j, j == Bgpo.STAT_D_MIN ? Math.min(v, st[j]) : j == Bgpo.STAT_D_MAX ? Math.max(v, st[j]) : v + st[j]);
        }
    }

    /** The whole sample in f64, directly from the definition (not through the primitives above). */
    @Override
    protected void runBgpoStep(Bgpo.Config c, Bgpo.Sample in, Bgpo.Workspace ws, Tensor gradLogits, Tensor state) {
        Bgpo.checkStep(c, in.logits(), in.targets(), in.rows(), in.mask(), in.weights(), in.oldValues(), in.advantages(),
                gradLogits, ws.values(), state);
        HostTensor z = host("logits", in.logits());
        HostTensor y = host("targets", in.targets());
        HostTensor m = host("mask", in.mask());
        HostTensor w = host("weights", in.weights());
        Bgpo.checkWeights(w);
        HostTensor old = finite("oldValues", in.oldValues());
        HostTensor adv = finite("advantages", in.advantages());
        HostTensor out = host("gradLogits", gradLogits);
        HostTensor values = host("values", ws.values());
        SequenceLayout rows = in.rows();
        long v = z.dim(1);
        LogProbs.checkTokenIds(y, v);
        double t = c.temperature();
        double scale = 1.0 / (c.denominatorFor(rows.sequences()) * c.samples());
        double[] st = Bgpo.Stats.initial();
        double[] row = new double[rowLength(v)];
        double[] dz = new double[row.length];
        for (int s = 0; s < rows.sequences(); s++) {
            long b = rows.offsets().getLong(s);
            long e = rows.offsets().getLong(s + 1);
            double sum = 0;
            boolean any = false;
            Row[] rowsOfSeq = new Row[(int) (e - b)];
            for (long p = b; p < e; p++) {
                if (m.getFloat(p) != 0) {
                    Row r = logProbsRow(readRow(z, p, row), (int) y.getLong(p), t);
                    sum += r.logp();
                    rowsOfSeq[(int) (p - b)] = r;
                    any = true;
                }
            }
            Coefficient k = coefficient(c, adv.getFloat(s), w.getFloat(s) * sum - old.getFloat(s), st);
            st[Bgpo.STAT_LOSS] += k.f() * scale;
            st[Bgpo.STAT_EMPTY] += any ? 0 : 1;
            values.setFloat(s, (float) (w.getFloat(s) * sum));
            if (Float.isInfinite(values.getFloat(s))) {
                throw Bgpo.overflow(c, "values", s, values.getFloat(s));
            }
            double g = -adv.getFloat(s) * k.dfdd() * w.getFloat(s) * scale; // dL/dlogp of a masked row
            for (long p = b; p < e; p++) {
                if (m.getFloat(p) != 0 && !(Math.abs((float) g) <= Bgpo.upstreamLimit(c))) {
                    throw Bgpo.overflow(c, "upstream", p, (float) g);
                }
                if (m.getFloat(p) != 0) {
                    Row r = rowsOfSeq[(int) (p - b)];
                    logProbsGradRow(readRow(z, p, row), (int) y.getLong(p), t, r.max(), r.logSum(), 0, g, 0, dz);
                } else {
                    java.util.Arrays.fill(dz, 0);
                }
                for (int j = 0; j < v; j++) {
                    out.setFloat(p * v + j, (float) dz[j]);
                }
            }
        }
        addState(host("state", state), st);
    }

    @Override
    protected void runMatmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        Matmul.Dims d = Matmul.check(transA, transB, alpha, a, b, beta, c);
        HostTensor ha = host("a", a);
        HostTensor hb = host("b", b);
        HostTensor hc = host("c", c);
        long ka = transA ? d.m() : d.k(); // row lengths of A and B as stored
        long kb = transB ? d.k() : d.n();
        for (long i = 0; i < d.m(); i++) {
            for (long j = 0; j < d.n(); j++) {
                double sum = 0;
                for (long k = 0; k < d.k(); k++) {
                    double x = transA ? ha.getFloat(k * ka + i) : ha.getFloat(i * ka + k);
                    double yv = transB ? hb.getFloat(j * kb + k) : hb.getFloat(k * kb + j);
                    sum += x * yv;
                }
                double prev = beta == 0 ? 0 : beta * (double) hc.getFloat(i * d.n() + j);
                hc.setFloat(i * d.n() + j, (float) (alpha * sum + prev));
            }
        }
    }

    /** BGPO's values and per-row upstream gradients within float32 and the gradient's bound. */
    private static void requireRepresentable(Bgpo.Config c, HostTensor values, HostTensor upstream) {
        long bad = Check.firstOutside(values, Float.MAX_VALUE);
        if (bad >= 0) {
            throw Bgpo.overflow(c, "values", bad, values.getFloat(bad));
        }
        bad = Check.firstOutside(upstream, Bgpo.upstreamLimit(c));
        if (bad >= 0) {
            throw Bgpo.overflow(c, "upstream", bad, upstream.getFloat(bad));
        }
    }

    private static HostTensor finite(String arg, Tensor t) {
        HostTensor h = host(arg, t);
        Check.finite(arg, h);
        return h;
    }

    /** A row of logits as a Java array: the reference's one limit on the vocabulary. */
    private static int rowLength(long vocab) {
        if (vocab > Integer.MAX_VALUE - 8) {
            throw Check.fail("logits", "a vocabulary below 2^31 on the reference backend (its rows are Java arrays)", vocab);
        }
        return (int) vocab;
    }

    private static double[] readRow(HostTensor z, long i, double[] row) {
        long base = i * row.length;
        for (int j = 0; j < row.length; j++) {
            row[j] = z.getFloat(base + j);
        }
        return row;
    }

    private static HostTensor host(String arg, Tensor t) {
        return Check.host(arg, t, "reference");
    }

    @Override
    protected void release() {}
}
