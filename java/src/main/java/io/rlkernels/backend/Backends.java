package io.rlkernels.backend;

import io.rlkernels.backend.cuda.CudaBackend;
import io.rlkernels.backend.emulated.EmulatedLauncher;
import io.rlkernels.backend.emulated.internal.EmulatorLibrary;
import io.rlkernels.backend.nativecpu.NativeBackend;
import io.rlkernels.backend.reference.ReferenceBackend;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Logger;

/**
 * Opens backends by kind, and picks the fastest one available ({@code auto}, ARCHITECTURE §3; the
 * emulated backend is for tests and never picked).
 */
public final class Backends {
    private static final Logger LOG = Logger.getLogger("io.rlkernels");

    private Backends() {}

    /** Whether a kind can run here, and if not, why and how to fix it. */
    public record Availability(BackendKind kind, boolean available, String reason) {}

    /** Whether {@code kind} can run on this machine, and why not (a missing driver, native access denied, an old CPU). */
    public static Availability availability(BackendKind kind) {
        return switch (kind) {
            case REFERENCE -> new Availability(kind, true, null);
            case NATIVE -> new Availability(kind, NativeBackend.isAvailable(), NativeBackend.unavailableReason());
            case CUDA -> new Availability(kind, CudaBackend.isAvailable(), CudaBackend.unavailableReason());
            case EMULATED -> {
                String reason = EmulatorLibrary.unavailableReason(EmulatorLibrary.KERNELS);
                yield new Availability(kind, reason == null, reason);
            }
        };
    }

    /** Every backend kind with whether it can run here and, if not, why: what {@code rlkernels info} prints. */
    public static List<Availability> all() {
        List<Availability> out = new ArrayList<>();
        for (BackendKind k : BackendKind.values()) {
            out.add(availability(k));
        }
        return out;
    }

    /** Opens a kind; throws {@link IllegalStateException} with the reason when it cannot run here. */
    public static Backend open(BackendKind kind) {
        return switch (kind) {
            case REFERENCE -> new ReferenceBackend();
            case NATIVE -> NativeBackend.open();
            case CUDA -> CudaBackend.open();
            case EMULATED -> new CudaBackend(new EmulatedLauncher(EmulatorLibrary.get(EmulatorLibrary.KERNELS).orElseThrow(
                    () -> new IllegalStateException("emulated backend unavailable: "
                            + EmulatorLibrary.unavailableReason(EmulatorLibrary.KERNELS)))), BackendKind.EMULATED);
        };
    }

    /** "auto", "reference", "native", "cuda" or "emulated". */
    public static Backend open(String name) {
        return "auto".equalsIgnoreCase(name.trim()) ? auto() : open(BackendKind.parse(name));
    }

    /**
     * cuda, else native, else reference; logs one line naming the choice and why faster ones were
     * skipped: INFO, or a WARNING when it falls back to the reference backend (plain Java, tens of
     * times slower), which names the native backend's reason and its fix (most often: run the JVM
     * with {@code --enable-native-access=ALL-UNNAMED}, or {@code =io.rlkernels} on the module path).
     */
    public static Backend auto() {
        StringBuilder skipped = new StringBuilder();
        for (BackendKind kind : List.of(BackendKind.CUDA, BackendKind.NATIVE)) {
            Availability a = availability(kind);
            if (a.available()) {
                Backend b = open(kind);
                LOG.info("rlkernels: using " + b.description() + skipped);
                return b;
            }
            skipped.append("; skipped ").append(kind.id()).append(": ").append(a.reason());
        }
        Backend b = open(BackendKind.REFERENCE);
        LOG.warning("rlkernels: falling back to the reference backend (plain Java, 40-60x slower than native)" + skipped
                + ". To get the native backend: run the JVM with --enable-native-access=ALL-UNNAMED (class path) or"
                + " --enable-native-access=io.rlkernels (module path) on x86-64 Linux; bin/rlkernels info says what is missing");
        return b;
    }
}
