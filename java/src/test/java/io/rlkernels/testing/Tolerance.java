package io.rlkernels.testing;

import io.rlkernels.tensor.DType;

/**
 * |actual - expected| <= atol + rtol * |expected| (or, {@code larger}, the larger of the two): the one
 * place tests take their tolerances from.
 * The figures are what f32 accumulation can promise against the f64 reference (ARCHITECTURE §8);
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
     * The log-probs gradient against f64: within max(rtol |dz|, 1e-7 of the row's largest |dz|), and
     * never finer than {@code underflow}, what the kernels' flush of tiny probabilities can move an
     * element by ({@link #logProbsUnderflow}). rtol is 1e-5, or, for a probability q below 2^-24
     * (q = p_v, or 1 - p_y at the target), float32's condition for q (see {@link #logProbsGradientRtol}).
     */
    public static Tolerance logProbsGradient(double rowLargestAbs, double q, double underflow) {
        return new Tolerance(Math.max(1e-7 * rowLargestAbs, underflow), logProbsGradientRtol(q), true);
    }

    /**
     * The largest error in one element of dz = -p_v (g + h (log p_v + H)) / T (plus g / T at the
     * target) that comes from the kernels taking every 2^a below 2^-127 as 0 (ARCHITECTURE §5.1:
     * float32 exponentials, no subnormals): each flushed p_v < 2^-126 is missing from its own
     * element, at most 2^-126 (|g| + |h| (|ln 2^-126| + H)) / T since p |ln p| grows with p there,
     * and from the entropy, which the row's V elements each take times p_v <= 1, at most
     * V 2^-126 (1 + |ln 2^-126|) |h| / T; also 1 - p_y at the target, which is such a sum. With
     * |ln 2^-126| = 87.3 and H <= ln V < 13: 2^-126 (|g| + 101 |h| (V + 1)) / T. It matters only in
     * rows whose whole gradient is this small (1e-38 to 1e-31), where the row's largest element
     * does not set the floor.
     */
    public static double logProbsUnderflow(double g, double h, long v, double t) {
        return Float.MIN_NORMAL * (Math.abs(g) + 101 * Math.abs(h) * (v + 1)) / t;
    }

    /**
     * The relative error of dz_v = g (1[v=y] - p_v) / T - h ...: 1e-5 where q = p_v (1 - p_y at
     * the target) is at least 2^-24, so for p_y up to 1 - 6e-8; below, where float32 cannot hold
     * p_y apart from 1, float32's condition for q: 2^-21 |log2 q| (1.1e-5 at q = 2^-24, 2.4e-5 at
     * 1e-30). A float32 kernel forms q from a float32 exponent a = log2 q (q = 2^a, and the
     * entropy's sum of q a), whose rounding, a few ulps of |a|, is a relative error of ln 2 |a|
     * 2^-24 each in q: one ulp more in a logit moves q as much. Measured: up to 4.5 ulps of |a| at
     * q = 1e-30 (native, the entropy term at the target); allowed: 8.
     */
    public static double logProbsGradientRtol(double q) {
        return q >= 0x1p-24 || !(q > 0) ? 1e-5 : 0x1p-21 * Math.abs(Math.log(q) / Math.log(2)); // q = 0: dz underflows
    }

    /** A float32 output that is a double rounded once (w = 1/x, a loss written as f32): half an ulp. */
    public static final Tolerance F32_ROUNDED = new Tolerance(0, 0x1p-24);

    /** A float32 output against a closed form typed in the test (a formula of f32 inputs, f64 in the test). */
    public static final Tolerance F32_CLOSED_FORM = new Tolerance(1e-9, 1e-6);

    /**
     * A statistic summed in f64 from float32 terms (a loss, sum d, sum psi) against the f64 reference:
     * f32 rounding of each term, relative to the larger of the sum and 1 (sums of terms of either sign).
     */
    public static final Tolerance STATISTIC = new Tolerance(1e-5, 1e-5);

    /** The same f64 statistic on one backend two ways: a whole batch against its micro-batches or ranks summed. */
    public static final Tolerance F64_REGROUPED = new Tolerance(1e-12, 1e-6);

    /** Statistics of the policy loss against the reference: f64 sums of f64 token terms (counts are exact). */
    public static final Tolerance F64_STATISTIC = new Tolerance(1e-9, 1e-9);

    /**
     * An f32 gradient against central differences (step 1e-6) of the f64 loss: the difference's
     * truncation and the kernel's f32 rounding. Policy loss.
     */
    public static final Tolerance FINITE_DIFFERENCE = new Tolerance(2e-5, 1e-4);

    /**
     * The same through BGPO's bound of the ELBO objective, at a step of 1e-3 on f32 logits (smaller
     * steps drown in the rounding of the logits themselves): O(h^2) truncation of exp(mean d).
     */
    public static final Tolerance BGPO_FINITE_DIFFERENCE = new Tolerance(1e-5, 1e-3);

    /** Group advantages in f32 against the f64 formula typed in the test: (r - mean) / (std + eps) and kin. */
    public static final Tolerance ADVANTAGE = new Tolerance(1e-5, 1e-5);

    /**
     * This tolerance with {@code extra} more relative error: an output scaled by a factor that
     * carries a relative error of its own (BGPO's gradient by exp(d), d as exact as its l).
     */
    public Tolerance plusRelative(double extra) {
        return new Tolerance(atol, rtol + extra, larger);
    }

    /** The largest |actual - expected| accepted for {@code expected} (finite). */
    public double bound(double expected) {
        return larger ? Math.max(atol, rtol * Math.abs(expected)) : atol + rtol * Math.abs(expected);
    }

    /**
     * An absolute bound a test propagates from a named tolerance through a formula (a sum of
     * differences is as exact as its terms, not as its result): {@code bound} and no relative part.
     */
    public static Tolerance propagated(double bound) {
        return new Tolerance(bound, 0);
    }

    /** Fails with {@code message}, the bound and the difference unless {@code actual} is accepted. */
    public void assertClose(double expected, double actual, String message) {
        if (!accepts(expected, actual)) {
            throw new AssertionError(String.format("%s: expected %.9g, actual %.9g (|diff| %.3g, atol %.1g, rtol %.1g)", message,
                    expected, actual, Math.abs(actual - expected), atol, rtol));
        }
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
