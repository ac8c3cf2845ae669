package io.rlkernels.tensor;

import io.rlkernels.internal.Lifetime;
import java.util.Arrays;

/**
 * A tensor in device memory: a raw device address, a dtype and a shape. Allocated by a device
 * backend (which frees it on {@link #close()}), or wrapping an address handed over by another
 * framework in the current context ({@link #wrap}), which stays that framework's to free. A
 * wrapped address is checked by the backend that first uses it (it must lie inside one device
 * allocation), so a bad address is an exception, not a fault.
 */
public final class DeviceTensor implements Tensor {

    /** Frees device memory; implemented by the launcher that allocated it. */
    @FunctionalInterface
    public interface Deallocator {
        /** Frees the device memory at {@code address}, once. */
        void free(long address);
    }

    private final long address;
    private final DType dtype;
    private final long[] shape;
    private final Object owner; // the allocating launcher, or null when wrapped
    private final Lifetime lifetime;

    private DeviceTensor(long address, DType dtype, long[] shape, Object owner, Deallocator deallocator) {
        this(address, dtype, shape, owner, deallocator == null ? () -> {} : (Runnable) () -> deallocator.free(address));
    }

    private DeviceTensor(long address, DType dtype, long[] shape, Object owner, Runnable free) {
        this.address = address;
        this.dtype = dtype;
        this.shape = shape;
        this.owner = owner;
        this.lifetime = new Lifetime(free);
    }

    @Override
    public DeviceTensor reshape(long... newShape) {
        long[] s = Shapes.reshaped("shape", numel(), shape, newShape);
        return view(address(), s);
    }

    @Override
    public DeviceTensor rows(long start, long count) {
        long[] s = Shapes.rows(describe(), shape, start, count);
        long rowBytes = shape[0] == 0 ? 0 : byteSize() / shape[0];
        return view(address() + start * rowBytes, s);
    }

    /** A view holding this tensor's memory (a lease) until it is closed; owned by the same launcher. */
    private DeviceTensor view(long at, long[] s) {
        Lease hold = lease();
        return new DeviceTensor(at, dtype, s, owner, (Runnable) hold::close);
    }

    /** For device backends: memory they allocated and will free through {@code deallocator}. */
    public static DeviceTensor owned(long address, DType dtype, long[] shape, Object owner, Deallocator deallocator) {
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: expected an element type, found null");
        }
        return new DeviceTensor(address, dtype, Shapes.checked("shape", dtype, shape), owner, deallocator);
    }

    /** A non-owning view of device memory allocated elsewhere (PyTorch, another library). */
    public static DeviceTensor wrap(long address, DType dtype, long... shape) {
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: expected an element type, found null");
        }
        long[] s = Shapes.checked("shape", dtype, shape);
        if (address == 0 && Shapes.numel(s) > 0) {
            throw new IllegalArgumentException("address: expected a device pointer, found 0");
        }
        return new DeviceTensor(address, dtype, s, null, (Deallocator) null);
    }

    /** The device address; throws once the tensor was closed and freed. */
    public long address() {
        if (lifetime.isFreed()) {
            throw new IllegalStateException("tensor " + describe() + " is closed");
        }
        return address;
    }

    /** Whether this backend-allocated memory (false: wrapped, checked by the backend before use). */
    public boolean isOwned() {
        return owner != null;
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
        return lifetime.isOpen();
    }

    @Override
    public Lease lease() {
        Lease l = lifetime.tryLease();
        if (l == null) {
            throw new IllegalStateException("tensor " + describe() + " is closed");
        }
        return l;
    }

    @Override
    public boolean isOnDevice() {
        return true;
    }

    /** Frees owned memory (at once, or when the last op using it ends); idempotent. */
    @Override
    public void close() {
        lifetime.close();
    }

    @Override
    public String toString() {
        return dtype.shortName() + Arrays.toString(shape) + " device@0x" + Long.toHexString(address);
    }
}
