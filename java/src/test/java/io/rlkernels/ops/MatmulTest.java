package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.nativecpu.NativeBackend;
import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.Compare;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The matrix product with 16-bit operands (Backend.matmul): every backend against the f64
 * reference in every layout and dtype pairing, C poisoned before a beta = 0 call; on the native
 * backend, operands large enough to be widened a tile at a time, repeatability, and the own
 * kernel (rlkernels.blas=own) against OpenBLAS. An f32 product of length k is within
 * k 2^-24 sum |a b| of exact: the bound used.
 */
class MatmulTest {

    private static void checkAgainstReference(String where, Backend b, boolean ta, boolean tb, int m, int n, int k, DType da,
                                              DType db, float beta, SplittableRandom rng) {
        try (HostTensor a = TestData.logits(rng, da, ta ? k : m, ta ? m : k, 1.0);
             HostTensor bb = TestData.logits(rng, db, tb ? n : k, tb ? k : n, 1.0);
             HostTensor c0 = beta == 0 ? TestData.poisoned(DType.F32, m, n) : TestData.logits(rng, DType.F32, m, n, 1.0);
             HostTensor want = beta == 0 ? HostTensor.allocate(DType.F32, m, n) : TestData.copy(c0);
             Tensor ad = b.upload(a); Tensor bd = b.upload(bb); Tensor cd = b.upload(c0);
             HostTensor got = HostTensor.allocate(DType.F32, m, n)) {
            new ReferenceBackend().matmul(ta, tb, 1.5f, a, bb, beta, want);
            b.matmul(ta, tb, 1.5f, ad, bd, beta, cd);
            b.download(cd, got);
            Compare.assertClose(where + " ta=" + ta + " tb=" + tb + " " + m + "x" + n + "x" + k + " " + da + "/" + db, want, got,
                    tolerance(k));
        }
    }

    /**
     * |a b| ~ 0.64 a term, alpha 1.5: the worst-case f32 bound k 2^-24 sum |a b| is about k^2 2^-24
     * for small k; for large k the rounding errors of a sum of random terms grow as sqrt(k) (a few
     * ulps of the partial sums, |partial| ~ sqrt(k)), so 1e-4 sqrt(k), while a lost tile or a wrong
     * offset is off by about sqrt(k) itself.
     */
    private static Tolerance tolerance(int k) {
        return new Tolerance(Math.min(2.0 * k * k * 0x1p-24, 1e-4 * Math.sqrt(k)) + 1e-6, 1e-6);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void sixteenBitOperandsInEveryLayout(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        DType[][] pairs = {{DType.BF16, DType.BF16}, {DType.F32, DType.BF16}, {DType.F16, DType.F32}};
        try (Backend b = bt.open()) {
            for (DType[] p : pairs) {
                for (boolean ta : new boolean[] {false, true}) {
                    for (boolean tb : new boolean[] {false, true}) {
                        checkAgainstReference(bt + " seed=" + seed, b, ta, tb, 1 + rng.nextInt(30), 1 + rng.nextInt(300),
                                1 + rng.nextInt(40), p[0], p[1], rng.nextBoolean() ? 0f : 0.5f, rng);
                    }
                }
            }
        }
    }

    @Test
    void operandsWiderThanATileAreWidenedATileAtATime() {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = NativeBackend.open()) {
            // 8 MiB of f32 is 2^21 elements: 2100 x 1024 bf16 rows take 2 tiles, in each role
            checkAgainstReference("native seed=" + seed, b, false, true, 3, 2100, 1024, DType.F32, DType.BF16, 0f, rng);
            checkAgainstReference("native seed=" + seed, b, false, false, 2, 3, 2_200_000, DType.F32, DType.BF16, 0.5f, rng);
            checkAgainstReference("native seed=" + seed, b, false, false, 2100, 3, 1024, DType.BF16, DType.F32, 0f, rng);
            checkAgainstReference("native seed=" + seed, b, true, false, 3, 2, 2_200_000, DType.BF16, DType.F32, 0.5f, rng);
        }
    }

    @Test
    void aRepeatedCallIsBitwiseTheSameAndTheOwnKernelAgrees() {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        int m = 300, n = 700, k = 256;
        try (HostTensor a = TestData.logits(rng, DType.F32, m, k, 1.0); HostTensor w = TestData.logits(rng, DType.BF16, n, k, 1.0);
             HostTensor c1 = HostTensor.allocate(DType.F32, m, n); HostTensor c2 = HostTensor.allocate(DType.F32, m, n);
             HostTensor own = HostTensor.allocate(DType.F32, m, n)) {
            try (NativeBackend b = NativeBackend.open()) {
                assertTrue(b.blas().startsWith("OpenBLAS"), "OpenBLAS is on the test class path: " + b.blas());
                b.matmul(false, true, 1f, a, w, 0f, c1);
                b.matmul(false, true, 1f, a, w, 0f, c2);
            }
            assertArrayEquals(c1.toFloatArray(), c2.toFloatArray(), "the same call twice, bitwise");
            System.setProperty("rlkernels.blas", "own");
            try (NativeBackend b = NativeBackend.open()) {
                assertTrue(b.blas().startsWith("own kernel"), b.blas());
                b.matmul(false, true, 1f, a, w, 0f, own);
            } finally {
                System.clearProperty("rlkernels.blas");
            }
            Compare.assertClose("own kernel against OpenBLAS seed=" + seed, c1, own, tolerance(k));
        }
    }
}
