package io.rlkernels.trainer;

import java.util.SplittableRandom;

/** Drawing a digit from a row of logits (temperature 1), for generation. */
final class Sampling {
    private Sampling() {}

    /** A digit drawn from softmax(logits[row * 10 .. row * 10 + 9]). */
    static int sample(float[] logits, int row, SplittableRandom rng) {
        int o = row * TinyPolicy.DIGITS;
        double max = Double.NEGATIVE_INFINITY;
        for (int d = 0; d < TinyPolicy.DIGITS; d++) {
            max = Math.max(max, logits[o + d]);
        }
        double[] p = new double[TinyPolicy.DIGITS];
        double sum = 0;
        for (int d = 0; d < TinyPolicy.DIGITS; d++) {
            p[d] = Math.exp(logits[o + d] - max);
            sum += p[d];
        }
        double u = rng.nextDouble() * sum;
        for (int d = 0; d < TinyPolicy.DIGITS; d++) {
            u -= p[d];
            if (u <= 0) {
                return d;
            }
        }
        return TinyPolicy.DIGITS - 1;
    }

    static int[][] copy(int[][] a) {
        int[][] c = new int[a.length][];
        for (int i = 0; i < a.length; i++) {
            c[i] = a[i].clone();
        }
        return c;
    }
}
