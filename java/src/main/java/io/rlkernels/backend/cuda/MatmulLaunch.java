package io.rlkernels.backend.cuda;

import io.rlkernels.ops.internal.MatmulChecks;
import io.rlkernels.tensor.Tensor;

/**
 * The matrix product (contract {@code Backend.matmul}; A, B f32 or 16-bit): cuBLAS's GemmEx where
 * the launcher has it ({@code KernelLauncher.blas}), else the own kernel rlk_matmul, a block per
 * 16 x 16 tile (the emulated backend, a machine without cuBLAS, sizes of 2^31 and more).
 */
final class MatmulLaunch {
    private final CudaBackend backend;
    private final KernelLauncher launcher;
    private final DeviceChecks checks;

    MatmulLaunch(CudaBackend backend, KernelLauncher launcher, DeviceChecks checks) {
        this.backend = backend;
        this.launcher = launcher;
        this.checks = checks;
    }

    /** The side of a tile of C (RLK_MM_TILE): a block of TILE x TILE threads each. */
    static final int TILE = 16;

    /** One block per tile of C, at most 65,535 blocks (grid-stride over the rest). */
    static LaunchShape matmulLaunch(long m, long n) {
        long tiles = ((m + TILE - 1) / TILE) * ((n + TILE - 1) / TILE);
        return new LaunchShape(CudaBackend.grid(tiles, 65_535), TILE * TILE, 0);
    }

    void matmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        MatmulChecks.Dims d = MatmulChecks.check(transA, transB, alpha, a, b, beta, c);
        try (Staging s = new Staging(launcher, backend)) {
            long pa = s.in("a", a);
            long pb = s.in("b", b);
            long pc = beta == 0 ? s.out("c", c) : s.inOut("c", c);
            boolean fits = d.m() <= Integer.MAX_VALUE && d.n() <= Integer.MAX_VALUE && d.k() <= Integer.MAX_VALUE;
            if (d.m() > 0 && d.n() > 0 && launcher.blas() != null && fits) {
                launcher.gemm(transA, transB, (int) d.m(), (int) d.n(), (int) d.k(), alpha, pa, a.dtype(), pb, b.dtype(), beta, pc);
            } else if (d.m() > 0 && d.n() > 0) {
                launcher.launch("rlk_matmul", matmulLaunch(d.m(), d.n()), new KernelArgs().i32(transA ? 1 : 0).i32(transB ? 1 : 0)
                        .i64(d.m()).i64(d.n()).i64(d.k()).f32(alpha).ptr(pa).i32(a.dtype().code()).ptr(pb).i32(b.dtype().code()).f32(beta).ptr(pc));
            }
            s.finish();
        }
    }
}
