package io.rlkernels.tensor;

import java.util.Arrays;

/**
 * A tensor in device memory: a raw device address, a dtype and a shape. Allocated by a device
 * backend (which frees it on {@link #close()}), or wrapping an address handed over by another
 * framework in the current context ({@link #wrap}), which stays that framework's to free.
 */
public final class DeviceTensor implements Tensor {

    /** Frees device memory; implemented by the launcher that allocated it. */
    @FunctionalInterface
    public interface Deallocator {
        void free(long address);
    }

    private final long address;
    private final DType dtype;
    private final long[] shape;
    private final Object owner; // the allocating launcher, or null when wrapped
    private final Deallocator deallocator;
    private volatile boolean closed;

    private DeviceTensor(long address, DType dtype, long[] shape, Object owner, Deallocator deallocator) {
        this.address = address;
        this.dtype = dtype;
        this.shape = shape;
        this.owner = owner;
        this.deallocator = deallocator;
    }

    /** For device backends: memory they allocated and will free through {@code deallocator}. */
    public static DeviceTensor owned(long address, DType dtype, long[] shape, Object owner, Deallocator deallocator) {
        return new DeviceTensor(address, dtype, Shapes.checked(shape), owner, deallocator);
    }

    /** A non-owning view of device memory allocated elsewhere (PyTorch, another library). */
    public static DeviceTensor wrap(long address, DType dtype, long... shape) {
        if (address == 0 && Shapes.numel(shape) > 0) {
            throw new IllegalArgumentException("address: expected a device pointer, found 0");
        }
        return new DeviceTensor(address, dtype, Shapes.checked(shape), null, null);
    }

    public long address() {
        if (closed) {
            throw new IllegalStateException("tensor " + describe() + " is closed");
        }
        return address;
    }

    /** The launcher that allocated this tensor, or null for wrapped memory. */
    public Object owner() {
        return owner;
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
        return !closed;
    }

    @Override
    public boolean isOnDevice() {
        return true;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (deallocator != null) {
            deallocator.free(address);
        }
    }

    @Override
    public String toString() {
        return dtype.shortName() + Arrays.toString(shape) + " device@0x" + Long.toHexString(address);
    }
}
