package io.rlkernels.backend.reference;

import static io.rlkernels.backend.reference.HostArgs.host;

import io.rlkernels.ops.internal.MatmulChecks;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/** The matrix product (contract: {@code Backend.matmul}) with an f64 sum over k, in order. */
final class MatmulReference {
    private MatmulReference() {}

    static void matmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        MatmulChecks.Dims d = MatmulChecks.check(transA, transB, alpha, a, b, beta, c);
        HostTensor ha = host("a", a);
        HostTensor hb = host("b", b);
        HostTensor hc = host("c", c);
        long ka = transA ? d.m() : d.k(); // row lengths of A and B as stored
        long kb = transB ? d.k() : d.n();
        for (long i = 0; i < d.m(); i++) {
            for (long j = 0; j < d.n(); j++) {
                double sum = 0;
                for (long k = 0; k < d.k(); k++) {
                    double x = transA ? ha.getFloat(k * ka + i) : ha.getFloat(i * ka + k);
                    double yv = transB ? hb.getFloat(j * kb + k) : hb.getFloat(k * kb + j);
                    sum += x * yv;
                }
                double prev = beta == 0 ? 0 : beta * (double) hc.getFloat(i * d.n() + j);
                hc.setFloat(i * d.n() + j, (float) (alpha * sum + prev));
            }
        }
    }
}
