package io.rlkernels.backend.nativecpu;

import static io.rlkernels.backend.nativecpu.NativeCalls.check;
import static io.rlkernels.backend.nativecpu.NativeCalls.host;

import io.rlkernels.backend.nativecpu.internal.NativeLibrary;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.internal.MatmulChecks;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/** The f32 matrix product on librlkernels (rlk_matmul; contract {@link io.rlkernels.ops.Matmul}). */
final class MatmulCalls {
    private final NativeLibrary lib;
    private final NativeCalls calls;

    MatmulCalls(NativeCalls calls) {
        this.lib = calls.lib();
        this.calls = calls;
    }

    void matmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        MatmulChecks.Dims d = MatmulChecks.check(transA, transB, alpha, a, b, beta, c);
        HostTensor ha = host("a", a);
        HostTensor hb = host("b", b);
        HostTensor hc = host("c", c);
        if (ha.isHeap() || hb.isHeap() || hc.isHeap()) {
            throw Check.fail("a, b, c", "native memory (HostTensor.allocate): a matrix product is too long a call to pin Java arrays",
                    "a Java array");
        }
        check(lib.matmul(transA, transB, d.m(), d.n(), d.k(), alpha, ha.segment(), hb.segment(), beta, hc.segment()), "rlk_matmul");
    }
}
