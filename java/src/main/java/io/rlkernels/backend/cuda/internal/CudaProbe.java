package io.rlkernels.backend.cuda.internal;

import io.rlkernels.internal.BundledFiles;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
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

    private static Result probe() {
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
