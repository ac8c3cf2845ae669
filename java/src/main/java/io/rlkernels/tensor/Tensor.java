package io.rlkernels.tensor;

import java.util.Arrays;

/**
 * A dense, contiguous, row-major array of one {@link DType}, in host memory ({@link HostTensor})
 * or on a device ({@link DeviceTensor}). A tensor that owns its memory frees it on
 * {@link #close()}; closing twice is harmless, and a closed tensor is refused by every op. An op
 * holds a {@link Lease} on each tensor it uses, so a close from another thread meanwhile takes
 * effect when the op ends.
 */
public sealed interface Tensor extends AutoCloseable permits HostTensor, DeviceTensor {

    /** The element type. */
    DType dtype();

    /** A copy of the shape. */
    long[] shape();

    /** The number of axes. */
    int rank();

    /** The size of one axis, in elements. */
    long dim(int axis);

    /** The number of elements: the product of the shape. */
    default long numel() {
        return Shapes.numel(shape());
    }

    /** numel times the element size (the size rule of {@link Shapes} held when the tensor was made). */
    default long byteSize() {
        return Math.multiplyExact(numel(), (long) dtype().byteSize());
    }

    /** Not closed: ops may use it. */
    boolean isAlive();

    /** Holds the memory until the lease is closed; throws {@link IllegalStateException} if the tensor is closed. */
    Lease lease();

    /** Whether the memory is on a device (a {@link DeviceTensor}) rather than the host. */
    boolean isOnDevice();

    /** "bf16[4096, 151936] host" — for messages. */
    default String describe() {
        return dtype().shortName() + Arrays.toString(shape()) + (isOnDevice() ? " device" : " host");
    }

    /**
     * A view of the same memory with another shape of the same element count (one dimension may be
     * -1, inferred): no copy. The view holds this tensor's memory until the view is closed (close
     * it, as any tensor); writes through either are seen by both.
     */
    Tensor reshape(long... shape);

    /**
     * Rows [start, start + count) along the first axis, a view of the same memory (no copy), with
     * the hold of {@link #reshape}.
     */
    Tensor rows(long start, long count);

    @Override
    void close();
}
