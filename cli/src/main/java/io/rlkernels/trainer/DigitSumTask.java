package io.rlkernels.trainer;

import java.util.SplittableRandom;

/**
 * A verifiable task: write {@code length} digits that sum to the prompt's target. The reward is
 * computed by a program: 1 for the exact sum, falling linearly to 0 at {@code tolerance} away.
 * An untrained policy writes digits at random (about 0.3 on average for three digits); a trained
 * one hits the target.
 */
public record DigitSumTask(int length, int minTarget, int maxTarget, double tolerance) {

    /** The autoregressive task of the GRPO family: three digits, targets 4..23. */
    public static DigitSumTask autoregressive() {
        return new DigitSumTask(3, 4, 23, 5);
    }

    /** The masked-diffusion task of BGPO: four digits filled in any order, targets 6..30. */
    public static DigitSumTask diffusion() {
        return new DigitSumTask(4, 6, 30, 6);
    }

    /** Prompts are 0 .. 9 * length (every reachable sum). */
    public int targets() {
        return 9 * length + 1;
    }

    /** A batch of prompts, each repeated for its group: the target and the group id of every sequence. */
    public record Prompts(int[] target, long[] groupIds) {}

    public Prompts drawPrompts(SplittableRandom rng, int prompts, int group) {
        int[] target = new int[prompts * group];
        long[] ids = new long[prompts * group];
        for (int b = 0; b < prompts; b++) {
            int t = minTarget + rng.nextInt(maxTarget - minTarget + 1);
            for (int g = 0; g < group; g++) {
                target[b * group + g] = t;
                ids[b * group + g] = b;
            }
        }
        return new Prompts(target, ids);
    }

    /** The reward of each completion. */
    public float[] rewards(int[] target, int[][] completions) {
        float[] r = new float[target.length];
        for (int i = 0; i < target.length; i++) {
            r[i] = (float) reward(target[i], completions[i]);
        }
        return r;
    }

    public double reward(int target, int[] digits) {
        int sum = 0;
        for (int d : digits) {
            sum += d;
        }
        return Math.max(0, 1 - Math.abs(sum - target) / tolerance);
    }
}
