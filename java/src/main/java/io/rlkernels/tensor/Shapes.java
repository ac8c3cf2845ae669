package io.rlkernels.tensor;

import java.util.Arrays;

/** Shape arithmetic with overflow checks. */
public final class Shapes {
    private Shapes() {}

    public static long numel(long... shape) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public static long[] checked(long... shape) {
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("shape: expected non-negative dimensions, found " + Arrays.toString(shape));
            }
        }
        numel(shape);
        return shape.clone();
    }
}
