package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * {@code op policy_loss}: in logp.npy, old_logp.npy, advantages.npy [N] float32, mask.npy [N]
 * (float32 or uint8), seq_ids.npy [N] int32 (needed by ratio=sequence and the seq-* modes),
 * optional ref_logp.npy and entropy.npy [N] float32; params loss (ppo, cispo, reinforce), ratio
 * (token, sequence), clip_low (0.2), clip_high (0.2), dual_clip (0 = off), agg (token-mean,
 * seq-mean-token-mean, seq-mean-token-sum, seq-mean-token-sum-norm), denom (default: what the mode
 * implies for this batch), kl (none, k1, k2, k3, abs), kl_coef (0), entropy_coef (0); out loss.npy
 * [1], grad_logp.npy [N] (and grad_entropy.npy with entropy) float32, metrics.json.
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
    public void run(Backend backend, Path in, Path out, Params p, Arena arena) throws IOException {
        PolicyLoss.Config c = new PolicyLoss.Config(PolicyLoss.LossType.parse(p.string("loss", "ppo")),
                PolicyLoss.RatioLevel.parse(p.string("ratio", "token")), p.floatValue("clip_low", 0.2f),
                p.floatValue("clip_high", 0.2f), p.floatValue("dual_clip", 0f),
                PolicyLoss.Aggregation.parse(p.string("agg", "token-mean")), p.floatValue("denom", Float.NaN),
                PolicyLoss.KlEstimator.parse(p.string("kl", "none")), p.floatValue("kl_coef", 0f),
                p.floatValue("entropy_coef", 0f));
        HostTensor logp = Npy.read(in.resolve("logp.npy"), arena);
        HostTensor entropy = optional(in.resolve("entropy.npy"), arena);
        HostTensor seqIds = optional(in.resolve("seq_ids.npy"), arena);
        try (SequenceLayout sequences = seqIds == null ? null : SequenceLayout.ofSeqIds(seqIds);
             HostTensor grad = HostTensor.allocate(DType.F32, logp.shape());
             HostTensor gradEntropy = entropy == null ? null : HostTensor.allocate(DType.F32, logp.shape());
             HostTensor loss = HostTensor.allocate(DType.F32, 1)) {
            PolicyLoss.Inputs inputs = new PolicyLoss.Inputs(logp, Npy.read(in.resolve("old_logp.npy"), arena),
                    Npy.read(in.resolve("advantages.npy"), arena), Npy.read(in.resolve("mask.npy"), arena), sequences,
                    optional(in.resolve("ref_logp.npy"), arena), entropy);
            PolicyLoss.Stats s = backend.policyLoss(c, inputs, grad, gradEntropy);
            loss.setFloat(0, (float) s.loss());
            Npy.write(out.resolve("loss.npy"), loss);
            Npy.write(out.resolve("grad_logp.npy"), grad);
            if (gradEntropy != null) {
                Npy.write(out.resolve("grad_entropy.npy"), gradEntropy);
            }
            Files.writeString(out.resolve("metrics.json"), json(s));
        }
    }

    /** The metrics and, to combine micro-batches, the sums they come from. */
    static String json(PolicyLoss.Stats s) {
        Map<String, Double> m = new LinkedHashMap<>();
        m.put("loss", s.loss());
        m.put("clip_fraction_high", s.clipFractionHigh());
        m.put("clip_fraction_low", s.clipFractionLow());
        m.put("clip_fraction_dual", s.clipFractionDual());
        m.put("approx_kl", s.approxKl());
        m.put("ratio_min", s.ratioMin());
        m.put("ratio_mean", s.ratioMean());
        m.put("ratio_max", s.ratioMax());
        m.put("tokens", s.tokens());
        m.put("sequences", s.sequences());
        m.put("denominator", s.denominator());
        m.put("sum_clip_high", s.clipHigh());
        m.put("sum_clip_low", s.clipLow());
        m.put("sum_clip_dual", s.clipDual());
        m.put("sum_neg_log_ratio", s.negApproxKlSum());
        m.put("sum_ratio", s.ratioSum());
        StringBuilder b = new StringBuilder("{\n");
        int k = 0;
        for (Map.Entry<String, Double> e : m.entrySet()) {
            b.append(String.format(Locale.ROOT, "  \"%s\": %s%s%n", e.getKey(), number(e.getValue()), ++k < m.size() ? "," : ""));
        }
        return b.append("}\n").toString();
    }

    private static String number(double x) {
        return Double.isFinite(x) ? (x == Math.rint(x) && Math.abs(x) < 1e15 ? Long.toString((long) x) : Double.toString(x)) : "null";
    }

    private static HostTensor optional(Path file, Arena arena) throws IOException {
        return Files.exists(file) ? Npy.read(file, arena) : null;
    }
}
