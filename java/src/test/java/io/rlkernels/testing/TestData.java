package io.rlkernels.testing;

import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.util.SplittableRandom;

/**
 * Fresh random inputs for every test (never zeros). The seed is drawn per test and belongs in
 * every failure message; {@code -Drlk.test.seed=S} replays one.
 */
public final class TestData {
    private TestData() {}

    public static long newSeed() {
        String fixed = System.getProperty("rlk.test.seed");
        return fixed != null ? Long.parseLong(fixed) : new SplittableRandom().nextLong();
    }

    /** Normal logits with standard deviation {@code scale}, rounded to {@code dtype}. */
    public static HostTensor logits(SplittableRandom rng, DType dtype, long n, long v, double scale) {
        HostTensor t = HostTensor.allocate(dtype, n, v);
        for (long i = 0; i < n * v; i++) {
            t.setFloat(i, (float) (rng.nextGaussian() * scale));
        }
        return t;
    }

    /** Target ids in [0, v), with about {@code ignoredFraction} of rows set to {@code ignoreIndex}. */
    public static HostTensor targets(SplittableRandom rng, DType dtype, long n, long v, double ignoredFraction, long ignoreIndex) {
        HostTensor t = HostTensor.allocate(dtype, n);
        for (long i = 0; i < n; i++) {
            t.setLong(i, rng.nextDouble() < ignoredFraction ? ignoreIndex : rng.nextLong(v));
        }
        return t;
    }

    /** An f32 vector of normal values. */
    public static HostTensor normal(SplittableRandom rng, long n, double scale) {
        HostTensor t = HostTensor.allocate(DType.F32, n);
        for (long i = 0; i < n; i++) {
            t.setFloat(i, (float) (rng.nextGaussian() * scale));
        }
        return t;
    }

    /** A new host tensor filled with NaN, so that elements a kernel forgets to write fail the comparison. */
    public static HostTensor poisoned(DType dtype, long... shape) {
        return HostTensor.allocate(dtype, shape).fill(Float.NaN);
    }

    public static HostTensor copy(HostTensor src) {
        HostTensor t = HostTensor.allocate(src.dtype(), src.shape());
        src.copyTo(t);
        return t;
    }
}
