package io.rlkernels.backend.cuda;

import io.rlkernels.ops.internal.MaskedWhitenChecks;
import io.rlkernels.ops.internal.GroupAdvantagesChecks;
import io.rlkernels.ops.internal.GaeChecks;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.OptimalTokenBaseline;
import io.rlkernels.ops.internal.OptimalTokenBaselineChecks;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.DeviceTensor;
import io.rlkernels.tensor.Tensor;

/**
 * The advantage kernels (group advantages, sequence-to-token broadcast, GAE and returns, masked
 * whitening; contracts in {@link io.rlkernels.ops.GroupAdvantages}, {@link io.rlkernels.ops.Gae},
 * {@link io.rlkernels.ops.MaskedWhiten}): arguments and launch shapes.
 */
final class AdvantagesLaunch {
    private final CudaBackend backend;
    private final KernelLauncher launcher;
    private final DeviceChecks checks;

    AdvantagesLaunch(CudaBackend backend, KernelLauncher launcher, DeviceChecks checks) {
        this.backend = backend;
        this.launcher = launcher;
        this.checks = checks;
    }

    /** Positions a thread scans in one tile of rlk_gae (RLK_GAE_ITEMS). */
    static final int GAE_ITEMS = 8;

    /** A team per group: a warp for groups up to 256 members (THREADS / WARP to a block), else a block of THREADS. */
    static LaunchShape groupLaunch(int groups, int maxGroupSize) {
        if (maxGroupSize <= 256) {
            int warps = CudaBackend.THREADS / CudaBackend.WARP;
            return new LaunchShape(CudaBackend.grid((groups + warps - 1) / warps, CudaBackend.MAX_GRID), CudaBackend.THREADS, 0);
        }
        return new LaunchShape(CudaBackend.grid(groups, CudaBackend.MAX_GRID), CudaBackend.THREADS, 0);
    }

    /** One block per row, threads enough for a tile of 8 positions each (rlk_gae). */
    static LaunchShape gaeLaunch(long rows, long t) {
        int threads = CudaBackend.WARP;
        while (threads < 256 && (long) threads * GAE_ITEMS < t) {
            threads *= 2;
        }
        return new LaunchShape(CudaBackend.grid(rows, CudaBackend.MAX_GRID), threads, 0);
    }


    /** Blocks of partial sums of a whole-tensor reduction: a function of n only (and of the grid limit), so the sums are too. */
    static int reductionBlocks(long n) {
        return CudaBackend.grid((n + 2047) / 2048, 1024);
    }

    void groupAdvantages(GroupAdvantages.Config config, Tensor rewards, Tensor weights, GroupLayout groups, Tensor advantages) {
        GroupAdvantagesChecks.check(config, rewards, weights, groups, advantages);
        GroupLayout layout = GroupAdvantagesChecks.layoutFor(config, groups);
        try (Staging s = new Staging(launcher, backend)) {
            long r = s.in("rewards", rewards);
            boolean bounded = checks.requireFinite(s, "rewards", rewards, r, GroupAdvantagesChecks.inputBound(config, groups.sequences()));
            boolean opo = config.mode() == GroupAdvantages.Mode.OPO;
            long w = opo ? checks.finiteInput(s, "weights", weights) : 0;
            DeviceLayout dl = layout.deviceCopy(launcher, () -> new DeviceLayout(backend.copyIn(layout.order()), backend.copyIn(layout.offsets())));
            long out = s.out("advantages", advantages);
            long scale = 0; // gpg's alpha, a device scalar
            if (config.mode() == GroupAdvantages.Mode.GPG) {
                scale = s.scratch(8);
                launcher.launch("rlk_gpg_scale", new LaunchShape(1, CudaBackend.THREADS, 0), new KernelArgs().ptr(r)
                        .i64(groups.sequences()).ptr(scale));
            }
            if (layout.groups() > 0) {
                String kernel = layout.maxGroupSize() <= 256 ? "rlk_group_advantages_warp" : "rlk_group_advantages_block";
                launcher.launch(kernel, groupLaunch(layout.groups(), layout.maxGroupSize()), new KernelArgs().ptr(r).ptr(w)
                        .ptr(dl.order().address()).ptr(dl.offsets().address()).i64(layout.groups()).i32(config.mode().code())
                        .i32(config.unbiasedStd() ? 1 : 0).f32(config.eps()).i32(config.scaleByStd() ? 1 : 0).ptr(scale).ptr(out));
            }
            if (!bounded) {
                checks.requireRepresentable(s, advantages, out, Float.MAX_VALUE, (i, v) -> GroupAdvantagesChecks.overflow(config, i, v));
            }
            s.finish();
        } finally {
            if (layout != groups) {
                layout.close();
            }
        }
    }

