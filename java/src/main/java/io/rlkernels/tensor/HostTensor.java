package io.rlkernels.tensor;

import io.rlkernels.internal.Lifetime;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.concurrent.locks.LockSupport;

/**
 * A tensor in host memory, backed by a {@link MemorySegment} that native code reads without
 * copies. Created by {@link #allocate} (off-heap, 64-byte aligned, owned: {@link #close()} frees
 * it), or by wrapping memory someone else owns: a segment ({@link #wrap}) or a Java array
 * ({@link #of(float[], long...)} and friends, no copy). A read-only segment (a mapped file) may be
 * an input of any op, never an output. Closing while an op uses the tensor (another thread) frees
 * the memory when the op ends ({@link Lease}).
 */
public final class HostTensor implements Tensor {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;

    private final MemorySegment segment;
    private final DType dtype;
    private final long[] shape;
    private final Lifetime lifetime;

    private HostTensor(MemorySegment segment, DType dtype, long[] shape, Arena arena) {
        this(segment, dtype, shape, arena == null ? () -> {} : () -> closeWhenIdle(arena));
    }

    private HostTensor(MemorySegment segment, DType dtype, long[] shape, Runnable free) {
        this.segment = segment;
        this.dtype = dtype;
        this.shape = shape;
        this.lifetime = new Lifetime(free);
    }

    /** Fresh off-heap memory; the contents are unspecified until written. */
    public static HostTensor allocate(DType dtype, long... shape) {
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: expected an element type, found null");
        }
        long[] s = Shapes.checked("shape", dtype, shape);
        long bytes = Shapes.byteSize("shape", dtype, s);
        Arena arena = Arena.ofShared();
        try {
            return new HostTensor(arena.allocate(Math.max(1, bytes), 64).asSlice(0, bytes), dtype, s, arena);
        } catch (OutOfMemoryError e) {
            arena.close();
            throw new OutOfMemoryError("HostTensor.allocate: cannot allocate " + dtype.shortName() + Arrays.toString(s) + " ("
                    + bytes + " bytes) of native memory: " + e.getMessage());
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * A view of memory owned elsewhere (a mapped file, another library's buffer): exactly the
     * bytes of the shape, aligned to the element size (native code reads whole elements).
     */
    public static HostTensor wrap(MemorySegment segment, DType dtype, long... shape) {
        if (segment == null) {
            throw new IllegalArgumentException("segment: expected a memory segment, found null");
        }
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: expected an element type, found null");
        }
        long[] s = Shapes.checked("shape", dtype, shape);
        long bytes = Shapes.byteSize("shape", dtype, s);
        if (segment.byteSize() != bytes) {
            throw new IllegalArgumentException("segment: expected " + bytes + " bytes for " + dtype.shortName()
                    + Arrays.toString(s) + ", found " + segment.byteSize() + " bytes");
        }
        long alignment = alignment(segment);
        if (bytes > 0 && alignment < dtype.byteSize()) {
            throw new IllegalArgumentException("segment: expected memory aligned to " + dtype.byteSize() + " bytes for "
                    + dtype + " elements, found memory aligned to " + alignment + (segment.isNative()
                    ? " (address 0x" + Long.toHexString(segment.address()) + ")" : " (a Java array of smaller elements)"));
        }
        return new HostTensor(segment, dtype, s, (Arena) null);
    }

    /**
     * {@link #wrap} with an owner to close: {@code owner} keeps the memory alive (another library's
     * handle on it) and is closed once, when this tensor is closed and no op holds it any more.
     * How an adapter lends a framework's array to the ops without a copy and without a
     * use-after-free if the framework's own handle is closed first.
     */
    public static HostTensor wrap(MemorySegment segment, DType dtype, AutoCloseable owner, long... shape) {
        if (owner == null) {
            throw new IllegalArgumentException("owner: expected the memory's owner to close, found null");
        }
        HostTensor plain = wrap(segment, dtype, shape);
        return new HostTensor(plain.segment, dtype, plain.shape, () -> {
            try {
                owner.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing the owner of " + plain.describe() + ": " + e.getMessage(), e);
            }
        });
    }

    /** The array itself as f32 (no copy: writes through the tensor are seen in the array). */
    public static HostTensor of(float[] values, long... shape) {
        return wrap(MemorySegment.ofArray(array("values", values)), DType.F32, shapeOr(shape, values.length));
    }

    /**
     * A new tensor of {@code dtype} (f32, bf16 or f16) holding the values, each rounded to nearest
     * even (a copy, off-heap): how a bf16 batch is filled from Java floats.
     */
    public static HostTensor of(float[] values, DType dtype, long... shape) {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new IllegalArgumentException("dtype: expected float32, bfloat16 or float16 for float[] data, found " + dtype);
        }
        long[] s = shapeOr(shape, array("values", values).length);
        HostTensor t = allocate(dtype, s);
        t.copyFrom(values);
        return t;
    }

