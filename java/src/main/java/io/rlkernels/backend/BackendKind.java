package io.rlkernels.backend;

import java.util.Locale;

/** The backends, fastest last; {@code auto} picks cuda, else native, else reference. */
public enum BackendKind {
    /** Plain Java, f64 accumulation: the oracle for every test. */
    REFERENCE,
    /** The native/ C library through FFM: SIMD and OpenMP. */
    NATIVE,
    /** The cuda-kernels/ fatbin through the JCuda driver API. */
    CUDA;

    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses "reference", "native", "cuda" (any case). */
    public static BackendKind parse(String s) {
        for (BackendKind k : values()) {
            if (k.id().equalsIgnoreCase(s.trim())) {
                return k;
            }
        }
        throw new IllegalArgumentException("backend: expected auto, reference, native or cuda, found " + s);
    }
}