    /** A group layout on this device. */
    private record DeviceLayout(DeviceTensor order, DeviceTensor offsets) implements AutoCloseable {
        @Override
        public void close() {
            order.close();
            offsets.close();
        }
    }

    void sequenceToTokens(Tensor perSequence, Tensor mask, Tensor perToken) {
        GroupAdvantagesChecks.checkBroadcast(perSequence, mask, perToken);
        long n = perToken.numel();
        try (Staging s = new Staging(launcher, backend)) {
            long a = s.in("perSequence", perSequence);
            long m = s.in("mask", mask);
            long out = s.out("perToken", perToken);
            if (n > 0) {
                launcher.launch("rlk_sequence_to_tokens", CudaBackend.elementwiseLaunch(n), new KernelArgs().ptr(a).ptr(m)
                        .i32(mask.dtype() == DType.U8 ? 1 : 0).i64(mask.dim(0)).i64(mask.dim(1)).ptr(out));
            }
            s.finish();
        }
    }

    void gae(Gae.Config config, Tensor rewards, Tensor values, Tensor mask, Tensor advantages, Tensor returns) {
        GaeChecks.check(rewards, values, mask, advantages, returns);
        scan(config.gamma(), config.lambda(), rewards, values, mask, advantages, returns);
    }

    void discountedReturns(float gamma, Tensor rewards, Tensor mask, Tensor returns) {
        Gae.checkGamma(gamma);
        GaeChecks.check(rewards, null, mask, returns);
        scan(gamma, 1f, rewards, null, mask, null, returns);
    }

    private void scan(float gamma, float lambda, Tensor rewards, Tensor values, Tensor mask, Tensor advantages,
                      Tensor returns) {
        long b = rewards.dim(0);
        long t = rewards.dim(1);
        try (Staging s = new Staging(launcher, backend)) {
            long r = s.in("rewards", rewards);
            float bound = GaeChecks.inputBound(t);
            boolean bounded = checks.requireFinite(s, "rewards", rewards, r, bound);
            long v = 0;
            if (values != null) {
                v = s.in("values", values);
                bounded &= checks.requireFinite(s, "values", values, v, bound);
            }
            long m = s.in("mask", mask);
            long adv = advantages == null ? 0 : s.out("advantages", advantages);
            long ret = s.out("returns", returns);
            if (b > 0 && t > 0) {
                launcher.launch("rlk_gae", gaeLaunch(b, t), new KernelArgs().ptr(r).ptr(v).ptr(m)
                        .i32(mask.dtype() == DType.U8 ? 1 : 0).i64(b).i64(t).f32(gamma).f32(lambda).ptr(adv).ptr(ret));
            }
            if (!bounded && advantages != null) {
                checks.requireRepresentable(s, advantages, adv, Float.MAX_VALUE, (i, x) -> GaeChecks.overflow("advantages", i, x));
            }
            if (!bounded) {
                checks.requireRepresentable(s, returns, ret, Float.MAX_VALUE, (i, x) -> GaeChecks.overflow("returns", i, x));
            }
            s.finish();
        }
    }

