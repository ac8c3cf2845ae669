package io.rlkernels.ops.internal;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.Tensor;

/**
 * Shape checks of {@code Backend.matmul} (not API): C[M, N] = alpha op(A)[M, K] op(B)[K, N] + beta C,
 * A and B f32, bf16 or f16 (multiplied as their exact f32 values), C f32.
 */
public final class MatmulChecks {
    private MatmulChecks() {}

    /** M, N and K of a checked call. */
    public record Dims(long m, long n, long k) {}

    public static Dims check(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        Check.output("c", c);
        for (Object[] arg : new Object[][] {{"a", a}, {"b", b}, {"c", c}}) {
            Tensor t = (Tensor) arg[1];
            Check.alive((String) arg[0], t);
            if (t == c) {
                Check.dtype("c", t, DType.F32);
            } else {
                Check.dtype((String) arg[0], t, DType.F32, DType.BF16, DType.F16);
            }
            Check.rank((String) arg[0], t, 2);
        }
        long m = transA ? a.dim(1) : a.dim(0);
        long k = transA ? a.dim(0) : a.dim(1);
        long kb = transB ? b.dim(1) : b.dim(0);
        long n = transB ? b.dim(0) : b.dim(1);
        if (kb != k) {
            throw Check.fail("b", "an inner dimension of " + k + " (op(a) is " + m + " x " + k + ")", kb);
        }
        Check.shape("c", c, m, n);
        if (!Float.isFinite(alpha) || !Float.isFinite(beta)) {
            throw Check.fail("alpha, beta", "finite numbers", alpha + ", " + beta);
        }
        Check.distinct("a", a, "c", c);
        Check.distinct("b", b, "c", c);
        return new Dims(m, n, k);
    }
}
