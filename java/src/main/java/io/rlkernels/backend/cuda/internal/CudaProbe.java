package io.rlkernels.backend.cuda.internal;

import io.rlkernels.internal.BundledFiles;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import jcuda.driver.JCudaDriver;

/**
 * Whether the CUDA backend can run here, decided once per process. A missing libcuda.so.1
 * surfaces in JCuda as UnsatisfiedLinkError on the first call and NoClassDefFoundError after, so
 * the driver library is probed first with FFM and the answer is cached.
 */
public final class CudaProbe {
    public static final String FATBIN = "/io/rlkernels/cuda/rlkernels.fatbin";
    /** The driver whose device is the CPU emulator (cuda-kernels/emu/driver.cpp), loaded only on request. */
    public static final String EMULATED_DRIVER = "/io/rlkernels/emu/libcuda.so.1";
    /** {@code RLKERNELS_CUDA_DRIVER=emulator}: the cuda backend runs, through JCuda, on that driver. */
    public static final String DRIVER_SWITCH = "RLKERNELS_CUDA_DRIVER";
    /** Each kernel's registers and static shared memory on sm_90, from ptxas (cuda-kernels/Makefile). */
    public static final String RESOURCES = "/io/rlkernels/cuda/rlkernels.resources";
    private static final String NOT_BUILT = "/io/rlkernels/cuda/NOT_BUILT.txt";

    /** The probe's answer: the fatbin when CUDA can run, else the reason it cannot. */
    public record Result(byte[] fatbin, int devices, String reason) {
        public boolean available() {
            return reason == null;
        }
    }

    private static final Result RESULT = probe();

    private CudaProbe() {}

    public static Result result() {
        return RESULT;
    }

    /** The fatbin in the jar, or why it is missing. */
    public static Optional<byte[]> fatbin() {
        return BundledFiles.read(FATBIN);
    }

    public static String fatbinMissingReason() {
        return BundledFiles.read(NOT_BUILT)
                .map(b -> new String(b, StandardCharsets.UTF_8).trim())
                .orElse("rlkernels.fatbin is not in the jar (the CUDA kernels were not built)");
    }

    /** Whether the emulated driver was asked for (and so stands in for libcuda.so.1 in this process). */
    public static boolean emulatedDriver() {
        return "emulator".equals(System.getenv(DRIVER_SWITCH));
    }

    /**
     * Loads the emulated driver for the life of the process and gives it the kernels' registers and
     * static shared memory (ptxas, at build time) for its launch checks; null, or why it failed.
     */
    private static String loadEmulatedDriver(java.nio.file.Path file) throws Throwable {
        SymbolLookup driver = SymbolLookup.libraryLookup(file, Arena.global());
        Optional<byte[]> resources = BundledFiles.read(RESOURCES);
        if (resources.isEmpty()) {
            return null; // no fatbin was built either: the probe says so next
        }
        MethodHandle set = Linker.nativeLinker().downcallHandle(driver.find("emu_driver_set_resources").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
        try (Arena call = Arena.ofConfined()) {
            int read = (int) set.invokeExact(call.allocateFrom(new String(resources.get(), StandardCharsets.UTF_8)));
            return read > 0 ? null : "the emulated driver read no kernel from " + RESOURCES;
        }
    }

    private static Result probe() {
        String driver = System.getenv(DRIVER_SWITCH);
        if (driver != null && !driver.isEmpty()) {
            if (!driver.equals("emulator")) {
                return new Result(null, 0, DRIVER_SWITCH + "=" + driver + ": expected \"emulator\" (or unset, for the real driver)");
            }
            // Loaded first, by path: its soname is libcuda.so.1, so the dynamic loader hands it to JCuda's
            // native library and to the lookup below. A real driver is never shadowed unless asked.
            Optional<java.nio.file.Path> file = BundledFiles.file(EMULATED_DRIVER);
            if (file.isEmpty()) {
                return new Result(null, 0, DRIVER_SWITCH + "=emulator, but the emulated driver is not in the jar"
                        + " (the build did not compile cuda-kernels/emu)");
            }
            try {
                String failed = loadEmulatedDriver(file.get());
                if (failed != null) {
                    return new Result(null, 0, failed);
                }
            } catch (IllegalCallerException e) {
                return new Result(null, 0, "native access is disabled: run java with --enable-native-access=ALL-UNNAMED");
            } catch (Throwable e) {
                return new Result(null, 0, "cannot load the emulated driver: " + e.getMessage());
            }
        }
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup.libraryLookup("libcuda.so.1", arena);
        } catch (IllegalArgumentException e) {
            return new Result(null, 0, "no NVIDIA driver: libcuda.so.1 not found");
        } catch (IllegalCallerException e) {
            return new Result(null, 0, "native access is disabled: run java with --enable-native-access=ALL-UNNAMED");
        }
        Optional<byte[]> fatbin = fatbin();
        if (fatbin.isEmpty()) {
            return new Result(null, 0, fatbinMissingReason());
        }
        try {
            JCudaDriver.setExceptionsEnabled(false);
            int rc = JCudaDriver.cuInit(0);
            if (rc != 0) {
                return new Result(null, 0, "cuInit failed with " + jcuda.driver.CUresult.stringFor(rc));
            }
            int[] count = {0};
            rc = JCudaDriver.cuDeviceGetCount(count);
            if (rc != 0 || count[0] == 0) {
                return new Result(null, 0, "no CUDA device visible (cuDeviceGetCount: " + jcuda.driver.CUresult.stringFor(rc)
                        + ", " + count[0] + " devices)");
            }
            return new Result(fatbin.get(), count[0], null);
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            return new Result(null, 0, "JCuda's native library failed to load: " + e.getMessage());
        }
    }
}
