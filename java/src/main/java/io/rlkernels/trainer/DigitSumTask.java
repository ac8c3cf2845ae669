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

    public int drawTarget(SplittableRandom rng) {
        return minTarget + rng.nextInt(maxTarget - minTarget + 1);
    }

    public double reward(int target, int[] digits) {
        int sum = 0;
        for (int d : digits) {
            sum += d;
        }
        return Math.max(0, 1 - Math.abs(sum - target) / tolerance);
    }
}
