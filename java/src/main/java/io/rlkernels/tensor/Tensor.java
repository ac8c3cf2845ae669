package io.rlkernels.tensor;

import java.util.Arrays;

/**
 * A dense, contiguous, row-major array of one {@link DType}, in host memory ({@link HostTensor})
 * or on a device ({@link DeviceTensor}). A tensor that owns its memory frees it on
 * {@link #close()}; closing twice is harmless, and a closed tensor is refused by every op.
 */
public sealed interface Tensor extends AutoCloseable permits HostTensor, DeviceTensor {

    DType dtype();

    /** A copy of the shape. */
    long[] shape();

    int rank();

    long dim(int axis);

    default long numel() {
        return Shapes.numel(shape());
    }

    default long byteSize() {
        return numel() * dtype().byteSize();
    }

    boolean isAlive();

    boolean isOnDevice();

    /** "bf16[4096, 151936] host" — for messages. */
    default String describe() {
        return dtype().shortName() + Arrays.toString(shape()) + (isOnDevice() ? " device" : " host");
    }

    @Override
    void close();
}
