package io.rlkernels.internal;

import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * Argument checks shared by every op. Each failure is an {@link IllegalArgumentException} whose
 * message names the argument, the expected and the found value (ARCHITECTURE §7).
 */
public final class Check {
    private Check() {}

    public static IllegalArgumentException fail(String arg, String expected, Object found) {
        return new IllegalArgumentException(arg + ": expected " + expected + ", found " + found);
    }

    /** A live tensor (not null, not closed). */
    public static Tensor alive(String arg, Tensor t) {
        if (t == null) {
            throw fail(arg, "a tensor", "null");
        }
        if (!t.isAlive()) {
            throw fail(arg, "a live tensor", "a closed tensor " + t.describe());
        }
        return t;
    }

    /**
     * A live tensor an op may write: host memory that is read-only (a mapped file) is refused, so
     * native code never writes memory it was not given.
     */
    public static Tensor output(String arg, Tensor t) {
        alive(arg, t);
        if (t instanceof HostTensor h && h.isReadOnly()) {
            throw fail(arg, "writable memory (an output)", "a read-only segment " + t.describe()
                    + " (a file mapped read-only? copy it into HostTensor.allocate first)");
        }
        return t;
    }

    /** A host tensor, for a backend that computes on the CPU ({@code backend} names it in the message). */
    public static HostTensor host(String arg, Tensor t, String backend) {
        if (t instanceof HostTensor h) {
            return h;
        }
        throw fail(arg, "a host tensor (the " + backend + " backend runs on the CPU)", t.describe());
    }

    public static void dtype(String arg, Tensor t, DType first, DType... rest) {
        Set<DType> allowed = EnumSet.of(first, rest);
        if (!allowed.contains(t.dtype())) {
            String names = allowed.stream().map(DType::toString).collect(Collectors.joining(" or "));
            throw fail(arg, "dtype " + names, t.dtype());
        }
    }

    public static void floatingPoint(String arg, Tensor t) {
        dtype(arg, t, DType.F32, DType.BF16, DType.F16);
    }

    public static void shape(String arg, Tensor t, long... expected) {
        if (!Arrays.equals(t.shape(), expected)) {
            throw fail(arg, "shape " + Arrays.toString(expected), Arrays.toString(t.shape()));
        }
    }

    public static void rank(String arg, Tensor t, int rank) {
        if (t.rank() != rank) {
            throw fail(arg, "rank " + rank, "rank " + t.rank() + " " + Arrays.toString(t.shape()));
        }
    }

    /** Every element is finite (a NaN would spread): the first that is not is named with its index. */
    public static void finite(String arg, HostTensor t) {
        within(arg, t, Float.MAX_VALUE, null);
    }

    /**
     * Every element is finite and at most {@code limit} in magnitude ({@code why} says what the
     * bound keeps within float32; null when the bound is only finiteness).
     */
    public static void within(String arg, HostTensor t, float limit, String why) {
        long bad = firstOutside(t, limit);
        if (bad >= 0) {
            throw outside(arg, bad, t.getFloat(bad), limit, why);
        }
    }

    /** The refusal of element {@code index} of an input found outside ±limit (see {@link #within}). */
    public static IllegalArgumentException outside(String arg, long index, float value, float limit, String why) {
        if (!Float.isFinite(value) || why == null) {
            return fail(arg + "[" + index + "]", "a finite number", value);
        }
        return fail(arg + "[" + index + "]", "a magnitude of at most " + limit + " (" + why + ")", value);
    }

    /**
     * The refusal of finite inputs whose exact result float32 cannot hold: names the inputs, the
     * output element that overflowed, and why.
     */
    public static IllegalArgumentException overflowed(String inputs, String output, long index, float value, String why) {
        return fail(inputs, "values that keep " + output + " within float32 (" + why + ")",
                output + "[" + index + "] = " + value + ", beyond float32's range");
    }

    /** Makes the refusal of element {@code index} of an output found to hold {@code value}. */
    @FunctionalInterface
    public interface Refusal {
        IllegalArgumentException at(long index, float value);
    }

    /** The first element of an f32 host tensor that is NaN or beyond ±limit, or -1. */
    public static long firstOutside(HostTensor t, float limit) {
        for (long i = 0, n = t.numel(); i < n; i++) {
            if (!(Math.abs(t.getFloat(i)) <= limit)) {
                return i;
            }
        }
        return -1;
    }

    /** PPO-style clipping: eps_low in (0, 1), eps_high &gt;= 0, and a dual clip of 0 (off) or above 1. */
    public static void clipping(float clipLow, float clipHigh, float dualClip) {
        if (!(clipLow > 0 && clipLow < 1)) {
            throw fail("clipLow", "a number in (0, 1)", clipLow);
        }
        if (!(clipHigh >= 0) || !Float.isFinite(clipHigh)) {
            throw fail("clipHigh", "a finite number >= 0", clipHigh);
        }
        if (!(dualClip == 0 || dualClip > 1) || !Float.isFinite(dualClip)) {
            throw fail("dualClip", "0 (off) or a number > 1", dualClip);
        }
    }

    public static void finitePositive(String arg, double x) {
        if (!(x > 0) || !Double.isFinite(x)) {
            throw fail(arg, "a finite positive number", x);
        }
    }

    /** Distinct output tensors (two outputs sharing a tensor would race). */
    public static void distinct(String argA, Tensor a, String argB, Tensor b) {
        if (a != null && a == b) {
            throw fail(argB, "a tensor distinct from " + argA, "the same tensor");
        }
        if (a instanceof HostTensor ha && b instanceof HostTensor hb && ha.isAlive() && hb.isAlive()
                && ha.segment().asOverlappingSlice(hb.segment()).isPresent()) {
            throw fail(argB, "memory that does not overlap " + argA, "overlapping memory");
        }
    }

    /** Every element of a mask is 0 or 1 (f32: +-0 or 1.0; u8: 0 or 1); the first other one is refused as {@code arg[i]}. */
    public static void binaryMask(String arg, HostTensor mask) {
        java.lang.foreign.MemorySegment s = mask.segment();
        long n = mask.numel();
        if (mask.dtype() == DType.F32) {
            for (long i = 0; i < n; i++) {
                int bits = s.getAtIndex(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, i);
                if ((bits & 0x7FFFFFFF) != 0 && bits != 0x3F800000) {
                    throw fail(arg + "[" + i + "]", "0 or 1 (a mask keeps or drops a token; weights are not masks)",
                            Float.intBitsToFloat(bits));
                }
            }
        } else if (mask.dtype() == DType.U8) {
            for (long i = 0; i < n; i++) {
                byte b = s.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i);
                if (b != 0 && b != 1) {
                    throw fail(arg + "[" + i + "]", "0 or 1 (a mask keeps or drops a token; weights are not masks)", b & 0xFF);
                }
            }
        }
    }
}
