package io.rlkernels.ops;

import io.rlkernels.ops.internal.LogProbsChecks;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Bad input gives an IllegalArgumentException naming the argument, the expected and the found
 * value, before any kernel runs (ARCHITECTURE §7): the poisoned outputs stay unwritten.
 */
class LogProbsBadInputTest {
    private static final long N = 5;
    private static final long V = 300;
    private static final LogProbs.Config C = LogProbs.Config.defaults();

    static Stream<BackendUnderTest> all() {
        return BackendUnderTest.all();
    }

    private static void assertRejected(String argument, String found, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().startsWith(argument + ":"), "message names " + argument + ": " + e.getMessage());
        assertTrue(e.getMessage().contains("expected"), "message says what was expected: " + e.getMessage());
        assertTrue(e.getMessage().contains(found), "message says what was found (" + found + "): " + e.getMessage());
    }

    /** Inputs and poisoned outputs on the backend under test. */
    private static final class Fixture implements AutoCloseable {
        final Backend b;
        final Tensor logits;
        final Tensor targets;
        final Tensor logp;
        final Tensor lse;
        final Tensor parts;
        final Tensor entropy;
        final Tensor g;
        final Tensor grad;

        Fixture(BackendUnderTest bt, HostTensor hostTargets) {
            SplittableRandom rng = new SplittableRandom(TestData.newSeed());
            b = bt.open();
            try (HostTensor z = TestData.logits(rng, DType.F32, N, V, 1.0); HostTensor nan = TestData.poisoned(DType.F32, N);
                 HostTensor nanGrad = TestData.poisoned(DType.F32, N, V); HostTensor gh = TestData.normal(rng, N, 1.0)) {
                logits = b.upload(z);
                targets = b.upload(hostTargets);
                logp = b.upload(nan);
                lse = b.upload(nan);
                try (HostTensor p = HostTensor.allocate(DType.F32, N, 2).fill(0.5f)) {
                    parts = b.upload(p); // a valid (m, ln s) for every row
                }
                entropy = b.upload(nan);
                g = b.upload(gh);
                grad = b.upload(nanGrad);
            }
        }

        void assertOutputsUnwritten() {
            try (HostTensor out = HostTensor.allocate(DType.F32, N); HostTensor gradOut = HostTensor.allocate(DType.F32, N, V)) {
                for (Tensor t : new Tensor[] {logp, lse, entropy}) {
                    b.download(t, out);
                    for (long i = 0; i < N; i++) {
                        assertTrue(Float.isNaN(out.getFloat(i)), "an output was written before the arguments were checked");
                    }
                }
                b.download(grad, gradOut);
                assertTrue(Float.isNaN(gradOut.getFloat(0)), "the gradient was written before the arguments were checked");
            }
        }

        @Override
        public void close() {
            for (Tensor t : new Tensor[] {logits, targets, logp, lse, parts, entropy, g, grad}) {
                t.close();
            }
            b.close();
        }
    }

    private static HostTensor targets(long... ids) {
        HostTensor t = HostTensor.allocate(DType.I64, ids.length);
        for (int i = 0; i < ids.length; i++) {
            t.setLong(i, ids[i]);
        }
        return t;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void targetIdOutOfRange(BackendUnderTest bt) {
        for (long bad : new long[] {V, -1, Long.MAX_VALUE}) {
            try (HostTensor y = targets(0, 1, 2, bad, 4); Fixture f = new Fixture(bt, y)) {
                assertRejected("targets[3]", Long.toString(bad), () -> f.b.logProbs(C, f.logits, f.targets, f.logp, f.lse, f.entropy));
                assertRejected("targets[3]", Long.toString(bad),
                        () -> f.b.logProbsBackward(C, f.logits, f.targets, f.parts, null, f.g, null, f.grad));
                f.assertOutputsUnwritten();
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void mismatchedShapesAndTypes(BackendUnderTest bt) {
        try (HostTensor y = targets(0, 1, 2, 3, 4); Fixture f = new Fixture(bt, y);
             Tensor shortTargets = f.b.allocate(DType.I64, N - 1);
             Tensor floatTargets = f.b.allocate(DType.F32, N);
             Tensor flat = f.b.allocate(DType.F32, N * V);
             Tensor bf16Out = f.b.allocate(DType.BF16, N);
             Tensor longOut = f.b.allocate(DType.F32, N + 1);
             Tensor wrongGrad = f.b.allocate(DType.F32, N, V + 1)) {
            assertRejected("targets", "[4]", () -> f.b.logProbs(C, f.logits, shortTargets, f.logp, f.lse, f.entropy));
            assertRejected("targets", "float32", () -> f.b.logProbs(C, f.logits, floatTargets, f.logp, f.lse, f.entropy));
            assertRejected("logits", "rank 1", () -> f.b.logProbs(C, flat, f.targets, f.logp, f.lse, f.entropy));
            assertRejected("logp", "bfloat16", () -> f.b.logProbs(C, f.logits, f.targets, bf16Out, f.lse, f.entropy));
            assertRejected("lse", "[6]", () -> f.b.logProbs(C, f.logits, f.targets, f.logp, longOut, f.entropy));
            assertRejected("lse", "the same tensor", () -> f.b.logProbs(C, f.logits, f.targets, f.logp, f.logp, f.entropy));
            assertRejected("gradLogits", "[5, 301]",
                    () -> f.b.logProbsBackward(C, f.logits, f.targets, f.parts, null, f.g, null, wrongGrad));
            assertRejected("gradLogp, gradEntropy", "both null",
                    () -> f.b.logProbsBackward(C, f.logits, f.targets, f.parts, null, null, null, f.grad));
            assertRejected("entropy", "null",
                    () -> f.b.logProbsBackward(C, f.logits, f.targets, f.parts, null, null, f.g, f.grad));
            assertRejected("logits", "null", () -> f.b.logProbs(C, null, f.targets, f.logp, f.lse, f.entropy));
            // the backward takes the forward's lseParts [N, 2], not lse [N]
            assertRejected("lseParts", "[5]", () -> f.b.logProbsBackward(C, f.logits, f.targets, f.lse, null, f.g, null, f.grad));
            assertRejected("lseParts", "[5]", () -> f.b.logProbs(C, f.logits, f.targets, f.logp, f.lse, f.entropy, f.lse));
            f.assertOutputsUnwritten();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void closedTensors(BackendUnderTest bt) {
        try (HostTensor y = targets(0, 1, 2, 3, 4); Fixture f = new Fixture(bt, y)) {
            Tensor closed = f.b.allocate(DType.F32, N, V);
            closed.close();
            closed.close(); // closing twice is harmless
            assertRejected("logits", "closed", () -> f.b.logProbs(C, closed, f.targets, f.logp, f.lse, f.entropy));
            assertRejected("gradLogits", "closed",
                    () -> f.b.logProbsBackward(C, f.logits, f.targets, f.parts, null, f.g, null, closed));
            f.assertOutputsUnwritten();
        }
    }

    static Stream<BackendUnderTest> deviceBackends() {
        return BackendUnderTest.fast().filter(b -> b.kind() == io.rlkernels.backend.BackendKind.CUDA
                || b.kind() == io.rlkernels.backend.BackendKind.EMULATED);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("deviceBackends")
    void uncheckedDeviceTargetsStillNeverReadOutOfBounds(BackendUnderTest bt) {
        try (HostTensor y = targets(0, 1, 2, V + 1000, 4); Fixture f = new Fixture(bt, y);
             HostTensor logp = HostTensor.allocate(DType.F32, N)) {
            io.rlkernels.backend.cuda.CudaBackend cuda = (io.rlkernels.backend.cuda.CudaBackend) f.b;
            assertRejected("targets[3]", Long.toString(V + 1000), () -> f.b.logProbs(C, f.logits, f.targets, f.logp, f.lse, null));
            cuda.checkDeviceInputs(false);
            f.b.logProbs(C, f.logits, f.targets, f.logp, f.lse, null);
            f.b.download(f.logp, logp);
            assertTrue(Float.isNaN(logp.getFloat(3)), "the bad row is NaN");
            for (int i : new int[] {0, 1, 2, 4}) {
                assertTrue(Float.isFinite(logp.getFloat(i)) && logp.getFloat(i) < 0, "row " + i + " is computed: " + logp.getFloat(i));
            }
        }
    }

    @Test
    void overlappingHostGradientIsRefused() {
        try (HostTensor z = HostTensor.allocate(DType.F32, 2 * N, V).fill(1f)) {
            HostTensor firstHalf = HostTensor.wrap(z.segment().asSlice(0, N * V * 4), DType.F32, N, V);
            HostTensor shifted = HostTensor.wrap(z.segment().asSlice(4 * V, N * V * 4), DType.F32, N, V);
            assertRejected("gradLogits", "overlapping memory", () -> LogProbsChecks.checkBackward(C, firstHalf, targets(0, 1, 2, 3, 4),
                    HostTensor.allocate(DType.F32, N, 2), null, HostTensor.allocate(DType.F32, N), null, shifted));
        }
    }

    @Test
    void badTemperature() {
        for (float t : new float[] {Float.NaN, 0f, -1f, Float.POSITIVE_INFINITY, 1e-45f}) {
            assertRejected("temperature", "", () -> LogProbs.Config.defaults().withTemperature(t));
        }
    }
}
