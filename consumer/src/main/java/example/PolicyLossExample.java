package example;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.PolicyLossKeys;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.util.Map;
import java.util.SplittableRandom;

/** The README's policy-loss snippets (PPO with KL; verl's rollout correction): 16 responses of 256 tokens. */
public final class PolicyLossExample {
    private PolicyLossExample() {}

    public static void main(String[] args) {
        int n = 16 * 256;
        SplittableRandom rng = new SplittableRandom(3);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = i / 256;
        }
        double globalTokenCount = n; // one rank, one micro-batch: the batch's own kept tokens
        try (Backend backend = Backends.auto(); HostTensor seqIds = HostTensor.of(ids); HostTensor logp = Data.logProbs(rng, n);
             HostTensor oldLogp = Data.near(rng, logp, 0.1); HostTensor refLogp = Data.near(rng, logp, 0.2);
             HostTensor rolloutLogp = Data.near(rng, oldLogp, 0.05); HostTensor advantages = Data.normal(rng, 1, n);
             HostTensor mask = HostTensor.allocate(DType.F32, n).fill(1f); HostTensor gradLogp = HostTensor.allocate(DType.F32, n)) {
            // README: policy-loss
            try (SequenceLayout seqs = SequenceLayout.ofSeqIds(seqIds)) {   // each sequence one contiguous run of tokens
                PolicyLoss.Config config = PolicyLoss.Config.defaults()      // ppo, token ratio, clip 0.2/0.2, token-mean
                        .withClip(0.2f, 0.28f).withDualClip(3f)
                        .withDenominator(globalTokenCount)                    // the whole batch's kept tokens, on every rank
                        .withKl(PolicyLoss.KlEstimator.K3, 0.001f);
                PolicyLoss.Stats stats = backend.policyLoss(config,
                        new PolicyLoss.Inputs(logp, oldLogp, advantages, mask).withSequences(seqs).withRefLogp(refLogp),
                        gradLogp, null);                                      // gradLogp [N]: dL/dlogp, into log-probs' backward
                // stats.loss(), stats.clipFractionHigh(), stats.approxKl(), ... ; stats.merge(other) across micro-batches
            // README end
                System.out.printf("policy loss on %s: loss %.5f, clip fraction high %.3f%n", backend, stats.loss(),
                        stats.clipFractionHigh());
                // README: rollout-correction
                PolicyLoss.Config corrected = PolicyLossKeys.config(Map.of(           // verl's names and defaults
                        "rollout_is", "sequence", "rollout_is_threshold", "2.0",
                        "rollout_rs", "token_k1", "rollout_rs_threshold", "0.5_2.0"));
                // the same: Config.defaults().withDualClip(3f).withRollout(RolloutCorrection.truncated(WeightLevel.SEQUENCE, 2.0)
                //         .withRejection(Rejection.parse("token_k1", "0.5_2.0")))
                PolicyLoss.Stats s = backend.policyLoss(corrected.withDenominator(globalTokenCount),
                        new PolicyLoss.Inputs(logp, oldLogp, advantages, mask).withSequences(seqs).withRolloutLogp(rolloutLogp),
                        gradLogp, null);
                // s.rolloutIsMean(), s.rolloutRsMaskedFraction(), s.rolloutK3Kl(), s.rolloutChi2Seq(), ...; with
                // rollout_is_batch_normalize, pass the whole batch's s.rolloutIsBatchMean() to every micro-batch
                // README end
                System.out.printf("rollout-corrected on %s: rollout_is_mean %.4f, rejected %.4f%n", backend, s.rolloutIsMean(),
                        s.rolloutRsMaskedFraction());
            // README: policy-loss
            }
            // README end
        }
    }
}