    /** Writes the values into this floating-point tensor, rounded to its dtype; the array holds exactly numel elements. */
    public HostTensor copyFrom(float[] values) {
        array("values", values);
        if (values.length != numel()) {
            throw new IllegalArgumentException("values: expected " + numel() + " elements (" + describe() + "), found "
                    + values.length + " elements");
        }
        if (isReadOnly()) {
            throw new IllegalArgumentException("this: expected writable memory, found a read-only " + describe());
        }
        switch (dtype) {
            case F32 -> MemorySegment.copy(values, 0, segment(), F32, 0, values.length);
            case BF16 -> {
                MemorySegment seg = segment();
                for (int i = 0; i < values.length; i++) {
                    seg.setAtIndex(U16, i, HalfFloats.floatToBf16(values[i]));
                }
            }
            case F16 -> {
                MemorySegment seg = segment();
                for (int i = 0; i < values.length; i++) {
                    seg.setAtIndex(U16, i, HalfFloats.floatToF16(values[i]));
                }
            }
            default -> throw new IllegalStateException("copyFrom(float[]) on a " + dtype + " tensor");
        }
        return this;
    }

    @Override
    public HostTensor reshape(long... newShape) {
        long[] s = Shapes.reshaped("shape", numel(), shape, newShape);
        return view(segment(), s);
    }

    @Override
    public HostTensor rows(long start, long count) {
        long[] s = Shapes.rows(describe(), shape, start, count);
        long rowBytes = shape[0] == 0 ? 0 : byteSize() / shape[0];
        return view(segment().asSlice(start * rowBytes, count * rowBytes), s);
    }

    /** A view holding this tensor's memory (a lease) until it is closed. */
    private HostTensor view(MemorySegment memory, long[] s) {
        Lease hold = lease();
        try {
            return new HostTensor(memory, dtype, s, hold::close);
        } catch (RuntimeException e) {
            hold.close();
            throw e;
        }
    }

    /** 16-bit floats held as raw words: {@code dtype} is {@link DType#BF16} or {@link DType#F16}. */
    public static HostTensor of(short[] bits, DType dtype, long... shape) {
        if (dtype != DType.BF16 && dtype != DType.F16) {
            throw new IllegalArgumentException("dtype: expected bfloat16 or float16 for short[] data, found " + dtype);
        }
        return wrap(MemorySegment.ofArray(array("bits", bits)), dtype, shapeOr(shape, bits.length));
    }

    /** The array itself as i32 (no copy). */
    public static HostTensor of(int[] values, long... shape) {
        return wrap(MemorySegment.ofArray(array("values", values)), DType.I32, shapeOr(shape, values.length));
    }

    /** The array itself as i64 (no copy). */
    public static HostTensor of(long[] values, long... shape) {
        return wrap(MemorySegment.ofArray(array("values", values)), DType.I64, shapeOr(shape, values.length));
    }

