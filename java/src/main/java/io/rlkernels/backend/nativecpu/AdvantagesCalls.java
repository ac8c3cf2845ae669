package io.rlkernels.backend.nativecpu;

import io.rlkernels.ops.internal.MaskedWhitenChecks;
import io.rlkernels.ops.internal.GroupAdvantagesChecks;
import io.rlkernels.ops.internal.GaeChecks;
import static io.rlkernels.backend.nativecpu.NativeCalls.check;
import static io.rlkernels.backend.nativecpu.NativeCalls.host;
import static io.rlkernels.backend.nativecpu.NativeCalls.segment;

import io.rlkernels.backend.nativecpu.internal.NativeLibrary;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.OptimalTokenBaseline;
import io.rlkernels.ops.internal.OptimalTokenBaselineChecks;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * The advantage ops on librlkernels (rlk_group_advantages, rlk_sequence_to_tokens, rlk_gae,
 * rlk_masked_whiten, rlk_otb; contracts {@link io.rlkernels.ops.GroupAdvantages}, {@link io.rlkernels.ops.Gae},
 * {@link io.rlkernels.ops.MaskedWhiten}).
 */
final class AdvantagesCalls {
    private final NativeLibrary lib;
    private final NativeCalls calls;

    AdvantagesCalls(NativeCalls calls) {
        this.lib = calls.lib();
        this.calls = calls;
    }

    void groupAdvantages(GroupAdvantages.Config config, Tensor rewards, Tensor weights, GroupLayout groups, Tensor advantages) {
        GroupAdvantagesChecks.check(config, rewards, weights, groups, advantages);
        HostTensor r = host("rewards", rewards);
        boolean bounded = calls.requireFinite("rewards", r, GroupAdvantagesChecks.inputBound(config, groups.sequences()));
        boolean opo = config.mode() == GroupAdvantages.Mode.OPO;
        if (opo) {
            calls.requireFinite("weights", host("weights", weights));
        }
        GroupLayout layout = GroupAdvantagesChecks.layoutFor(config, groups);
        try {
            check(lib.groupAdvantages(r.segment(), opo ? segment("weights", weights) : MemorySegment.NULL, layout.order().segment(),
                    layout.offsets().segment(), layout.groups(), config.mode().code(), config.unbiasedStd(), config.eps(),
                    config.scaleByStd(), segment("advantages", advantages)), "rlk_group_advantages");
        } finally {
            if (layout != groups) {
                layout.close();
            }
        }
        if (!bounded) {
            calls.refuseOverflow(host("advantages", advantages), (i, v) -> GroupAdvantagesChecks.overflow(config, i, v));
        }
    }

    void sequenceToTokens(Tensor perSequence, Tensor mask, Tensor perToken) {
        GroupAdvantagesChecks.checkBroadcast(perSequence, mask, perToken);
        check(lib.sequenceToTokens(segment("perSequence", perSequence), segment("mask", mask), mask.dtype() == DType.U8,
                mask.dim(0), mask.dim(1), segment("perToken", perToken)), "rlk_sequence_to_tokens");
    }

    void gae(Gae.Config config, Tensor rewards, Tensor values, Tensor mask, Tensor advantages, Tensor returns) {
        GaeChecks.check(rewards, values, mask, advantages, returns);
        float bound = GaeChecks.inputBound(rewards.dim(1));
        boolean bounded = calls.requireFinite("rewards", host("rewards", rewards), bound)
                & calls.requireFinite("values", host("values", values), bound);
        check(lib.gae(segment("rewards", rewards), segment("values", values), segment("mask", mask), mask.dtype() == DType.U8,
                rewards.dim(0), rewards.dim(1), config.gamma(), config.lambda(), segment("advantages", advantages),
                segment("returns", returns)), "rlk_gae");
        if (!bounded) {
            calls.refuseOverflow(host("advantages", advantages), (i, v) -> GaeChecks.overflow("advantages", i, v));
            calls.refuseOverflow(host("returns", returns), (i, v) -> GaeChecks.overflow("returns", i, v));
        }
    }

    void discountedReturns(float gamma, Tensor rewards, Tensor mask, Tensor returns) {
        Gae.checkGamma(gamma);
        GaeChecks.check(rewards, null, mask, returns);
        boolean bounded = calls.requireFinite("rewards", host("rewards", rewards), GaeChecks.inputBound(rewards.dim(1)));
        check(lib.gae(segment("rewards", rewards), MemorySegment.NULL, segment("mask", mask), mask.dtype() == DType.U8,
                rewards.dim(0), rewards.dim(1), gamma, 1f, MemorySegment.NULL, segment("returns", returns)), "rlk_gae");
        if (!bounded) {
            calls.refuseOverflow(host("returns", returns), (i, v) -> GaeChecks.overflow("returns", i, v));
        }
    }

    void optimalTokenBaseline(OptimalTokenBaseline.Config config, OptimalTokenBaseline.Inputs in, Tensor advantages, Tensor returns) {
        OptimalTokenBaselineChecks.check(config, in, advantages, returns);
        long s = in.tokenRewards().dim(0);
        long t = in.tokenRewards().dim(1);
        calls.requireFinite("tokenRewards", host("tokenRewards", in.tokenRewards()), GaeChecks.inputBound(t));
        calls.requireFinite("oldLogp", host("oldLogp", in.oldLogp()));
        calls.requireFinite("sumPiSquared", host("sumPiSquared", in.sumPiSquared()));
        if (in.isWeights() != null) {
            calls.requireFinite("isWeights", host("isWeights", in.isWeights()));
        }
        GroupLayout g = in.groups();
        check(lib.otb(segment("tokenRewards", in.tokenRewards()), segment("mask", in.mask()), in.mask().dtype() == DType.U8,
                segment("oldLogp", in.oldLogp()), segment("sumPiSquared", in.sumPiSquared()),
                in.isWeights() == null ? MemorySegment.NULL : segment("isWeights", in.isWeights()), g.order().segment(),
                g.offsets().segment(), g.groups(), s, t, config.eps(), config.handleZeroTail(), segment("advantages", advantages),
                segment("returns", returns)), "rlk_otb");
        // W in float32 can overflow where the inputs are extreme; it then makes NaN advantages, refused here
        calls.refuseOverflow(host("advantages", advantages), (i, v) -> OptimalTokenBaselineChecks.overflow("advantages", i, v));
    }

    void maskedWhiten(MaskedWhiten.Config config, Tensor x, Tensor mask, Tensor out) {
        MaskedWhitenChecks.check(x, mask, out);
        calls.requireFinite("x", host("x", x));
        check(lib.maskedWhiten(segment("x", x), segment("mask", mask), mask.dtype() == DType.U8, x.numel(), config.eps(),
                config.unbiased(), segment("out", out)), "rlk_masked_whiten");
    }
}
