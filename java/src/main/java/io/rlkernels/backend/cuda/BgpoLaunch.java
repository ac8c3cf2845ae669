package io.rlkernels.backend.cuda;

import io.rlkernels.ops.internal.BgpoChecks;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * BGPO's kernels (rlk_mask_rows, rlk_bgpo_coefficients, rlk_bgpo_finish; contract {@link io.rlkernels.ops.Bgpo}):
 * arguments and launch shapes. The fused sample runs these between the log-probs kernels
 * (BackendBase.runBgpoStep).
 */
final class BgpoLaunch {
    private final CudaBackend backend;
    private final KernelLauncher launcher;
    private final DeviceChecks checks;

    BgpoLaunch(CudaBackend backend, KernelLauncher launcher, DeviceChecks checks) {
        this.backend = backend;
        this.launcher = launcher;
        this.checks = checks;
    }

    void maskRows(Tensor targets, Tensor mask, long vocab, Tensor out) {
        BgpoChecks.checkMaskRows(targets, mask, vocab, out);
        checks.checkTargets(targets, vocab, null);
        long n = targets.numel();
        try (Staging s = new Staging(launcher, backend)) {
            long y = s.in("targets", targets);
            long m = s.in("mask", mask);
            long o = s.out("out", out);
            if (n > 0) {
                launcher.launch("rlk_mask_rows", CudaBackend.elementwiseLaunch(n), new KernelArgs().ptr(y).i32(targets.dtype() == DType.I64 ? 1 : 0)
                        .ptr(m).i32(mask.dtype() == DType.U8 ? 1 : 0).i64(n).i64(Bgpo.UNMASKED).ptr(o));
            }
            s.finish();
        }
    }

    /** Warps per block of rlk_bgpo_coefficients (a warp per sequence), and blocks: at most 1,024 partials. */
    static LaunchShape bgpoLaunch(int sequences) {
        int warps = CudaBackend.THREADS / CudaBackend.WARP;
        return new LaunchShape(CudaBackend.grid((sequences + warps - 1) / warps, 1024), CudaBackend.THREADS, 0);
    }

    void coefficients(Bgpo.Config c, Tensor logp, SequenceLayout rows, Tensor mask, Tensor weights, Tensor oldValues,
                                 Tensor advantages, Tensor values, Tensor upstream, Tensor state) {
        BgpoChecks.checkCoefficients(c, logp, rows, mask, weights, oldValues, advantages, values, upstream, state);
        if (weights instanceof HostTensor hw) {
            BgpoChecks.checkWeights(hw);
        } else if (backend.checksDeviceInputs()) {
            try (HostTensor hw = HostTensor.allocate(DType.F32, weights.shape())) {
                backend.download(weights, hw);
                BgpoChecks.checkWeights(hw);
            }
        }
        try (Staging s = new Staging(launcher, backend)) {
            long lp = s.in("logp", logp);
            long m = s.in("mask", mask);
            long w = s.in("weights", weights);
            long old = checks.finiteInput(s, "oldValues", oldValues);
            long adv = checks.finiteInput(s, "advantages", advantages);
            long offsets = rows.deviceCopy(launcher, () -> backend.copyIn(rows.offsets())).address();
            long vals = s.out("values", values);
            long up = s.out("upstream", upstream);
            long st = s.inOut("state", state);
            LaunchShape shape = bgpoLaunch(rows.sequences());
            long partial = s.scratch(8L * Bgpo.STATS_LENGTH * shape.gridX());
            launcher.launch("rlk_bgpo_coefficients", shape, new KernelArgs().ptr(lp).ptr(offsets).i64(rows.sequences()).ptr(m)
                    .i32(mask.dtype() == DType.U8 ? 1 : 0).ptr(w).ptr(old).ptr(adv).f32(c.clipLow()).f32(c.clipHigh())
                    .f32(c.dualClip()).f64(1.0 / (c.denominatorFor(rows.sequences()) * c.samples())).ptr(vals).ptr(up)
                    .ptr(partial));
            launcher.launch("rlk_bgpo_finish", new LaunchShape(1, 32, 0), new KernelArgs().ptr(partial).i32(shape.gridX()).ptr(st));
            checks.requireRepresentable(s, values, vals, Float.MAX_VALUE, (i, v) -> BgpoChecks.overflow(c, "values", i, v));
            checks.requireRepresentable(s, upstream, up, BgpoChecks.upstreamLimit(c), (i, v) -> BgpoChecks.overflow(c, "upstream", i, v));
            s.finish();
        }
    }
}
