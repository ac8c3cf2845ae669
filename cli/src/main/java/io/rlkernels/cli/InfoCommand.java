package io.rlkernels.cli;

import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.Backends;
import io.rlkernels.backend.cuda.CudaBackend;
import io.rlkernels.backend.cuda.internal.CudaProbe;
import io.rlkernels.backend.nativecpu.NativeBackend;
import picocli.CommandLine.Command;

/** {@code rlkernels info}: Java, OS, and every backend: what it runs on, or why it cannot run. */
@Command(name = "info", mixinStandardHelpOptions = true, description = "Shows Java, the OS and the backends found.")
final class InfoCommand implements Runnable {
    @Override
    public void run() {
        System.out.printf("rlkernels %s%n", io.rlkernels.internal.BuildInfo.version());
        System.out.printf("java      %s (%s), %s%n", System.getProperty("java.version"), System.getProperty("java.vendor"),
                System.getProperty("java.home"));
        System.out.printf("os        %s %s (%s), %d cores%n", System.getProperty("os.name"), System.getProperty("os.version"),
                System.getProperty("os.arch"), Runtime.getRuntime().availableProcessors());
        for (Backends.Availability a : Backends.all()) {
            System.out.printf("%-9s %s%n", a.kind().id(), a.available() ? details(a.kind()) : "unavailable: " + a.reason());
        }
        System.out.printf("%-9s %s%n", "kernels", CudaProbe.fatbin()
                .map(f -> "rlkernels.fatbin in the jar, " + f.length / 1024 + " KiB (SASS sm_80, sm_90; PTX compute_90)")
                .orElse("not built: " + CudaProbe.fatbinMissingReason()));
    }

    private static String details(BackendKind kind) {
        return switch (kind) {
            case REFERENCE -> "plain Java, f64 accumulation (the test oracle)";
            case NATIVE -> {
                try (NativeBackend b = NativeBackend.open()) {
                    yield b.description() + " (CPU supports " + String.join(", ", NativeBackend.supportedIsas()) + "); products: "
                            + b.blas();
                }
            }
            case CUDA -> {
                try (CudaBackend b = CudaBackend.open()) {
                    int devices = CudaProbe.result().devices();
                    yield b.description() + ", kernels loaded (" + devices + (devices == 1 ? " device" : " devices") + " visible); products: "
                            + b.blas();
                } catch (RuntimeException e) {
                    yield "driver found, but opening the device failed: " + e.getMessage();
                }
            }
            case EMULATED -> {
                try (var b = Backends.open(BackendKind.EMULATED)) {
                    yield b.description() + " (for tests: the CUDA sources on the CPU)";
                }
            }
        };
    }
}
