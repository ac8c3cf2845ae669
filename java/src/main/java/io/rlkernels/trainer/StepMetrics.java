package io.rlkernels.trainer;

import java.util.Locale;

/** What one training step reports: one JSON line of metrics.jsonl, one point of the plot. */
public record StepMetrics(String algorithm, int step, double reward, double loss, double clipFraction, double approxKl,
                          double tokensPerSecond, long accumulatorBytes) {

    public String json() {
        return String.format(Locale.ROOT, "{\"algorithm\": \"%s\", \"step\": %d, \"reward\": %.6f, \"loss\": %.6g, "
                + "\"clip_fraction\": %.6f, \"approx_kl\": %.6g, \"tokens_per_s\": %.1f, \"accumulator_bytes\": %d}",
                algorithm, step, reward, loss, clipFraction, approxKl, tokensPerSecond, accumulatorBytes);
    }
}