    /** The array itself as u8 (no copy). */
    public static HostTensor of(byte[] values, long... shape) {
        return wrap(MemorySegment.ofArray(array("values", values)), DType.U8, shapeOr(shape, values.length));
    }

    private static <A> A array(String arg, A values) {
        if (values == null) {
            throw new IllegalArgumentException(arg + ": expected an array, found null");
        }
        return values;
    }

    /** The shape given, or [length]; a given shape must hold exactly the array's elements. */
    private static long[] shapeOr(long[] shape, long length) {
        if (shape == null || shape.length == 0) {
            return new long[] {length};
        }
        long[] s = Shapes.checked("shape", shape);
        long n = Shapes.numel(s);
        if (n != length) {
            throw new IllegalArgumentException("shape: expected " + length + " elements (the array's length), found "
                    + Arrays.toString(s) + " = " + n + " elements");
        }
        return s;
    }

    /** The largest power of two the segment's address is a multiple of (a Java array: its element size at most). */
    private static long alignment(MemorySegment segment) {
        long offset = segment.address(); // for a Java array, the offset into it
        long byAddress = offset == 0 ? 1L << 62 : Long.lowestOneBit(offset);
        if (segment.isNative()) {
            return byAddress;
        }
        Object array = segment.heapBase().orElse(null);
        long element = switch (array) {
            case long[] a -> 8;
            case double[] a -> 8;
            case int[] a -> 4;
            case float[] a -> 4;
            case short[] a -> 2;
            case char[] a -> 2;
            case null, default -> 1;
        };
        return Math.min(element, byAddress);
    }

