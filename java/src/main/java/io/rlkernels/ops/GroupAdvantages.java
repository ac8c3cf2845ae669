package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import java.util.Locale;

/**
 * Group-normalised advantages (ARCHITECTURE §5.2): each sequence's reward against the other sequences
 * of its group (the samples of one prompt).
 *
 * <pre>
 *   grpo     (r - mean) / (std + eps)
 *   drgrpo   r - mean                       (Dr. GRPO: no std division)
 *   rloo     r - mean of the others        = (r - mean) * n / (n - 1)
 *   batch    (r - mean) / (std + eps) over the whole batch, group ids ignored
 *   none     r
 *   gpg      alpha (r - mean),  alpha = S / (the batch's nonzero rewards, at least 1)      (verl's gpg)
 *   opo      r - sum(l r) / sum(l) over the group, l the response lengths (weights)      (verl's opo)
 *   passk    the group's best: r_max - r_second, over std + eps with scaleByStd; others 0 (verl's grpo_passk)
 * </pre>
 *
 * std is unbiased (n - 1) by default. A group of one gets advantage 0 in the first five modes
 * (gpg and opo follow verl: a group of one has mean 0, so alpha r and r; passk needs two
 * members a group, and the first of equal maxima is the best), and a
 * constant group (std = 0) gets exactly 0 in grpo and batch whatever eps is, eps = 0 included
 * (a sequence equal to its group's mean gets 0). Means and
 * variances are two-pass in f64 on every backend (a sum-of-squares variance loses every digit on
 * groups such as {1000.0001, 1000.0002, 1000.0003, 1000.0004}), and every sum is taken in a fixed
 * order, so the output is bitwise the same run after run. Sequences are grouped by a
 * {@link GroupLayout}, built once on the host and reusable across steps.
 */
public final class GroupAdvantages {
    private GroupAdvantages() {}

    /** How a group's rewards become advantages. */
    public enum Mode {
        /** (r - mean) / (std + eps) over the group. */
        GRPO,
        /** r - mean (Dr. GRPO: no std). */
        DRGRPO,
        /** r minus the mean of the group's others. */
        RLOO,
        /** (r - mean) / (std + eps) over the whole batch. */
        BATCH,
        /** r itself. */
        NONE,
        /** verl's gpg: alpha (r - mean), alpha = S over the nonzero rewards. */
        GPG,
        /** verl's opo: r minus the length-weighted mean (the weights: response lengths). */
        OPO,
        /** verl's pass@k: the group's best gets r_max - r_second (over std + eps); the others 0. */
        PASSK;

        /** The code the native and CUDA kernels receive. */
        public int code() {
            return ordinal();
        }

        /** The mode of its name (case-insensitive), refused naming the mode otherwise. */
        public static Mode parse(String s) {
            for (Mode m : values()) {
                if (m.name().equalsIgnoreCase(s.trim())) {
                    return m;
                }
            }
            throw Check.fail("mode", "grpo, drgrpo, rloo, batch, none, gpg, opo or passk", s);
        }

        @Override
        public String toString() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * Mode, unbiased (n - 1) or biased (n) std, the eps added to std, and whether passk divides by
     * std + eps (verl's norm_adv_by_std_in_grpo; true by default).
     */
    public record Config(Mode mode, boolean unbiasedStd, float eps, boolean scaleByStd) {
        public static final float DEFAULT_EPS = 1e-6f;

        /** Checks every component, refusing a bad one by name (the expected and the found value). */
        public Config {
            if (mode == null) {
                throw Check.fail("mode", "a mode", "null");
            }
            if (!(eps >= 0) || !Float.isFinite(eps)) {
                throw Check.fail("eps", "a finite number >= 0", eps);
            }
        }

        /** A config with pass@k's scaling on. */
        public Config(Mode mode, boolean unbiasedStd, float eps) {
            this(mode, unbiasedStd, eps, true);
        }

        /** grpo, unbiased std, eps 1e-6. */
        public static Config defaults() {
            return new Config(Mode.GRPO, true, DEFAULT_EPS, true);
        }

        /** The same with another mode. */
        public Config withMode(Mode m) {
            return new Config(m, unbiasedStd, eps, scaleByStd);
        }

        /** The same with the unbiased (n - 1) or biased (n) std. */
        public Config withUnbiasedStd(boolean unbiased) {
            return new Config(mode, unbiased, eps, scaleByStd);
        }

        /** The same with another eps (finite, &gt;= 0). */
        public Config withEps(float e) {
            return new Config(mode, unbiasedStd, e, scaleByStd);
        }

        /** The same with pass@k's division by std + eps on or off. */
        public Config withScaleByStd(boolean on) {
            return new Config(mode, unbiasedStd, eps, on);
        }
    }
}
