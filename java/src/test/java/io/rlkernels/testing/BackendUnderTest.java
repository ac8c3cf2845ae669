package io.rlkernels.testing;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.Backends;
import io.rlkernels.backend.nativecpu.NativeBackend;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import java.util.stream.Stream;

/**
 * A backend as the parameterised tests see it: the reference, the native library on each
 * instruction-set variant this CPU runs, cuda (skipped, with its reason, where there is no GPU),
 * and the CUDA kernels in the emulator. {@code -Drlk.test.backends=cuda} (a comma-separated list of labels or kinds) narrows the
 * set, as bench/gpu does.
 */
public record BackendUnderTest(String label, BackendKind kind, Supplier<String> unavailable, Supplier<Backend> opener) {

    /** Opens the backend, or skips the test (JUnit assumption) when it cannot run here. */
    public Backend open() {
        String reason = unavailable.get();
        assumeTrue(reason == null, () -> label + " skipped: " + reason);
        return opener.get();
    }

    @Override
    public String toString() {
        return label;
    }

    /** Every backend, the reference included. */
    public static Stream<BackendUnderTest> all() {
        List<BackendUnderTest> out = new ArrayList<>();
        out.add(new BackendUnderTest("reference", BackendKind.REFERENCE, () -> null, () -> Backends.open(BackendKind.REFERENCE)));
        String[] isaNames = {"x86-64", "avx2", "avx512"};
        for (int isa = 0; isa < isaNames.length; isa++) {
            final int variant = isa;
            out.add(new BackendUnderTest("native-" + isaNames[isa], BackendKind.NATIVE,
                    () -> !NativeBackend.isAvailable() ? NativeBackend.unavailableReason()
                            : NativeBackend.supportsIsa(variant) ? null : "this CPU lacks " + isaNames[variant],
                    () -> NativeBackend.open(variant)));
        }
        out.add(new BackendUnderTest("cuda", BackendKind.CUDA, () -> Backends.availability(BackendKind.CUDA).reason(),
                () -> Backends.open(BackendKind.CUDA)));
        out.add(new BackendUnderTest("emulated", BackendKind.EMULATED,
                () -> Backends.availability(BackendKind.EMULATED).reason(), () -> Backends.open(BackendKind.EMULATED)));
        String only = System.getProperty("rlk.test.backends", "").trim();
        if (!only.isEmpty()) {
            List<String> wanted = List.of(only.split(","));
            out.removeIf(b -> !wanted.contains(b.label) && !wanted.contains(b.kind.id()));
        }
        return out.stream();
    }

    /** The native backend on the variant it picks for this CPU (skipped when rlk.test.backends leaves native out). */
    public static BackendUnderTest nativeAuto() {
        return new BackendUnderTest("native", BackendKind.NATIVE,
                () -> !selected("native") ? "rlk.test.backends leaves native out" : NativeBackend.unavailableReason(),
                NativeBackend::open);
    }

    /** Whether rlk.test.backends (when set) names this label or kind. */
    public static boolean selected(String labelOrKind) {
        String only = System.getProperty("rlk.test.backends", "").trim();
        return only.isEmpty() || List.of(only.split(",")).contains(labelOrKind);
    }

    /** Every backend but the reference: what is tested against it. */
    public static Stream<BackendUnderTest> fast() {
        return all().filter(b -> b.kind != BackendKind.REFERENCE);
    }
}
