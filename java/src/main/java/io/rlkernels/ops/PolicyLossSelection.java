package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.Arrays;

/**
 * The batch statistics of the policy loss's token selections ({@link PolicyLoss.Selection}):
 * TRL's entropy quantile, and verl's covariance means and thresholds of kl_cov and clip_cov,
 * found on the host over the tokens the mask keeps (rejection by the rollout correction is not
 * applied to them). The op finds what a call leaves NaN for its own batch; for micro-batches or
 * data-parallel ranks, resolve once on the whole batch and pass the result (and each part's
 * token offset), so every part selects what the whole batch would.
 */
public final class PolicyLossSelection {
    private PolicyLossSelection() {}

    /** clip_cov's key of token {@code index} of the whole batch: splitmix64 of (seed, index), in [0, 1) (rlk_math.h's rlk_select_key). */
    public static double selectKey(long seed, long index) {
        long z = seed + 0x9E3779B97F4A7C15L * (index + 1);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (z >>> 11) * 0x1.0p-53;
    }

    /** The configuration with every NaN statistic of its selections found on these (host) inputs. */
    public static PolicyLoss.Config resolve(PolicyLoss.Config c, PolicyLoss.Inputs in) {
        PolicyLoss.Selection s = c.selection();
        boolean cov = c.loss() == PolicyLoss.LossType.CLIP_COV || c.loss() == PolicyLoss.LossType.KL_COV;
        HostTensor mask = host("mask", in.mask());
        long n = in.tokens();
        double entropy = s.entropyThreshold();
        if (s.topEntropyQuantile() < 1 && Double.isNaN(entropy)) {
            HostTensor h = host("entropy", in.entropy());
            entropy = quantile(kept(h, mask, n), 1 - s.topEntropyQuantile());
        }
        double meanA = s.covMeanAdvantage();
        double meanLp = s.covMeanLogp();
        double threshold = s.covThreshold();
        if (cov && (Double.isNaN(meanA) || Double.isNaN(meanLp) || Double.isNaN(threshold))) {
            HostTensor a = host("advantages", in.advantages());
            HostTensor lp = host("logp", in.logp());
            HostTensor old = host("oldLogp", in.oldLogp());
            double[] av = kept(a, mask, n);
            double[] lv = kept(lp, mask, n);
            meanA = Double.isNaN(meanA) ? mean(av) : meanA;
            meanLp = Double.isNaN(meanLp) ? mean(lv) : meanLp;
            if (Double.isNaN(threshold)) {
                threshold = c.loss() == PolicyLoss.LossType.KL_COV ? klCovThreshold(c, av, lv, meanA, meanLp)
                        : clipCovThreshold(c, a, lp, old, mask, n, meanA, meanLp);
            }
        }
        return c.withSelection(s.withStatistics(entropy, meanA, meanLp, threshold));
    }

    /** kl_cov: the k-th largest covariance, k = max(1, floor(N ratio)) (verl's topk); +inf with no tokens. */
    private static double klCovThreshold(PolicyLoss.Config c, double[] a, double[] lp, double meanA, double meanLp) {
        if (a.length == 0) {
            return Double.POSITIVE_INFINITY;
        }
        double[] cov = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            cov[i] = (a[i] - meanA) * (lp[i] - meanLp);
        }
        Arrays.sort(cov);
        int k = (int) Math.max(1, Math.floor(a.length * c.selection().covRatio()));
        return cov[cov.length - Math.min(k, cov.length)];
    }

    /**
     * clip_cov: the largest key among the clip_num = max(1, floor(N ratio)) candidates with the
     * smallest keys (candidates: lb &lt; cov &lt; ub and not clipped by PPO's own clip); 1 when there are
     * fewer candidates (all of them), -1 when there are none.
     */
    private static double clipCovThreshold(PolicyLoss.Config c, HostTensor a, HostTensor lp, HostTensor old, HostTensor mask, long n,
                                           double meanA, double meanLp) {
        PolicyLoss.Selection s = c.selection();
        double low = c.clipLow();
        double high = c.clipHigh();
        long kept = 0;
        double[] keys = new double[(int) n];
        int candidates = 0;
        for (long i = 0; i < n; i++) {
            if (mask.getFloat(i) == 0) {
                continue;
            }
            kept++;
            double adv = a.getFloat(i);
            double logp = lp.getFloat(i);
            double r = Math.exp(Math.max(-20, Math.min(20, logp - old.getFloat(i))));
            double clipped = Math.min(Math.max(r, 1 - low), 1 + high);
            boolean byOrigin = -adv * clipped > -adv * r;
            double cov = (adv - meanA) * (logp - meanLp);
            if (!byOrigin && cov > s.covLow() && cov < s.covHigh()) {
                keys[candidates++] = selectKey(s.seed(), s.tokenOffset() + i);
            }
        }
        if (candidates == 0) {
            return -1;
        }
        int clipNum = (int) Math.max(1, Math.floor(kept * s.covRatio()));
        if (clipNum >= candidates) {
            return 1;
        }
        double[] k = Arrays.copyOf(keys, candidates);
        Arrays.sort(k);
        return k[clipNum - 1];
    }

    /** torch.quantile's linear interpolation; +inf with no values (nothing is selected, as TRL's). */
    static double quantile(double[] v, double q) {
        if (v.length == 0) {
            return Double.POSITIVE_INFINITY;
        }
        double[] s = v.clone();
        Arrays.sort(s);
        double pos = q * (s.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = Math.min(lo + 1, s.length - 1);
        return s[lo] + (pos - lo) * (s[hi] - s[lo]);
    }

    private static double mean(double[] v) {
        double sum = 0;
        for (double x : v) {
            sum += x;
        }
        return v.length > 0 ? sum / v.length : 0;
    }

    private static double[] kept(HostTensor t, HostTensor mask, long n) {
        double[] out = new double[(int) n];
        int k = 0;
        for (long i = 0; i < n; i++) {
            if (mask.getFloat(i) != 0) {
                out[k++] = t.getFloat(i);
            }
        }
        return Arrays.copyOf(out, k);
    }

    private static HostTensor host(String arg, Tensor t) {
        if (t == null) {
            throw Check.fail(arg, "the " + arg + " the selection's statistics are taken over", "null");
        }
        if (!(t instanceof HostTensor h)) {
            throw Check.fail(arg, "a host tensor (download it, or let the op resolve the statistics)", t.getClass().getSimpleName());
        }
        return h;
    }
}
