package io.rlkernels.internal;

/** SplitMix64's output function (Steele, Lea and Flood 2014): a 64-bit value mixed into a well-spread seed. */
public final class SplitMix64 {
    private SplitMix64() {}

    /** The golden-ratio increment SplitMix64 adds per step. */
    public static final long GOLDEN_GAMMA = 0x9E3779B97F4A7C15L;

    public static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
