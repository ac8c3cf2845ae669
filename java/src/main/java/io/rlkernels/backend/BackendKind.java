package io.rlkernels.backend;

import java.util.Locale;

/** The backends; {@code auto} picks cuda, else native, else reference ({@code emulated} is for tests, never picked). */
public enum BackendKind {
    /** Plain Java, f64 accumulation: the oracle for every test. */
    REFERENCE,
    /** The native/ C library through FFM: SIMD and OpenMP. */
    NATIVE,
    /** The cuda-kernels/ fatbin through the JCuda driver API. */
    CUDA,
    /** The same cuda-kernels/ sources compiled for the CPU with cuda-kernels/emu: CI's CUDA, for correctness only. */
    EMULATED;

    /** The name the command line and {@link Backends#open(String)} use: "reference", "native", "cuda", "emulated". */
    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses "reference", "native", "cuda", "emulated" (any case). */
    public static BackendKind parse(String s) {
        for (BackendKind k : values()) {
            if (k.id().equalsIgnoreCase(s.trim())) {
                return k;
            }
        }
        throw new IllegalArgumentException("backend: expected auto, reference, native, cuda or emulated, found " + s);
    }
}