    void optimalTokenBaseline(OptimalTokenBaseline.Config config, OptimalTokenBaseline.Inputs in, Tensor advantages, Tensor returns) {
        OptimalTokenBaselineChecks.check(config, in, advantages, returns);
        long rows = in.tokenRewards().dim(0);
        long t = in.tokenRewards().dim(1);
        GroupLayout layout = in.groups();
        try (Staging s = new Staging(launcher, backend)) {
            long r = checks.boundedInput(s, "tokenRewards", in.tokenRewards(), GaeChecks.inputBound(t),
                    "returns sum up to T rewards");
            long m = s.in("mask", in.mask());
            long lp = checks.finiteInput(s, "oldLogp", in.oldLogp());
            long q = checks.finiteInput(s, "sumPiSquared", in.sumPiSquared());
            long rho = in.isWeights() == null ? 0 : checks.finiteInput(s, "isWeights", in.isWeights());
            DeviceLayout dl = layout.deviceCopy(launcher, () -> new DeviceLayout(backend.copyIn(layout.order()), backend.copyIn(layout.offsets())));
            long adv = s.out("advantages", advantages);
            long ret = s.out("returns", returns);
            int u8 = in.mask().dtype() == DType.U8 ? 1 : 0;
            if (rows > 0 && t > 0) {
                long lengths = s.scratch(8 * rows);
                launcher.launch("rlk_otb_scan", CudaBackend.elementwiseLaunch(rows), new KernelArgs().ptr(r).ptr(m).i32(u8).ptr(lp)
                        .ptr(q).ptr(rho).i64(rows).i64(t).ptr(ret).ptr(adv).ptr(lengths));
                if (layout.groups() > 0) {
                    launcher.launch("rlk_otb_apply", CudaBackend.elementwiseLaunch(layout.groups() * t), new KernelArgs().ptr(m).i32(u8)
                            .ptr(dl.order().address()).ptr(dl.offsets().address()).i64(layout.groups()).i64(t).f32(config.eps())
                            .i32(config.handleZeroTail() ? 1 : 0).ptr(lengths).ptr(ret).ptr(adv));
                }
                // W in float32 can overflow where the inputs are extreme; it then makes NaN advantages, refused here
                checks.requireRepresentable(s, advantages, adv, Float.MAX_VALUE,
                        (i, x) -> OptimalTokenBaselineChecks.overflow("advantages", i, x));
            }
            s.finish();
        }
    }

    void maskedWhiten(MaskedWhiten.Config config, Tensor x, Tensor mask, Tensor out) {
        MaskedWhitenChecks.check(x, mask, out);
        long n = x.numel();
        try (Staging s = new Staging(launcher, backend)) {
            long in = x == out ? s.inOut("x", x) : s.in("x", x);
            checks.requireFinite(s, "x", x, in);
            long m = s.in("mask", mask);
            long o = x == out ? in : s.out("out", out);
            int blocks = reductionBlocks(n);
            long partial = s.scratch(16L * blocks);
            long stats = s.scratch(3 * 8);
            int u8 = mask.dtype() == DType.U8 ? 1 : 0;
            LaunchShape partials = new LaunchShape(blocks, CudaBackend.THREADS, 0);
            LaunchShape one = new LaunchShape(1, 32, 0);
            for (int pass = 0; pass < 2; pass++) {
                launcher.launch("rlk_whiten_partials", partials,
                        new KernelArgs().ptr(in).ptr(m).i32(u8).i64(n).i32(pass).ptr(stats).ptr(partial));
                launcher.launch("rlk_whiten_finish", one, new KernelArgs().ptr(partial).i32(blocks).i32(pass)
                        .f32(config.eps()).i32(config.unbiased() ? 1 : 0).ptr(stats));
            }
            launcher.launch("rlk_whiten_apply", CudaBackend.elementwiseLaunch(n), new KernelArgs().ptr(in).ptr(m).i32(u8).i64(n).ptr(stats).ptr(o));
            s.finish();
        }
    }
}
