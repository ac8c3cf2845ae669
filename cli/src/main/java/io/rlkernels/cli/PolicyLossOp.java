package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.internal.Json;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.PolicyLossKeys;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.util.Set;

/**
 * {@code op policy_loss}: in logp.npy, old_logp.npy, advantages.npy [N] float32, mask.npy [N]
 * (float32 or uint8), seq_ids.npy [N] int32 (needed by the sequence ratios, the seq-* modes and
 * the per-sequence corrections), optional ref_logp.npy, entropy.npy and rollout_logp.npy [N]
 * float32; params are verl's keys with verl's defaults ({@link PolicyLossKeys}: loss_mode,
 * clip_ratio*, loss_agg_mode, kl_loss_type, rollout_is, rollout_rs, ...; the README's table); out
 * loss.npy [1], grad_logp.npy [N] (and grad_entropy.npy with entropy) float32, metrics.json (verl's
 * metric names where verl has one, and the sums they come from; strict JSON: a non-finite value
 * is null, counted in non_finite_count).
 */
final class PolicyLossOp implements CliOp {
    @Override
    public String name() {
        return "policy_loss";
    }

    @Override
    public Set<String> paramKeys() {
        return PolicyLossKeys.names();
    }

    @Override
    public void run(Backend backend, InputFiles in, OutputFiles out, Params p) throws IOException {
        PolicyLoss.Config c = PolicyLossKeys.config(p.all());
        HostTensor logp = in.npy("logp.npy");
        HostTensor entropy = in.optionalNpy("entropy.npy");
        HostTensor seqIds = in.optionalNpy("seq_ids.npy");
        io.rlkernels.internal.Check.rank("logp", logp, 1);
        try (SequenceLayout sequences = seqIds == null ? null : SequenceLayout.ofSeqIds(seqIds);
             HostTensor grad = HostTensor.allocate(DType.F32, logp.shape());
             HostTensor gradEntropy = entropy == null ? null : HostTensor.allocate(DType.F32, logp.shape());
             HostTensor loss = HostTensor.allocate(DType.F32, 1)) {
            PolicyLoss.Inputs inputs = new PolicyLoss.Inputs(logp, in.npy("old_logp.npy"), in.npy("advantages.npy"),
                    in.npy("mask.npy"), sequences, in.optionalNpy("ref_logp.npy"), entropy, in.optionalNpy("rollout_logp.npy"));
            PolicyLoss.Stats s = backend.policyLoss(c, inputs, grad, gradEntropy);
            loss.setFloat(0, LossOutput.toFloat32("loss", s.loss()));
            out.npy("loss.npy", loss);
            out.npy("grad_logp.npy", grad);
            if (gradEntropy != null) {
                out.npy("grad_entropy.npy", gradEntropy);
            }
            out.text("metrics.json", json(c, s));
        }
    }

    /** The metrics (verl's names where verl has one) and, to combine micro-batches, the sums they come from. */
    static String json(PolicyLoss.Config c, PolicyLoss.Stats s) {
        Json j = new Json().put("loss", s.loss())
                .put("actor/pg_clipfrac", s.tokens() > 0 ? (s.clipHigh() + s.clipLow()) / s.tokens() : 0)
                .put("actor/ppo_kl", s.approxKl()).put("actor/pg_clipfrac_lower", s.clipFractionDual())
                .put("clip_fraction_high", s.clipFractionHigh()).put("clip_fraction_low", s.clipFractionLow())
                .put("clip_fraction_dual", s.clipFractionDual()).put("approx_kl", s.approxKl()).put("ratio_min", s.ratioMin())
                .put("ratio_mean", s.ratioMean()).put("ratio_max", s.ratioMax()).put("tokens", s.tokens())
                .put("sequences", s.sequences()).put("denominator", s.denominator()).put("sum_clip_high", s.clipHigh())
                .put("sum_clip_low", s.clipLow()).put("sum_clip_dual", s.clipDual()).put("sum_neg_log_ratio", s.negApproxKlSum())
                .put("sum_ratio", s.ratioSum());
        if (s.rcTokens() > 0) {
            PolicyLoss.WeightLevel level = c.rollout().level();
            if (level != PolicyLoss.WeightLevel.NONE) {
                j.put("rollout_corr/rollout_is_mean", s.rolloutIsMean()).put("rollout_corr/rollout_is_max", s.rcWeightMax())
                        .put("rollout_corr/rollout_is_min", s.rcWeightMin())
                        .put("rollout_corr/rollout_is_ratio_fraction_high", s.rolloutIsFractionHigh(level))
                        .put("rollout_corr/rollout_is_ratio_fraction_low", s.rolloutIsFractionLow(level))
                        .put("rollout_corr/rollout_is_std", s.rolloutIsStd())
                        .put("rollout_corr/rollout_is_eff_sample_size", s.rolloutIsEffectiveSampleSize())
                        .put("rollout_corr/rollout_is_batch_norm_factor", s.rcNormalizer())
                        .put("rollout_is_batch_mean", s.rolloutIsBatchMean());
            }
            if (!c.rollout().rejection().isEmpty()) {
                j.put("rollout_corr/rollout_rs_masked_fraction", s.rolloutRsMaskedFraction())
                        .put("rollout_corr/rollout_rs_seq_masked_fraction", s.rolloutRsSeqMaskedFraction());
            }
            j.put("rollout_corr/kl", s.rolloutKl()).put("rollout_corr/k3_kl", s.rolloutK3Kl())
                    .put("rollout_corr/chi2_token", s.rolloutChi2Token()).put("rollout_corr/chi2_seq", s.rolloutChi2Seq());
            java.lang.reflect.RecordComponent[] names = PolicyLoss.Stats.class.getRecordComponents();
            double[] v = s.toArray();
            for (int k = PolicyLoss.STAT_RC_TOKENS; k < names.length; k++) { // the correction's sums, for merging
                if (names[k].getName().startsWith("rc")) {
                    j.put(names[k].getName().replaceAll("([a-z0-9])([A-Z])", "$1_$2").toLowerCase(java.util.Locale.ROOT), v[k]);
                }
            }
        }
        return j.pretty();
    }
}
