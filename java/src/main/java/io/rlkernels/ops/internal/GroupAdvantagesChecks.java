package io.rlkernels.ops.internal;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.Tensor;

/** Group advantages' argument checks, input bound and grouping ({@link GroupAdvantages}). Not API. */
public final class GroupAdvantagesChecks {
    private GroupAdvantagesChecks() {}

    /** Checks rewards [S] f32 and advantages [S] f32 against a layout of S sequences. */
    public static void check(GroupAdvantages.Config config, Tensor rewards, Tensor weights, GroupLayout groups, Tensor advantages) {
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
        if (config.mode() == GroupAdvantages.Mode.OPO) {
            if (weights == null) {
                throw Check.fail("weights", "the response lengths [S] for opo", "null");
            }
            Check.alive("weights", weights);
            Check.dtype("weights", weights, DType.F32);
            Check.shape("weights", weights, groups.sequences());
        }
        if (config.mode() == GroupAdvantages.Mode.PASSK) {
            io.rlkernels.tensor.HostTensor offsets = groups.offsets();
            for (int g = 0; g < groups.groups(); g++) {
                long n = offsets.getLong(g + 1) - offsets.getLong(g);
                if (n < 2) {
                    throw Check.fail("groups", "at least 2 sequences in every group for passk (verl's grpo_passk)",
                            "group " + g + " with " + n);
                }
            }
        }
    }

    /**
     * The bound on rewards below which no advantage can overflow float32: INPUT_BOUND, and for gpg
     * INPUT_BOUND / S (its alpha is at most S).
     */
    public static float inputBound(GroupAdvantages.Config config, long sequences) {
        return config.mode() == GroupAdvantages.Mode.GPG ? (float) (INPUT_BOUND / Math.max(sequences, 1)) : INPUT_BOUND;
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
     * r - mean is at most 2 max|r|, rloo scales it by n/(n-1) &lt;= 2, grpo and batch are a
     * deviation over the std (at most sqrt(n) in magnitude), and none is r. As for GAE, backends
     * check the bound with the rewards' finiteness and scan the outputs only beyond it.
     */
    public static final float INPUT_BOUND = Float.MAX_VALUE / 4;

    /** The refusal of finite rewards whose advantages float32 cannot hold (drgrpo and rloo take differences of them). */
    public static IllegalArgumentException overflow(GroupAdvantages.Config config, long index, float value) {
        return Check.overflowed("rewards", "advantages", index, value, "a " + config.mode()
                + " advantage is a difference of rewards: keep them within +-1.7e38");
    }

    /** The grouping the kernels use: the given layout, or one group of everything in batch mode. */
    public static GroupLayout layoutFor(GroupAdvantages.Config config, GroupLayout groups) {
        return config.mode() == GroupAdvantages.Mode.BATCH ? GroupLayout.single(groups.sequences()) : groups;
    }
}
