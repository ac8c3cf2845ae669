package io.rlkernels.backend.cuda.internal;

import io.rlkernels.backend.cuda.CudaException;
import io.rlkernels.backend.cuda.KernelArgs;
import io.rlkernels.backend.cuda.KernelLauncher;
import io.rlkernels.backend.cuda.LaunchShape;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import jcuda.NativePointerObject;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmemorytype;
import jcuda.driver.CUmodule;
import jcuda.driver.CUpointer_attribute;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

/**
 * The CUDA driver API through JCuda: the device's primary context, the fatbin loaded as one
 * module, one stream, and kernels launched by name. Every driver call is checked and a failure
 * names the call and its CUresult.
 *
 * <p>The stream is non-blocking: this library's work is not serialised with whatever else runs on
 * the legacy default stream of the process (another framework's), so everything it does is
 * ordered on its own stream — host-to-device copies are {@code cuMemcpyHtoDAsync} on it (from
 * pageable memory the driver stages the source before returning), and a copy back to the host
 * first synchronises the stream.
 */
public final class JCudaLauncher implements KernelLauncher {
    /** Host copies larger than this go in pieces (a ByteBuffer holds at most 2^31 - 1 bytes). */
    private static final long COPY_CHUNK = 1L << 30;
    /** Java arrays are copied through a native staging buffer of this size. */
    private static final long HEAP_STAGING = 64L << 20;

    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final CUmodule module = new CUmodule();
    private final Stream stream = new Stream();
    /** cuBLAS, unless absent or rlkernels.blas=own; its handle is made on the first product. */
    private final Cublas cublas = "own".equals(System.getProperty("rlkernels.blas")) ? null : Cublas.get().orElse(null);
    private long cublasHandle;
    private final Map<String, CUfunction> functions = new HashMap<>();
    private final String description;
    private boolean closed;

    /** The stream, which can read back its raw handle (cuBLAS takes it). */
    private static final class Stream extends CUstream {
        long address() {
            return getNativePointer();
        }
    }

    /** cuMemAlloc fills this subclass, which can read back the raw address. */
    private static final class DevicePointer extends CUdeviceptr {
        long address() {
            return getNativePointer();
        }
    }