    /** Frees an arena; a native call still running on a view of this memory is waited for. */
    private static void closeWhenIdle(Arena arena) {
        for (int attempt = 0; ; attempt++) {
            try {
                arena.close();
                return;
            } catch (IllegalStateException inUse) {
                if (!arena.scope().isAlive()) {
                    return;
                }
                if (attempt < 1000) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.parkNanos(1_000_000);
                }
            }
        }
    }

    /** The memory; throws once the tensor was closed and freed. */
    public MemorySegment segment() {
        if (lifetime.isFreed()) {
            throw new IllegalStateException("tensor " + describe() + " is closed");
        }
        return segment;
    }

    /** True when the memory may only be read (a file mapped read-only): never an op's output. */
    public boolean isReadOnly() {
        return segment.isReadOnly();
    }

    /** True when the memory is a Java array rather than native memory. */
    public boolean isHeap() {
        return !segment.isNative();
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    @Override
    public int rank() {
        return shape.length;
    }

    @Override
    public long dim(int axis) {
        return shape[axis];
    }

    @Override
    public boolean isAlive() {
        return lifetime.isOpen() && segment.scope().isAlive();
    }

    @Override
    public Lease lease() {
        Lease l = lifetime.tryLease();
        if (l == null || !segment.scope().isAlive()) {
            if (l != null) {
                l.close();
            }
            throw new IllegalStateException("tensor " + describe() + " is closed");
        }
        return l;
    }

    @Override
    public boolean isOnDevice() {
        return false;
    }

    /** Element i (flat index) as a float: floats are widened, integers converted. */
    public float getFloat(long i) {
        MemorySegment s = segment();
        return switch (dtype) {
            case F32 -> s.getAtIndex(F32, i);
            case BF16 -> HalfFloats.bf16ToFloat(s.getAtIndex(U16, i));
            case F16 -> HalfFloats.f16ToFloat(s.getAtIndex(U16, i));
            case F64 -> (float) s.getAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i);
            case I32 -> s.getAtIndex(I32, i);
            case I64 -> s.getAtIndex(I64, i);
            case U8 -> s.get(ValueLayout.JAVA_BYTE, i) & 0xFF;
        };
    }

    /** Element i of a floating-point tensor, rounded to its type. */
    public void setFloat(long i, float x) {
        MemorySegment s = segment();
        switch (dtype) {
            case F32 -> s.setAtIndex(F32, i, x);
            case BF16 -> s.setAtIndex(U16, i, HalfFloats.floatToBf16(x));
            case F16 -> s.setAtIndex(U16, i, HalfFloats.floatToF16(x));
            case F64 -> s.setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i, x);
            default -> throw new IllegalStateException("setFloat on a " + dtype + " tensor");
        }
    }

    /** Element i as a double: exact for f64 and every other floating type. */
    public double getDouble(long i) {
        return dtype == DType.F64 ? segment().getAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i) : getFloat(i);
    }

    /** Element i of an f64 tensor. */
    public void setDouble(long i, double x) {
        if (dtype != DType.F64) {
            throw new IllegalStateException("setDouble on a " + dtype + " tensor");
        }
        segment().setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i, x);
    }

    /** Element i of an integer tensor. */
    public long getLong(long i) {
        MemorySegment s = segment();
        return switch (dtype) {
            case I32 -> s.getAtIndex(I32, i);
            case I64 -> s.getAtIndex(I64, i);
            case U8 -> s.get(ValueLayout.JAVA_BYTE, i) & 0xFF;
            default -> throw new IllegalStateException("getLong on a " + dtype + " tensor");
        };
    }

    /** Element i of an integer tensor; a value its type cannot hold is refused, never truncated. */
    public void setLong(long i, long x) {
        MemorySegment s = segment();
        if ((dtype == DType.I32 && x != (int) x) || (dtype == DType.U8 && (x < 0 || x > 255))) {
            throw new IllegalArgumentException("value: expected a value " + dtype + " holds, found " + x);
        }
        switch (dtype) {
            case I32 -> s.setAtIndex(I32, i, (int) x);
            case I64 -> s.setAtIndex(I64, i, x);
            case U8 -> s.set(ValueLayout.JAVA_BYTE, i, (byte) x);
            default -> throw new IllegalStateException("setLong on a " + dtype + " tensor");
        }
    }

    /** Every element as a float (widened); for checks and small outputs. */
    public float[] toFloatArray() {
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("tensor " + describe() + " is too large for a Java array");
        }
        if (dtype == DType.F32) {
            return segment().toArray(ValueLayout.JAVA_FLOAT);
        }
        float[] out = new float[(int) n];
        for (int i = 0; i < out.length; i++) {
            out[i] = getFloat(i);
        }
        return out;
    }

    /** Sets every element of a floating-point tensor (NaN poisons outputs before a test run). */
    public HostTensor fill(float x) {
        switch (dtype) {
            case F32 -> {
                MemorySegment s = segment();
                for (long i = 0, n = numel(); i < n; i++) {
                    s.setAtIndex(F32, i, x);
                }
            }
            case BF16 -> fillShort(HalfFloats.floatToBf16(x));
            case F16 -> fillShort(HalfFloats.floatToF16(x));
            case F64 -> {
                for (long i = 0, n = numel(); i < n; i++) {
                    setDouble(i, x);
                }
            }
            default -> throw new IllegalStateException("fill on a " + dtype + " tensor");
        }
        return this;
    }

    private void fillShort(short bits) {
        MemorySegment s = segment();
        for (long i = 0, n = numel(); i < n; i++) {
            s.setAtIndex(U16, i, bits);
        }
    }

    /** Copies this tensor's bytes into {@code dst}, which must have the same dtype and element count. */
    public void copyTo(HostTensor dst) {
        if (dst.dtype != dtype || dst.numel() != numel()) {
            throw new IllegalArgumentException("dst: expected " + describe() + ", found " + dst.describe());
        }
        if (dst.isReadOnly()) {
            throw new IllegalArgumentException("dst: expected writable memory, found a read-only segment " + dst.describe());
        }
        MemorySegment.copy(segment(), 0, dst.segment(), 0, byteSize());
    }

    /** Frees owned memory (at once, or when the last op using it ends); idempotent. */
    @Override
    public void close() {
        lifetime.close();
    }

    @Override
    public String toString() {
        return describe();
    }
}
