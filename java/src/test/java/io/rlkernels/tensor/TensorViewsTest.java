package io.rlkernels.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Views without copies ({@link Tensor#reshape}, {@link Tensor#rows}), 16-bit tensors from and to
 * float[], and typed host copies: what a trainer needs to pass an [S, T] batch where [N] is wanted.
 */
class TensorViewsTest {
    @Test
    void reshapeAndRowsShareMemoryAndCountInElements() {
        float[] data = new float[24];
        for (int i = 0; i < 24; i++) {
            data[i] = i;
        }
        try (HostTensor t = HostTensor.of(data, 4, 6); HostTensor flat = t.reshape(-1); HostTensor three = t.reshape(2, -1, 3);
             HostTensor middle = t.rows(1, 2)) {
            assertArrayEquals(new long[] {24}, flat.shape());
            assertArrayEquals(new long[] {2, 4, 3}, three.shape());
            assertArrayEquals(new long[] {2, 6}, middle.shape());
            assertEquals(6f, middle.getFloat(0));
            assertEquals(17f, middle.getFloat(11));
            flat.setFloat(7, -1f);
            assertEquals(-1f, t.getFloat(7), "a write through the view is seen by the tensor");
            assertEquals(-1f, middle.getFloat(1));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.reshape(5, 5));
            assertTrue(e.getMessage().startsWith("shape: expected 24 elements ([4, 6]), found [5, 5] = 25 elements"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> t.reshape(-1, 5));
            assertTrue(e.getMessage().contains("no -1 fits"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> t.rows(3, 2));
            assertTrue(e.getMessage().startsWith("rows:"), e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HostTensor.of(new float[10], 3, 3));
        assertTrue(e.getMessage().contains("10 elements") && e.getMessage().contains("9 elements"), e.getMessage());
    }

    @Test
    void aViewHoldsItsTensorsMemoryUntilClosed() {
        AtomicInteger frees = new AtomicInteger();
        DeviceTensor parent = DeviceTensor.owned(0x1000, DType.F32, new long[] {8, 4}, this, a -> frees.incrementAndGet());
        DeviceTensor rows = parent.rows(2, 3);
        assertEquals(0x1000 + 2 * 16, rows.address(), "rows 2.. start 32 bytes in");
        DeviceTensor flat = rows.reshape(12);
        parent.close();
        assertFalse(parent.isAlive(), "closed: no new use");
        assertEquals(0, frees.get(), "the views still hold the memory");
        assertEquals(0x1000 + 32, flat.address());
        rows.close();
        assertEquals(0, frees.get());
        flat.close();
        assertEquals(1, frees.get(), "freed once, when the last view closed");
        assertThrows(IllegalStateException.class, () -> parent.reshape(32), "a closed tensor gives no view");
    }

    @Test
    void aWrappedSegmentClosesItsOwnerOnceWhenFreed() {
        AtomicInteger closes = new AtomicInteger();
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            java.lang.foreign.MemorySegment seg = arena.allocate(16, 4);
            HostTensor t = HostTensor.wrap(seg, DType.F32, closes::incrementAndGet, 4);
            Lease held = t.lease(); // an op using it
            t.close();
            assertEquals(0, closes.get(), "not while an op holds it");
            held.close();
            assertEquals(1, closes.get(), "closed when the last use ends");
            t.close();
            assertEquals(1, closes.get(), "once");
        }
        assertThrows(IllegalArgumentException.class, () -> HostTensor.wrap(java.lang.foreign.MemorySegment.ofArray(new float[4]), DType.F32,
                (AutoCloseable) null, 4));
    }

    @Test
    void halfFloatsFromAndToFloatArrays() {
        float[] x = {1f, 1.00390625f, -3.14159f, 65504f, 1e-8f};
        for (DType dt : new DType[] {DType.BF16, DType.F16, DType.F32}) {
            try (HostTensor t = HostTensor.of(x, dt, 5)) {
                float[] back = t.toFloatArray();
                for (int i = 0; i < x.length; i++) {
                    assertEquals(HalfFloats.roundTo(dt, x[i]), back[i], 0f, dt + " [" + i + "]: rounded once to nearest even");
                }
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.copyFrom(new float[4]));
                assertTrue(e.getMessage().startsWith("values: expected 5 elements"), e.getMessage());
            }
        }
        assertThrows(IllegalArgumentException.class, () -> HostTensor.of(x, DType.I32, 5));
    }

    /** An [S, T] batch as the [N] the policy loss wants, through a view, on every backend; results read through toHost. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void opsTakeViews(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        int s = 6;
        int t = 9;
        try (Backend b = bt.open(); HostTensor logp = TestData.normal(rng, s * t, 0.3); HostTensor adv = TestData.normal(rng, s * t, 1);
             HostTensor mask = HostTensor.allocate(DType.F32, s * t).fill(1f);
             Tensor dLogp = b.upload(logp); Tensor dAdv = b.upload(adv); Tensor dMask = b.upload(mask);
             Tensor grid = dLogp.reshape(s, t); Tensor flat = grid.reshape(-1); Tensor grad = b.allocate(DType.F32, s * t);
             Tensor want = b.allocate(DType.F32, s * t)) {
            PolicyLoss.Config c = PolicyLoss.Config.defaults();
            PolicyLoss.Stats viaView = b.policyLoss(c, new PolicyLoss.Inputs(flat, flat, dAdv, dMask), grad, null);
            PolicyLoss.Stats direct = b.policyLoss(c, new PolicyLoss.Inputs(dLogp, dLogp, dAdv, dMask), want, null);
            assertEquals(direct.loss(), viaView.loss(), 0, bt + " seed=" + seed);
            try (HostTensor g = b.toHost(grad); HostTensor w = b.toHost(want)) {
                assertArrayEquals(w.toFloatArray(), g.toFloatArray(), bt + ": the same gradient through a view");
            }
        }
    }
}
