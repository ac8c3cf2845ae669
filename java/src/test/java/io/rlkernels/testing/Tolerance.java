package io.rlkernels.testing;

import io.rlkernels.tensor.DType;

/**
 * |actual - expected| <= atol + rtol * |expected| (or, {@code larger}, the larger of the two): the one
 * place tests take their tolerances from.
 * The figures are what f32 accumulation can promise against the f64 reference (DESIGN §8);
 * a 16-bit input is widened exactly, so it needs no looser forward tolerance — only a 16-bit
 * output (an in-place gradient) does, by its rounding.
 */
public record Tolerance(double atol, double rtol, boolean larger) {

    /** |actual - expected| <= atol + rtol |expected|. */
    public Tolerance(double atol, double rtol) {
        this(atol, rtol, false);
    }

    /** Outputs computed in f32 from inputs of any float type (logp, lse, entropy, f32 gradients). */
    public static final Tolerance F32_OUTPUT = new Tolerance(2e-6, 1e-5);

    /**
     * The log-probs contract against f64 (LogProbs): logp, lse and entropy within
     * max(1e-6 |x|, 1e-7) — float32's precision, near-certain tokens included.
     */
    public static final Tolerance LOGPROBS_FORWARD = new Tolerance(1e-7, 1e-6, true);

    /**
     * The log-probs gradient against f64: within max(1e-5 |dz|, 1e-7 of the row's largest |dz|), and
     * never finer than float32's smallest normal number (1.2e-38): below it a float32 gradient
     * can only underflow.
     */
    public static Tolerance logProbsGradient(double rowLargestAbs) {
        return new Tolerance(Math.max(1e-7 * rowLargestAbs, Float.MIN_NORMAL), 1e-5, true);
    }

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
        double bound = larger ? Math.max(atol, rtol * Math.abs(expected)) : atol + rtol * Math.abs(expected);
        return Math.abs(actual - expected) <= bound;
    }
}
