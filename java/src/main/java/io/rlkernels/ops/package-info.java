/**
 * The ops, one type each: its configuration (a record with verl's defaults and {@code with...}
 * builders), its inputs, its result or summable statistics, and the numerical contract every
 * backend meets (ARCHITECTURE §5): {@link io.rlkernels.ops.LogProbs},
 * {@link io.rlkernels.ops.LinearLogProbs}, {@link io.rlkernels.ops.GroupAdvantages},
 * {@link io.rlkernels.ops.Gae}, {@link io.rlkernels.ops.MaskedWhiten},
 * {@link io.rlkernels.ops.OptimalTokenBaseline}, {@link io.rlkernels.ops.PolicyLoss},
 * {@link io.rlkernels.ops.Bgpo}; the layouts of sequences and groups; verl's names
 * ({@link io.rlkernels.ops.PolicyLossKeys}, {@link io.rlkernels.ops.AdvantageEstimator}). Nothing
 * here runs a kernel: a {@link io.rlkernels.backend.Backend} does.
 */
package io.rlkernels.ops;
