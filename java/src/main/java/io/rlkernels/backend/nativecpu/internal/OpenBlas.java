package io.rlkernels.backend.nativecpu.internal;

import io.rlkernels.internal.BundledFiles;
import io.rlkernels.internal.Downcalls;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.Optional;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * The CPU BLAS: OpenBLAS (DYNAMIC_ARCH: it picks its kernels for the CPU at load) from the
 * {@code org.bytedeco:openblas} natives jar on the class path, bound through FFM — only
 * {@code cblas_sgemm} and the thread count. Its libraries (libopenblas.so.0 and the gfortran
 * runtime it links) are extracted beside each other and loaded in dependency order, so the
 * dynamic loader finds each dependency already loaded by its soname; libgcc_s is the system's
 * where there is one (loading the jar's by path would put a second copy in the process). Absent jar or failed load:
 * {@link #get()} is empty and {@link #unavailableReason()} says why.
 */
public final class OpenBlas {
    private static final String DIR = "/org/bytedeco/openblas/linux-x86_64/";
    /** In dependency order: each is loaded before the libraries that need it. */
    private static final String[] LIBRARIES = {"libgcc_s.so.1", "libquadmath.so.0", "libgfortran.so.5", "libopenblas.so.0"};
    /** CBLAS enum values (cblas.h). */
    private static final int ROW_MAJOR = 101;
    private static final int NO_TRANS = 111;
    private static final int TRANS = 112;

    /** Taken from the system when it has it (it always does where gcc's runtime is installed); the jar's copy otherwise. */
    private static final String SYSTEM_FIRST = "libgcc_s.so.1";

    private static final Object LOADED = load();

    private static boolean onTheSystem(String soname) {
        try {
            SymbolLookup.libraryLookup(soname, Arena.global());
            return true;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    private final MethodHandle sgemm;
    private final MethodHandle setThreads;
    private final MethodHandle getThreads;
    private final String core;
    private final String config;

    private OpenBlas(SymbolLookup lib) {
        Linker linker = Linker.nativeLinker();
        sgemm = linker.downcallHandle(find(lib, "cblas_sgemm"), FunctionDescriptor.ofVoid(JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT));
        setThreads = linker.downcallHandle(find(lib, "openblas_set_num_threads"), FunctionDescriptor.ofVoid(JAVA_INT));
        getThreads = linker.downcallHandle(find(lib, "openblas_get_num_threads"), FunctionDescriptor.of(JAVA_INT));
        MethodHandle coreName = linker.downcallHandle(find(lib, "openblas_get_corename"), FunctionDescriptor.of(ADDRESS));
        MethodHandle configName = linker.downcallHandle(find(lib, "openblas_get_config"), FunctionDescriptor.of(ADDRESS));
        try {
            core = ((MemorySegment) coreName.invokeExact()).reinterpret(256).getString(0);
            config = ((MemorySegment) configName.invokeExact()).reinterpret(1024).getString(0);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    private static MemorySegment find(SymbolLookup lib, String name) {
        return lib.find(name).orElseThrow(() -> new IllegalStateException("libopenblas.so.0 has no symbol " + name));
    }

    private static Object load() {
        if (BundledFiles.class.getResource(DIR + LIBRARIES[LIBRARIES.length - 1]) == null) {
            return "org.bytedeco:openblas (linux-x86_64) is not on the class path";
        }
        try {
            SymbolLookup last = null;
            for (String name : LIBRARIES) {
                if (name.equals(SYSTEM_FIRST) && onTheSystem(name)) {
                    continue; // the process's own gcc runtime: a second copy would bring a second unwinder
                }
                Optional<Path> file = BundledFiles.file(DIR + name);
                if (file.isPresent()) {
                    last = SymbolLookup.libraryLookup(file.get(), Arena.global());
                }
            }
            return new OpenBlas(last);
        } catch (RuntimeException | LinkageError e) {
            return "cannot load OpenBLAS from org.bytedeco:openblas: " + e.getMessage();
        }
    }

    /** OpenBLAS, or empty when it cannot be loaded. */
    public static Optional<OpenBlas> get() {
        return LOADED instanceof OpenBlas b ? Optional.of(b) : Optional.empty();
    }

    /** Why {@link #get()} is empty (null when it is not). */
    public static String unavailableReason() {
        return LOADED instanceof String s ? s : null;
    }

    /** The kernel family it chose for this CPU ("Haswell", "SkylakeX", "Zen"). */
    public String core() {
        return core;
    }

    /** Its build line ("OpenBLAS 0.3.31 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"). */
    public String config() {
        return config;
    }

    public int threads() {
        try {
            return (int) getThreads.invokeExact();
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    public void setThreads(int n) {
        try {
            setThreads.invokeExact(n);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /**
     * Row-major C[m, n] = alpha op(A) op(B) + beta C with leading dimensions (elements between
     * rows as stored). The caller has checked every extent against its segment; sizes fit in int.
     */
    public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, MemorySegment a, int lda,
                      MemorySegment b, int ldb, float beta, MemorySegment c, int ldc) {
        try {
            sgemm.invokeExact(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, m, n, k, alpha, a, lda, b, ldb,
                    beta, c, ldc);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }
}
