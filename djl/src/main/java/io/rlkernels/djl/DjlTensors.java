package io.rlkernels.djl;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;

/**
 * DJL arrays as the library's tensors, without a copy: a {@link HostTensor} over a CPU NDArray's
 * own memory (DJL's PyTorch engine hands out a direct buffer over the tensor's storage). The view
 * holds a second handle on that storage (detached from the array's manager), closed when the view
 * is closed, so closing the NDArray or its manager first frees nothing under the view.
 *
 * <p>Types: float32, float16, int32, int64, uint8 and boolean (as u8). bfloat16 is refused: DJL
 * 0.36's PyTorch engine aborts the JVM when a bf16 array's buffer is taken (measured); convert it
 * with {@code toType(DataType.FLOAT32, true)} first. GPU arrays are refused (their device pointer is
 * not in DJL's API). Arrays over 2^31 bytes, which no ByteBuffer holds, are viewed through their
 * first element's address and their size. A strided (non-contiguous) array is viewed through its contiguous copy: fine
 * as an input, refused as an output ({@link #output}).
 */
public final class DjlTensors {
    private DjlTensors() {}

    /** The library's dtype of a DJL data type, refused naming {@code arg} where there is none. */
    public static DType dtype(String arg, DataType t) {
        return switch (t) {
            case FLOAT32 -> DType.F32;
            case FLOAT16 -> DType.F16;
            case INT32 -> DType.I32;
            case INT64 -> DType.I64;
            case UINT8, BOOLEAN -> DType.U8;
            case BFLOAT16 -> throw fail(arg, "float32, float16, int32, int64, uint8 or boolean", "bfloat16 (DJL 0.36 aborts the JVM"
                    + " when a bf16 array's buffer is taken: convert it with toType(DataType.FLOAT32, true) first)");
            default -> throw fail(arg, "float32, float16, int32, int64, uint8 or boolean", t.toString().toLowerCase(java.util.Locale.ROOT));
        };
    }

    /** A view of a CPU NDArray as an input: its memory, or, for a strided array, its contiguous copy. Close it after use. */
    public static HostTensor input(String arg, NDArray array) {
        check(arg, array);
        DType dt = dtype(arg, array.getDataType());
        long[] shape = array.getShape().getShape();
        NDArray keep = array.reshape(array.getShape()); // a second handle on the same storage (a copy if strided)
        try {
            keep.detach(); // the view, not the array's manager, decides when it goes
            long bytes = Math.multiplyExact(array.size(), (long) dt.byteSize());
            return HostTensor.wrap(storage(arg, keep, bytes), dt, keep, shape);
        } catch (RuntimeException e) {
            keep.close();
            throw e;
        }
    }

    /**
     * The memory of a dense array: its direct buffer; above 2^31 - 1 bytes, which no ByteBuffer
     * holds (DJL refuses "large tensors"), the address of its first element's buffer (a view of
     * the same storage) taken to the whole size — the storage is one contiguous block.
     */
    private static MemorySegment storage(String arg, NDArray dense, long bytes) {
        if (bytes <= Integer.MAX_VALUE - 8) {
            ByteBuffer b = dense.toByteBuffer(true);
            if (!b.isDirect()) {
                throw fail(arg, "an NDArray whose engine lends its memory (a direct buffer)", "an engine that copies it out");
            }
            return MemorySegment.ofBuffer(b);
        }
        try (NDArray flat = dense.reshape(-1); NDArray first = flat.get(0)) {
            ByteBuffer b = first.toByteBuffer(true);
            if (!b.isDirect()) {
                throw fail(arg, "an NDArray whose engine lends its memory (a direct buffer)", "an engine that copies it out");
            }
            return MemorySegment.ofAddress(MemorySegment.ofBuffer(b).address()).reinterpret(bytes);
        }
    }

    /**
     * A view of a CPU NDArray as an output, written in place: its own memory, refused for a
     * strided array (the view would be a copy, and the writes lost). Close it after use.
     */
    public static HostTensor output(String arg, NDArray array) {
        HostTensor v = input(arg, array);
        long own;
        try (NDArray flat = array.reshape(-1); NDArray first = flat.get(0)) { // the array's own first element, any size
            own = MemorySegment.ofBuffer(first.toByteBuffer(true)).address();
        }
        if (own != v.segment().address()) {
            v.close();
            throw fail(arg, "a dense NDArray (an output is written in place)", "a strided view: make it contiguous first");
        }
        return v;
    }

    private static void check(String arg, NDArray array) {
        if (array == null) {
            throw fail(arg, "an NDArray", "null");
        }
        if (array.isReleased()) {
            throw fail(arg, "an open NDArray", "a closed one");
        }
        if (!"cpu".equals(array.getDevice().getDeviceType())) {
            throw fail(arg, "an NDArray on the CPU", "one on " + array.getDevice());
        }
    }

    static IllegalArgumentException fail(String arg, String expected, Object found) {
        return new IllegalArgumentException(arg + ": expected " + expected + ", found " + found);
    }
}
