package io.rlkernels.trainer;

import io.rlkernels.internal.Json;

/**
 * What one training step reports: one JSON line of metrics.jsonl (strict JSON: a non-finite value
 * is null, named in non_finite_keys), one point of the plot.
 */
public record StepMetrics(String algorithm, int step, double reward, double loss, double clipFraction, double approxKl,
                          double tokensPerSecond, long accumulatorBytes) {

    public String json() {
        return new Json().put("algorithm", algorithm).put("step", step).put("reward", round(reward, 1e6))
                .put("loss", loss).put("clip_fraction", round(clipFraction, 1e6)).put("approx_kl", approxKl)
                .put("tokens_per_s", round(tokensPerSecond, 10)).put("accumulator_bytes", accumulatorBytes).line();
    }

    private static double round(double x, double scale) {
        return Double.isFinite(x) ? Math.rint(x * scale) / scale : x;
    }
}
