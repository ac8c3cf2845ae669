package io.rlkernels.testing;

import io.rlkernels.tensor.DType;

/**
 * |actual - expected| <= atol + rtol * |expected|: the one place tests take their tolerances from.
 * The figures are what f32 accumulation can promise against the f64 reference (DESIGN §8);
 * a 16-bit input is widened exactly, so it needs no looser forward tolerance — only a 16-bit
 * output (an in-place gradient) does, by its rounding.
 */
public record Tolerance(double atol, double rtol) {

    /** Outputs computed in f32 from inputs of any float type (logp, lse, entropy, f32 gradients). */
    public static final Tolerance F32_OUTPUT = new Tolerance(2e-6, 1e-5);

    public static Tolerance forOutput(DType outputDtype) {
        return switch (outputDtype) {
            case F32 -> F32_OUTPUT;
            case BF16 -> new Tolerance(1e-6, 1.0 / 128); // one bf16 ulp: 8 significant bits
            case F16 -> new Tolerance(1e-6, 1.0 / 1024);
            default -> throw new IllegalArgumentException("no tolerance for " + outputDtype);
        };
    }

    public Tolerance scaled(double factor) {
        return new Tolerance(atol * factor, rtol * factor);
    }

    public boolean accepts(double expected, double actual) {
        if (Double.isNaN(expected) || Double.isNaN(actual)) {
            return Double.isNaN(expected) && Double.isNaN(actual);
        }
        if (Double.isInfinite(expected) || Double.isInfinite(actual)) {
            return expected == actual;
        }
        return Math.abs(actual - expected) <= atol + rtol * Math.abs(expected);
    }
}
