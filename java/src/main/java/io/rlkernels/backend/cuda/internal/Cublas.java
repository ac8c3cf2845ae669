package io.rlkernels.backend.cuda.internal;

import io.rlkernels.backend.cuda.CudaException;
import io.rlkernels.internal.BundledFiles;
import io.rlkernels.internal.Downcalls;
import io.rlkernels.tensor.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * cuBLAS through FFM: the six calls the cuda backend makes (cublasCreate_v2, cublasDestroy_v2,
 * cublasSetStream_v2, cublasSetMathMode, cublasGetVersion_v2, cublasGemmEx), bound to
 * {@code libcublas.so.13}, else {@code libcublas.so.12} — their C interface is the same, so one
 * binding serves CUDA 12 and 13 machines (JCublas would add a jar and still miss .13). On the
 * emulated driver, the stand-in the build makes beside it (cuda-kernels/emu/cublas.cpp). Absent
 * library: {@link #get()} is empty and the backend multiplies with its own kernel.
 */
public final class Cublas {
    /** The stand-in for the emulated driver, in the jar beside it. */
    public static final String EMULATED = "/io/rlkernels/emu/libcublas.so.13";
    private static final int CUDA_R_32F = 0;
    private static final int CUDA_R_16F = 2;
    private static final int CUDA_R_16BF = 14;
    private static final int COMPUTE_32F = 68;
    private static final int GEMM_DEFAULT = -1;
    /** CUBLAS_DEFAULT_MATH: with COMPUTE_32F, f32 products stay f32 (no TF32). */
    private static final int DEFAULT_MATH = 0;

    private static final Object LOADED = load();

    private final String library;
    private final MethodHandle create;
    private final MethodHandle destroy;
    private final MethodHandle setStream;
    private final MethodHandle setMathMode;
    private final MethodHandle getVersion;
    private final MethodHandle gemmEx;

    private Cublas(SymbolLookup lib, String library) {
        this.library = library;
        Linker linker = Linker.nativeLinker();
        create = linker.downcallHandle(find(lib, "cublasCreate_v2"), FunctionDescriptor.of(JAVA_INT, ADDRESS));
        destroy = linker.downcallHandle(find(lib, "cublasDestroy_v2"), FunctionDescriptor.of(JAVA_INT, ADDRESS));
        setStream = linker.downcallHandle(find(lib, "cublasSetStream_v2"), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        setMathMode = linker.downcallHandle(find(lib, "cublasSetMathMode"), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        getVersion = linker.downcallHandle(find(lib, "cublasGetVersion_v2"), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        gemmEx = linker.downcallHandle(find(lib, "cublasGemmEx"), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    }

    private static MemorySegment find(SymbolLookup lib, String name) {
        return lib.find(name).orElseThrow(() -> new IllegalStateException("libcublas has no symbol " + name));
    }

    private static Object load() {
        try {
            if (CudaProbe.emulatedDriver()) {
                Optional<java.nio.file.Path> file = BundledFiles.file(EMULATED);
                if (file.isEmpty()) {
                    return "the emulated driver's libcublas.so.13 is not in the jar";
                }
                return new Cublas(SymbolLookup.libraryLookup(file.get(), Arena.global()), "emulated libcublas.so.13");
            }
            String failures = "";
            for (String name : new String[] {"libcublas.so.13", "libcublas.so.12"}) {
                try {
                    return new Cublas(SymbolLookup.libraryLookup(name, Arena.global()), name);
                } catch (IllegalArgumentException e) {
                    failures += (failures.isEmpty() ? "" : "; ") + name + " not found";
                }
            }
            return failures;
        } catch (RuntimeException | LinkageError e) {
            return "cannot load cuBLAS: " + e.getMessage();
        }
    }

    /** cuBLAS, or empty where it cannot be loaded ({@link #unavailableReason()}). */
    public static Optional<Cublas> get() {
        return LOADED instanceof Cublas c ? Optional.of(c) : Optional.empty();
    }

    public static String unavailableReason() {
        return LOADED instanceof String s ? s : null;
    }

    /** Which library was loaded ("libcublas.so.13"). */
    public String library() {
        return library;
    }

    private static void check(int status, String call) {
        if (status != 0) {
            throw new CudaException(call, status, statusName(status));
        }
    }

    /** cublasStatus_t names (cublas_api.h). */
    static String statusName(int status) {
        return switch (status) {
            case 1 -> "CUBLAS_STATUS_NOT_INITIALIZED";
            case 3 -> "CUBLAS_STATUS_ALLOC_FAILED";
            case 7 -> "CUBLAS_STATUS_INVALID_VALUE";
            case 8 -> "CUBLAS_STATUS_ARCH_MISMATCH";
            case 11 -> "CUBLAS_STATUS_MAPPING_ERROR";
            case 13 -> "CUBLAS_STATUS_EXECUTION_FAILED";
            case 14 -> "CUBLAS_STATUS_INTERNAL_ERROR";
            case 15 -> "CUBLAS_STATUS_NOT_SUPPORTED";
            case 16 -> "CUBLAS_STATUS_LICENSE_ERROR";
            default -> "cublasStatus " + status;
        };
    }

    /** A handle on the current context, its work on {@code stream}, f32 math kept f32. The caller destroys it. */
    public long create(long stream) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.ADDRESS);
            check((int) create.invokeExact(out), "cublasCreate_v2");
            MemorySegment handle = out.get(ValueLayout.ADDRESS, 0);
            try {
                check((int) setStream.invokeExact(handle, MemorySegment.ofAddress(stream)), "cublasSetStream_v2");
                check((int) setMathMode.invokeExact(handle, DEFAULT_MATH), "cublasSetMathMode");
            } catch (RuntimeException e) {
                int ignored = (int) destroy.invokeExact(handle);
                throw e;
            }
            return handle.address();
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    public void destroy(long handle) {
        try {
            check((int) destroy.invokeExact(MemorySegment.ofAddress(handle)), "cublasDestroy_v2");
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /** cublasGetVersion_v2: 130000 for 13.0.0. */
    public int version(long handle) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.JAVA_INT);
            check((int) getVersion.invokeExact(MemorySegment.ofAddress(handle), out), "cublasGetVersion_v2");
            return out.get(ValueLayout.JAVA_INT, 0);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /**
     * Row-major C[m, n] = alpha op(A) op(B) + beta C (tight: leading dimensions the stored row
     * lengths), C f32, A and B f32, bf16 or f16, f32 accumulation, on the handle's stream: cuBLAS
     * is column-major, so this asks it for C^T = op(B)^T op(A)^T, which is the same memory.
     */
    public void gemm(long handle, boolean transA, boolean transB, int m, int n, int k, float alpha, long a, DType aType, long b,
                     DType bType, float beta, long c) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment al = arena.allocateFrom(ValueLayout.JAVA_FLOAT, alpha);
            MemorySegment be = arena.allocateFrom(ValueLayout.JAVA_FLOAT, beta);
            int lda = Math.max(1, transA ? m : k); // A as stored is [m, k] or [k, m]
            int ldb = Math.max(1, transB ? k : n);
            check((int) gemmEx.invokeExact(MemorySegment.ofAddress(handle), transB ? 1 : 0, transA ? 1 : 0, n, m, k, al,
                    MemorySegment.ofAddress(b), type(bType), ldb, MemorySegment.ofAddress(a), type(aType), lda, be,
                    MemorySegment.ofAddress(c), CUDA_R_32F, Math.max(1, n), COMPUTE_32F, GEMM_DEFAULT), "cublasGemmEx");
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    private static int type(DType t) {
        return switch (t) {
            case F32 -> CUDA_R_32F;
            case BF16 -> CUDA_R_16BF;
            case F16 -> CUDA_R_16F;
            default -> throw new IllegalArgumentException("cuBLAS operand: expected f32, bf16 or f16, found " + t);
        };
    }
}