    public JCudaLauncher(int ordinal, byte[] fatbin) {
        JCudaDriver.setExceptionsEnabled(false);
        check(JCudaDriver.cuInit(0), "cuInit");
        check(JCudaDriver.cuDeviceGet(device, ordinal), "cuDeviceGet");
        check(JCudaDriver.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain");
        try {
            makeCurrent();
            check(JCudaDriver.cuModuleLoadData(module, fatbin), "cuModuleLoadData");
            check(JCudaDriver.cuStreamCreate(stream, jcuda.driver.CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
            description = describeDevice(device);
        } catch (RuntimeException e) {
            JCudaDriver.cuDevicePrimaryCtxRelease(device);
            throw e;
        }
    }

    private static String describeDevice(CUdevice device) {
        byte[] name = new byte[256];
        check(JCudaDriver.cuDeviceGetName(name, name.length, device), "cuDeviceGetName");
        int[] major = {0};
        int[] minor = {0};
        int[] driver = {0};
        check(JCudaDriver.cuDeviceGetAttribute(major, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
                "cuDeviceGetAttribute");
        check(JCudaDriver.cuDeviceGetAttribute(minor, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device),
                "cuDeviceGetAttribute");
        check(JCudaDriver.cuDriverGetVersion(driver), "cuDriverGetVersion");
        int len = 0;
        while (len < name.length && name[len] != 0) {
            len++;
        }
        return new String(name, 0, len, StandardCharsets.UTF_8) + ", sm_" + major[0] + minor[0]
                + ", CUDA driver " + driver[0] / 1000 + "." + (driver[0] % 1000) / 10;
    }

    static void check(int result, String call) {
        if (result != CUresult.CUDA_SUCCESS) {
            throw new CudaException(call, result, CUresult.stringFor(result));
        }
    }

    private void makeCurrent() {
        check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    private static CUdeviceptr at(long address) {
        return new CUdeviceptr().withByteOffset(address);
    }

    @Override
    public String describe() {
        return description;
    }

    @Override
    public synchronized long allocate(long bytes) {
        makeCurrent();
        DevicePointer p = new DevicePointer();
        check(JCudaDriver.cuMemAlloc(p, Math.max(bytes, 1)), "cuMemAlloc(" + bytes + " bytes)");
        return p.address();
    }

    @Override
    public synchronized void free(long address) {
        if (closed) {
            return; // the context's memory went with it
        }
        makeCurrent();
        check(JCudaDriver.cuMemFree(at(address)), "cuMemFree");
    }

    /** The driver's own answer: the allocation holding the address (cuPointerGetAttribute), and that it is device memory. */
    @Override
    public synchronized void checkForeign(String arg, long address, long bytes) {
        makeCurrent();
        int[] type = {0};
        long[] start = {0};
        long[] size = {0};
        String expected = "device memory of " + bytes + " bytes inside one allocation of this device";
        if (JCudaDriver.cuPointerGetAttribute(Pointer.to(type), CUpointer_attribute.CU_POINTER_ATTRIBUTE_MEMORY_TYPE, at(address))
                != CUresult.CUDA_SUCCESS
                || JCudaDriver.cuPointerGetAttribute(Pointer.to(start), CUpointer_attribute.CU_POINTER_ATTRIBUTE_RANGE_START_ADDR,
                        at(address)) != CUresult.CUDA_SUCCESS
                || JCudaDriver.cuPointerGetAttribute(Pointer.to(size), CUpointer_attribute.CU_POINTER_ATTRIBUTE_RANGE_SIZE,
                        at(address)) != CUresult.CUDA_SUCCESS) {
            throw io.rlkernels.internal.Check.fail(arg, expected, "address 0x" + Long.toHexString(address)
                    + ", which the driver knows no allocation of (cuPointerGetAttribute)");
        }
        if (type[0] != CUmemorytype.CU_MEMORYTYPE_DEVICE && type[0] != CUmemorytype.CU_MEMORYTYPE_UNIFIED) {
            throw io.rlkernels.internal.Check.fail(arg, expected, "address 0x" + Long.toHexString(address) + " of memory type "
                    + CUmemorytype.stringFor(type[0]));
        }
        if (bytes > start[0] + size[0] - address) {
            throw io.rlkernels.internal.Check.fail(arg, expected, "address 0x" + Long.toHexString(address) + " with "
                    + (start[0] + size[0] - address) + " bytes left in its allocation of " + size[0] + " bytes");
        }
    }

    @Override
    public synchronized void copyToDevice(long dst, MemorySegment src, long bytes) {
        makeCurrent();
        if (!src.isNative()) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment staging = arena.allocate(Math.min(bytes, HEAP_STAGING), 64);
                for (long off = 0; off < bytes; off += staging.byteSize()) {
                    long n = Math.min(staging.byteSize(), bytes - off);
                    MemorySegment.copy(src, off, staging, 0, n);
                    copyNativeToDevice(dst + off, staging, n);
                }
            }
            return;
        }
        copyNativeToDevice(dst, src, bytes);
    }

    private void copyNativeToDevice(long dst, MemorySegment src, long bytes) {
        for (long off = 0; off < bytes; off += COPY_CHUNK) {
            long n = Math.min(COPY_CHUNK, bytes - off);
            check(JCudaDriver.cuMemcpyHtoDAsync(at(dst + off), Pointer.to(src.asSlice(off, n).asByteBuffer()), n, stream),
                    "cuMemcpyHtoDAsync");
        }
    }

    @Override
    public synchronized void copyToHost(MemorySegment dst, long src, long bytes) {
        makeCurrent();
        check(JCudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
        if (!dst.isNative()) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment staging = arena.allocate(Math.min(bytes, HEAP_STAGING), 64);
                for (long off = 0; off < bytes; off += staging.byteSize()) {
                    long n = Math.min(staging.byteSize(), bytes - off);
                    copyDeviceToNative(staging, src + off, n);
                    MemorySegment.copy(staging, 0, dst, off, n);
                }
            }
            return;
        }
        copyDeviceToNative(dst, src, bytes);
    }

    private void copyDeviceToNative(MemorySegment dst, long src, long bytes) {
        for (long off = 0; off < bytes; off += COPY_CHUNK) {
            long n = Math.min(COPY_CHUNK, bytes - off);
            check(JCudaDriver.cuMemcpyDtoH(Pointer.to(dst.asSlice(off, n).asByteBuffer()), at(src + off), n), "cuMemcpyDtoH");
        }
    }

    @Override
    public synchronized void launch(String kernel, LaunchShape shape, KernelArgs args) {
        makeCurrent();
        CUfunction fn = functions.computeIfAbsent(kernel, name -> {
            CUfunction f = new CUfunction();
            check(JCudaDriver.cuModuleGetFunction(f, module, name), "cuModuleGetFunction(" + name + ")");
            return f;
        });
        List<KernelArgs.Arg> list = args.list();
        NativePointerObject[] params = new NativePointerObject[list.size()];
        for (int i = 0; i < params.length; i++) {
            params[i] = switch (list.get(i)) {
                case KernelArgs.Ptr p -> Pointer.to(new long[] {p.address()});
                case KernelArgs.I32 v -> Pointer.to(new int[] {v.value()});
                case KernelArgs.I64 v -> Pointer.to(new long[] {v.value()});
                case KernelArgs.F32 v -> Pointer.to(new float[] {v.value()});
                case KernelArgs.F64 v -> Pointer.to(new double[] {v.value()});
            };
        }
        check(JCudaDriver.cuLaunchKernel(fn, shape.gridX(), 1, 1, shape.blockX(), 1, 1, shape.sharedBytes(), stream,
                Pointer.to(params), null), "cuLaunchKernel(" + kernel + ")");
    }

    @Override
    public String blas() {
        return cublas == null ? null : cublas.library();
    }

    @Override
    public synchronized void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, long a,
                                  io.rlkernels.tensor.DType aType, long b, io.rlkernels.tensor.DType bType, float beta, long c) {
        if (cublas == null) {
            throw new UnsupportedOperationException("no cuBLAS on " + description);
        }
        makeCurrent();
        if (cublasHandle == 0) {
            cublasHandle = cublas.create(stream.address());
        }
        cublas.gemm(cublasHandle, transA, transB, m, n, k, alpha, a, aType, b, bType, beta, c);
    }

    @Override
    public synchronized void synchronize() {
        makeCurrent();
        check(JCudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        makeCurrent();
        JCudaDriver.cuStreamSynchronize(stream);
        if (cublasHandle != 0) {
            cublas.destroy(cublasHandle); // before its stream and context go
            cublasHandle = 0;
        }
        JCudaDriver.cuStreamDestroy(stream);
        JCudaDriver.cuModuleUnload(module);
        JCudaDriver.cuDevicePrimaryCtxRelease(device);
    }
}
