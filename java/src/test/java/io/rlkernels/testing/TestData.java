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

    /**
     * The poison outputs are filled with before a run: a quiet NaN with a payload no kernel makes
     * (its high bits survive narrowing to bf16 and f16), so an element left unwritten is told apart
     * from a NaN the op computes ({@link #isPoison}).
     */
    public static final float POISON = Float.intBitsToFloat(0x7FE55A5A);

    /** A new host tensor filled with the poison, so that elements a kernel forgets to write fail the comparison. */
    public static HostTensor poisoned(DType dtype, long... shape) {
        return HostTensor.allocate(dtype, shape).fill(POISON);
    }

    /** Whether element i of t holds the poison's exact bits (in t's dtype): an output never written. */
    public static boolean isPoison(HostTensor t, long i) {
        return rawBits(t, i) == POISON_BITS.computeIfAbsent(t.dtype(), d -> {
            try (HostTensor one = poisoned(d, 1)) {
                return rawBits(one, 0);
            }
        });
    }

    private static final java.util.Map<DType, Long> POISON_BITS = new java.util.concurrent.ConcurrentHashMap<>();

    private static long rawBits(HostTensor t, long i) {
        java.lang.foreign.MemorySegment s = t.segment();
        return switch (t.dtype().byteSize()) {
            case 2 -> s.getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i);
            case 4 -> s.getAtIndex(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, i);
            case 8 -> s.getAtIndex(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, i);
            default -> s.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i);
        };
    }

    public static HostTensor copy(HostTensor src) {
        HostTensor t = HostTensor.allocate(src.dtype(), src.shape());
        src.copyTo(t);
        return t;
    }
}
