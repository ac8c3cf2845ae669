package io.rlkernels.backend.reference;

import io.rlkernels.ops.internal.LogProbsChecks;
import static io.rlkernels.backend.reference.HostArgs.host;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * The log-probs op (contract: {@link io.rlkernels.ops.LogProbs}, ARCHITECTURE §5.1) in f64, from the
 * definition: one row at a time, forward and backward. The per-row math is public so that tests
 * can take finite differences of it and compute the truth of near-certain rows.
 */
public final class LogProbsReference {
    private LogProbsReference() {}

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

    static void forward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                               Tensor lseParts) {
        LogProbs.Dims d = LogProbsChecks.checkForward(config, logits, targets, logp, lse, entropy, lseParts);
        HostTensor z = host("logits", logits);
        HostTensor y = host("targets", targets);
        HostTensor outLogp = host("logp", logp);
        HostTensor outLse = lse == null ? null : host("lse", lse);
        HostTensor outEntropy = entropy == null ? null : host("entropy", entropy);
        HostTensor outParts = lseParts == null ? null : host("lseParts", lseParts);
        LogProbsChecks.checkTargets(y, d.vocab(), config.ignoreIndex());
        double[] row = new double[rowLength(d.vocab())];

        for (long i = 0; i < d.rows(); i++) {
            long target = y.getLong(i);
            Row r = target == config.ignoreIndex() ? Row.IGNORED
                    : logProbsRow(readRow(z, i, row), (int) target, config.temperature());
            if (Float.isInfinite((float) r.lse()) || (Float.isInfinite((float) r.logp()) && Double.isFinite(row[(int) target]))) {
                throw LogProbsChecks.overflow(i, config);
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

    static void backward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                 Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        LogProbs.Dims d = LogProbsChecks.checkBackward(config, logits, targets, lseParts, entropy, gradLogp, gradEntropy, gradLogits);
        HostTensor z = host("logits", logits);
        HostTensor y = host("targets", targets);
        HostTensor parts = host("lseParts", lseParts);
        HostTensor entropyIn = gradEntropy == null ? null : host("entropy", entropy);
        HostTensor g = gradLogp == null ? null : host("gradLogp", gradLogp);
        HostTensor h = gradEntropy == null ? null : host("gradEntropy", gradEntropy);
        HostTensor out = host("gradLogits", gradLogits);
        LogProbsChecks.checkTargets(y, d.vocab(), config.ignoreIndex());
        float[] limits = LogProbsChecks.upstreamLimits(config.temperature(), d.vocab());
        if (g != null) {
            Check.within("gradLogp", g, limits[0], LogProbsChecks.upstreamReason(config.temperature()));
        }
        if (h != null) {
            Check.within("gradEntropy", h, limits[1], LogProbsChecks.upstreamReason(config.temperature()));
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

    /** A row of logits as a Java array: the reference's one limit on the vocabulary. */
    static int rowLength(long vocab) {
        if (vocab > Integer.MAX_VALUE - 8) {
            throw Check.fail("logits", "a vocabulary below 2^31 on the reference backend (its rows are Java arrays)", vocab);
        }
        return (int) vocab;
    }

    static double[] readRow(HostTensor z, long i, double[] row) {
        long base = i * row.length;
        for (int j = 0; j < row.length; j++) {
            row[j] = z.getFloat(base + j);
        }
        return row;
    }
}
