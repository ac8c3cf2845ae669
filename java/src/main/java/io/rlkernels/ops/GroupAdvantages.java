package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.Tensor;
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
 * </pre>
 *
 * std is unbiased (n - 1) by default. A group of one gets advantage 0 in every mode, and a
 * constant group (std = 0) gets exactly 0 in grpo and batch whatever eps is, eps = 0 included
 * (a sequence equal to its group's mean gets 0). Means and
 * variances are two-pass in f64 on every backend (a sum-of-squares variance loses every digit on
 * groups such as {1000.0001, 1000.0002, 1000.0003, 1000.0004}), and every sum is taken in a fixed
 * order, so the output is bitwise the same run after run. Sequences are grouped by a
 * {@link GroupLayout}, built once on the host and reusable across steps.
 */
public final class GroupAdvantages {
    private GroupAdvantages() {}

    public enum Mode {
        GRPO, DRGRPO, RLOO, BATCH, NONE;

        /** The code the native and CUDA kernels receive. */
        public int code() {
            return ordinal();
        }

        public static Mode parse(String s) {
            for (Mode m : values()) {
                if (m.name().equalsIgnoreCase(s.trim())) {
                    return m;
                }
            }
            throw Check.fail("mode", "grpo, drgrpo, rloo, batch or none", s);
        }

        @Override
        public String toString() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** Mode, unbiased (n - 1) or biased (n) std, and the eps added to std. */
    public record Config(Mode mode, boolean unbiasedStd, float eps) {
        public static final float DEFAULT_EPS = 1e-6f;

        public Config {
            if (mode == null) {
                throw Check.fail("mode", "a mode", "null");
            }
            if (!(eps >= 0) || !Float.isFinite(eps)) {
                throw Check.fail("eps", "a finite number >= 0", eps);
            }
        }

        public static Config defaults() {
            return new Config(Mode.GRPO, true, DEFAULT_EPS);
        }

        public Config withMode(Mode m) {
            return new Config(m, unbiasedStd, eps);
        }

        public Config withUnbiasedStd(boolean unbiased) {
            return new Config(mode, unbiased, eps);
        }

        public Config withEps(float e) {
            return new Config(mode, unbiasedStd, e);
        }
    }

    /** Checks rewards [S] f32 and advantages [S] f32 against a layout of S sequences. */
    public static void check(Config config, Tensor rewards, GroupLayout groups, Tensor advantages) {
        if (config == null) {
            throw Check.fail("config", "a GroupAdvantages.Config", "null");
        }
        Check.alive("rewards", rewards);
        Check.dtype("rewards", rewards, DType.F32);
        Check.rank("rewards", rewards, 1);
        if (groups == null) {
            throw Check.fail("groups", "a GroupLayout", "null");
        }
        groups.requireAlive("groups");
        Check.shape("rewards", rewards, groups.sequences());
        Check.output("advantages", advantages);
        Check.dtype("advantages", advantages, DType.F32);
        Check.shape("advantages", advantages, groups.sequences());
    }

    /**
     * Checks per-sequence values [S] f32, a response mask [S, T] (f32 or u8) and token outputs
     * [S, T] f32 for {@code sequenceToTokens}.
     */
    public static void checkBroadcast(Tensor perSequence, Tensor mask, Tensor perToken) {
        Check.alive("perSequence", perSequence);
        Check.dtype("perSequence", perSequence, DType.F32);
        Check.rank("perSequence", perSequence, 1);
        Check.alive("mask", mask);
        Check.dtype("mask", mask, DType.F32, DType.U8);
        Check.rank("mask", mask, 2);
        Check.shape("mask", mask, perSequence.dim(0), mask.dim(1));
        Check.output("perToken", perToken);
        Check.dtype("perToken", perToken, DType.F32);
        Check.shape("perToken", perToken, mask.shape());
    }

    /**
     * Rewards within +-INPUT_BOUND cannot give an advantage beyond float32 in any mode: drgrpo's
     * r - mean is at most 2 max|r|, rloo scales it by n/(n-1) <= 2, grpo and batch are a
     * deviation over the std (at most sqrt(n) in magnitude), and none is r. As for GAE, backends
     * check the bound with the rewards' finiteness and scan the outputs only beyond it.
     */
    public static final float INPUT_BOUND = Float.MAX_VALUE / 4;

    /** The refusal of finite rewards whose advantages float32 cannot hold (drgrpo and rloo take differences of them). */
    public static IllegalArgumentException overflow(Config config, long index, float value) {
        return Check.overflowed("rewards", "advantages", index, value, "a " + config.mode()
                + " advantage is a difference of rewards: keep them within +-1.7e38");
    }

    /** The grouping the kernels use: the given layout, or one group of everything in batch mode. */
    public static GroupLayout layoutFor(Config config, GroupLayout groups) {
        return config.mode() == Mode.BATCH ? GroupLayout.single(groups.sequences()) : groups;
    }
}
