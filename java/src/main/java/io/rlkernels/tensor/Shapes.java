package io.rlkernels.tensor;

import java.math.BigInteger;
import java.util.Arrays;

/**
 * The one size rule of every tensor, view and file: dimensions are non-negative, and the element
 * count and the byte count are computed with overflow checks. A shape whose byte count does not
 * fit in a {@code long} is refused with an {@link IllegalArgumentException} naming the argument,
 * the expected and the found value, never wrapped around.
 */
public final class Shapes {
    private Shapes() {}

    /**
     * The element count of a shape already checked (throws {@link ArithmeticException} on
     * overflow); a shape with a zero dimension has no elements, whatever the others are.
     */
    public static long numel(long... shape) {
        for (long d : shape) {
            if (d == 0) {
                return 0;
            }
        }
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** A copy of {@code shape}, checked for non-negative dimensions and an element count that fits. */
    public static long[] checked(long... shape) {
        return checked("shape", shape);
    }

    /** The same, naming {@code arg} in the message. */
    public static long[] checked(String arg, long... shape) {
        if (shape == null) {
            throw new IllegalArgumentException(arg + ": expected a shape, found null");
        }
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException(arg + ": expected non-negative dimensions, found " + Arrays.toString(shape));
            }
        }
        try {
            numel(shape);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(arg + ": expected at most 2^63 - 1 elements, found " + Arrays.toString(shape)
                    + " = " + exact(shape, 1) + " elements");
        }
        return shape.clone();
    }

    /**
     * A copy of {@code shape}, checked so that its bytes in {@code dtype} fit in a {@code long}:
     * what every tensor and file is built from.
     */
    public static long[] checked(String arg, DType dtype, long... shape) {
        long[] s = checked(arg, shape);
        byteSize(arg, dtype, s);
        return s;
    }

    /** The bytes of {@code shape} in {@code dtype}, overflow-checked. */
    public static long byteSize(String arg, DType dtype, long... shape) {
        long n = numel(checked(arg, shape));
        try {
            return Math.multiplyExact(n, (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(arg + ": expected at most 2^63 - 1 bytes, found " + dtype.shortName()
                    + Arrays.toString(shape) + " = " + exact(shape, dtype.byteSize()) + " bytes");
        }
    }

    private static BigInteger exact(long[] shape, long factor) {
        BigInteger n = BigInteger.valueOf(factor);
        for (long d : shape) {
            n = n.multiply(BigInteger.valueOf(d));
        }
        return n;
    }

    /**
     * The shape a reshape of {@code numel} elements to {@code shape} gives: the same element count,
     * one dimension may be -1 (inferred). Refused naming {@code arg}, in elements.
     */
    public static long[] reshaped(String arg, long numel, long[] from, long... shape) {
        if (shape == null) {
            throw new IllegalArgumentException(arg + ": expected a shape, found null");
        }
        long[] s = shape.clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < s.length; i++) {
            if (s[i] == -1 && infer < 0) {
                infer = i;
            } else if (s[i] < 0) {
                throw new IllegalArgumentException(arg + ": expected dimensions >= 0 (one may be -1), found " + Arrays.toString(shape));
            } else {
                known = Math.multiplyHigh(known, s[i]) != 0 || known * s[i] < 0 ? -1 : known * s[i];
                if (known < 0) {
                    throw new IllegalArgumentException(arg + ": expected " + numel + " elements (" + Arrays.toString(from) + "), found "
                            + Arrays.toString(shape) + ", more than 2^63");
                }
            }
        }
        if (infer >= 0) {
            if (known == 0 || numel % known != 0) {
                throw new IllegalArgumentException(arg + ": expected a shape of " + numel + " elements (" + Arrays.toString(from)
                        + "), found " + Arrays.toString(shape) + ": no -1 fits");
            }
            s[infer] = numel / known;
        } else if (known != numel) {
            throw new IllegalArgumentException(arg + ": expected " + numel + " elements (" + Arrays.toString(from) + "), found "
                    + Arrays.toString(shape) + " = " + known + " elements");
        }
        return s;
    }

    /**
     * The shape of rows [start, start + count) of a tensor of {@code shape} along its first axis,
     * refused naming "rows" unless the range lies within it (and the tensor has an axis).
     */
    public static long[] rows(String describe, long[] shape, long start, long count) {
        if (shape.length == 0) {
            throw new IllegalArgumentException("this: expected a tensor of rank 1 or more, found " + describe);
        }
        if (start < 0 || count < 0 || start > shape[0] - count) {
            throw new IllegalArgumentException("rows: expected [start, start + count) within [0, " + shape[0] + "), found start "
                    + start + ", count " + count);
        }
        long[] s = shape.clone();
        s[0] = count;
        return s;
    }
}
