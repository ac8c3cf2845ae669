package io.rlkernels.testing;

import static org.junit.jupiter.api.Assertions.fail;

import io.rlkernels.tensor.HostTensor;
import java.util.Arrays;

/** Element-wise comparison that reports like llm.c's checks: the first mismatches, with their index. */
public final class Compare {
    private Compare() {}

    /**
     * Fails unless every element is within {@code tol}, and none of {@code actual} still holds the
     * poison ({@link TestData#POISON}: unwritten), even where a NaN is expected. The message names {@code context}
     * (backend, dtype, seed...), the shape, the number of mismatches and up to ten of them.
     */
    public static void assertClose(String context, HostTensor expected, HostTensor actual, Tolerance tol) {
        if (!Arrays.equals(expected.shape(), actual.shape())) {
            fail(context + ": shape " + Arrays.toString(actual.shape()) + ", expected " + Arrays.toString(expected.shape()));
        }
        long bad = 0;
        StringBuilder report = new StringBuilder();
        for (long i = 0, n = expected.numel(); i < n; i++) {
            double e = expected.getFloat(i);
            double a = actual.getFloat(i);
            boolean unwritten = TestData.isPoison(actual, i);
            if (unwritten || !tol.accepts(e, a)) {
                if (bad < 10) {
                    report.append(unwritten ? String.format("%n  [%s] expected %.9g, never written (still the poison)",
                            index(expected.shape(), i), e)
                            : String.format("%n  [%s] expected %.9g, actual %.9g (|diff| %.3g)", index(expected.shape(), i),
                            e, a, Math.abs(a - e)));
                }
                bad++;
            }
        }
        if (bad > 0) {
            fail(String.format("%s: %d of %d elements of %s outside atol %.1g + rtol %.1g%s", context, bad, expected.numel(),
                    expected.describe(), tol.atol(), tol.rtol(), report));
        }
    }

    private static String index(long[] shape, long flat) {
        long[] idx = new long[shape.length];
        for (int d = shape.length - 1; d >= 0; d--) {
            idx[d] = shape[d] == 0 ? 0 : flat % shape[d];
            flat = shape[d] == 0 ? 0 : flat / shape[d];
        }
        return Arrays.toString(idx).replace("[", "").replace("]", "");
    }
}
