package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.internal.Json;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.util.Set;

/**
 * {@code op policy_loss}: in logp.npy, old_logp.npy, advantages.npy [N] float32, mask.npy [N]
 * (float32 or uint8), seq_ids.npy [N] int32 (needed by ratio=sequence and the seq-* modes),
 * optional ref_logp.npy and entropy.npy [N] float32; params loss (ppo, cispo, reinforce), ratio
 * (token, sequence), clip_low (0.2), clip_high (0.2), dual_clip (0 = off), agg (token-mean,
 * seq-mean-token-mean, seq-mean-token-sum, seq-mean-token-sum-norm), denom (default: what the mode
 * implies for this batch), kl (a KlEstimator name; none), kl_coef (0), entropy_coef (0); out loss.npy
 * [1], grad_logp.npy [N] (and grad_entropy.npy with entropy) float32, metrics.json (strict JSON: a
 * non-finite value is null, counted in non_finite_count).
 */
final class PolicyLossOp implements CliOp {
    @Override
    public String name() {
        return "policy_loss";
    }

    @Override
    public Set<String> paramKeys() {
        return Set.of("loss", "ratio", "clip_low", "clip_high", "dual_clip", "agg", "denom", "kl", "kl_coef", "entropy_coef");
    }

    @Override
    public void run(Backend backend, InputFiles in, OutputFiles out, Params p) throws IOException {
        PolicyLoss.Config c = new PolicyLoss.Config(PolicyLoss.LossType.parse(p.string("loss", "ppo")),
                PolicyLoss.RatioLevel.parse(p.string("ratio", "token")), p.floatValue("clip_low", 0.2f),
                p.floatValue("clip_high", 0.2f), p.floatValue("dual_clip", 0f),
                PolicyLoss.Aggregation.parse(p.string("agg", "token-mean")), p.floatValue("denom", Float.NaN),
                PolicyLoss.KlEstimator.parse(p.string("kl", "none")), p.floatValue("kl_coef", 0f),
                p.floatValue("entropy_coef", 0f));
        HostTensor logp = in.npy("logp.npy");
        HostTensor entropy = in.optionalNpy("entropy.npy");
        HostTensor seqIds = in.optionalNpy("seq_ids.npy");
        io.rlkernels.internal.Check.rank("logp", logp, 1);
        try (SequenceLayout sequences = seqIds == null ? null : SequenceLayout.ofSeqIds(seqIds);
             HostTensor grad = HostTensor.allocate(DType.F32, logp.shape());
             HostTensor gradEntropy = entropy == null ? null : HostTensor.allocate(DType.F32, logp.shape());
             HostTensor loss = HostTensor.allocate(DType.F32, 1)) {
            PolicyLoss.Inputs inputs = new PolicyLoss.Inputs(logp, in.npy("old_logp.npy"), in.npy("advantages.npy"),
                    in.npy("mask.npy"), sequences, in.optionalNpy("ref_logp.npy"), entropy);
            PolicyLoss.Stats s = backend.policyLoss(c, inputs, grad, gradEntropy);
            loss.setFloat(0, LossOutput.toFloat32("loss", s.loss()));
            out.npy("loss.npy", loss);
            out.npy("grad_logp.npy", grad);
            if (gradEntropy != null) {
                out.npy("grad_entropy.npy", gradEntropy);
            }
            out.text("metrics.json", json(s));
        }
    }

    /** The metrics and, to combine micro-batches, the sums they come from. */
    static String json(PolicyLoss.Stats s) {
        return new Json().put("loss", s.loss()).put("clip_fraction_high", s.clipFractionHigh())
                .put("clip_fraction_low", s.clipFractionLow()).put("clip_fraction_dual", s.clipFractionDual())
                .put("approx_kl", s.approxKl()).put("ratio_min", s.ratioMin()).put("ratio_mean", s.ratioMean())
                .put("ratio_max", s.ratioMax()).put("tokens", s.tokens()).put("sequences", s.sequences())
                .put("denominator", s.denominator()).put("sum_clip_high", s.clipHigh()).put("sum_clip_low", s.clipLow())
                .put("sum_clip_dual", s.clipDual()).put("sum_neg_log_ratio", s.negApproxKlSum()).put("sum_ratio", s.ratioSum())
                .pretty();
    }
}
