package io.rlkernels.backend.cuda;

import java.lang.foreign.MemorySegment;

/**
 * What the Java side of the CUDA backend needs from a device: memory, copies, and kernel launches
 * by name. Two implementations: the JCuda driver API on a real GPU, and the emulator
 * that runs the same kernel sources on the CPU with host memory as device memory.
 * Failures throw {@link CudaException} naming the call and its error code.
 */
public interface KernelLauncher extends AutoCloseable {

    /** One line about the device ("NVIDIA H100 80GB HBM3, sm_90, driver 12.8"). */
    String describe();

    /** Device memory of at least {@code bytes} bytes, 256-byte aligned. */
    long allocate(long bytes);

    void free(long address);

    /**
     * Refuses, with an {@link IllegalArgumentException} naming {@code arg}, device memory this
     * launcher did not allocate (handed over with {@code DeviceTensor.wrap}) unless
     * [address, address + bytes) lies inside one live allocation of this device: a bad address is
     * an exception, never a fault.
     */
    void checkForeign(String arg, long address, long bytes);

    void copyToDevice(long dst, MemorySegment src, long bytes);

    void copyToHost(MemorySegment dst, long src, long bytes);

    /** Launches {@code kernel} on this launcher's stream; returns without waiting. */
    void launch(String kernel, LaunchShape shape, KernelArgs args);

    /**
     * The BLAS this launcher multiplies with ("libcublas.so.13"), or null when it has none and
     * matrix products run on the library's own kernel.
     */
    default String blas() {
        return null;
    }

    /**
     * Row-major C[m, n] = alpha op(A) op(B) + beta C (tight operands; A, B f32, bf16 or f16; C
     * f32; sizes below 2^31) by the BLAS, on this launcher's stream; only when {@link #blas()} is
     * not null.
     */
    default void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, io.rlkernels.tensor.DType aType,
                      long b, io.rlkernels.tensor.DType bType, float beta, long c) {
        throw new UnsupportedOperationException("no BLAS on " + describe());
    }

    /** Waits for everything launched so far; reports a failed launch (asynchronous errors). */
    void synchronize();

    /** Releases the module and the context reference; idempotent. */
    @Override
    void close();
}
