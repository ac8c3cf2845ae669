package io.rlkernels.tensor;

import static io.rlkernels.testing.Refusals.assertRefused;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** The one size rule: element and byte counts never wrap around, and every refusal names its argument. */
class TensorSizeTest {
    private static final long TWO_31 = 1L << 31;

    @Test
    void aByteCountBeyondALongIsRefused() {
        // 2^62 elements of 4 bytes: the byte count wraps to 0 in plain long arithmetic
        assertRefused("shape", "18446744073709551616 bytes", () -> HostTensor.allocate(DType.F32, TWO_31, TWO_31));
        assertRefused("shape", "elements", () -> HostTensor.allocate(DType.F32, Long.MAX_VALUE, 3));
        assertRefused("shape", "bytes", () -> HostTensor.wrap(MemorySegment.NULL, DType.F32, TWO_31, TWO_31));
        assertRefused("shape", "bytes", () -> DeviceTensor.wrap(0x1000, DType.F32, TWO_31, TWO_31));
        assertRefused("shape", "bytes", () -> Shapes.byteSize("shape", DType.I64, Long.MAX_VALUE / 4));
        assertEquals(Long.MAX_VALUE / 8 * 8, Shapes.byteSize("shape", DType.I64, Long.MAX_VALUE / 8));
    }

    @Test
    void negativeAndMissingDimensionsAreRefused() {
        assertRefused("shape", "[3, -1]", () -> HostTensor.allocate(DType.F32, 3, -1));
        assertRefused("shape", "null", () -> HostTensor.allocate(DType.F32, (long[]) null));
        assertRefused("dtype", "null", () -> HostTensor.allocate(null, 3));
    }

    @Test
    void aShapeForAnArrayCountsElementsNotBytes() {
        assertRefused("shape", "[3, 3] = 9 elements", () -> HostTensor.of(new float[10], 3, 3));
        assertRefused("values", "null", () -> HostTensor.of((float[]) null));
        try (HostTensor t = HostTensor.of(new float[12], 3, 4)) {
            assertEquals(12, t.numel());
        }
    }

    @Test
    void wrappedMemoryMustBeTheShapesBytesAndAligned() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(64, 64);
            assertRefused("segment", "found 64 bytes", () -> HostTensor.wrap(s, DType.F32, 3));
            assertRefused("segment", "aligned to 1", () -> HostTensor.wrap(s.asSlice(1, 8), DType.F32, 2));
            assertRefused("segment", "aligned to 2", () -> HostTensor.wrap(s.asSlice(2, 16), DType.I64, 2));
            assertRefused("segment", "Java array", () -> HostTensor.wrap(MemorySegment.ofArray(new byte[8]), DType.F32, 2));
            assertEquals(2, HostTensor.wrap(s.asSlice(4, 8), DType.F32, 2).numel());
        }
    }

    @Test
    void anEmptyTensorIsFine() {
        try (HostTensor t = HostTensor.allocate(DType.F32, 0, TWO_31)) {
            assertEquals(0, t.byteSize());
        }
    }
}
