package example;

import io.rlkernels.backend.AdvantageEstimators;
import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.ops.AdvantageEstimator;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.util.SplittableRandom;

/** The README's advantages snippet: 64 responses in 8 groups of 8, 256 tokens each. */
public final class AdvantagesExample {
    private AdvantagesExample() {}

    public static void main(String[] args) {
        int s = 64;
        int t = 256;
        SplittableRandom rng = new SplittableRandom(2);
        int[] ids = new int[s];
        for (int i = 0; i < s; i++) {
            ids[i] = i / 8;
        }
        try (Backend backend = Backends.auto(); HostTensor groupIds = HostTensor.of(ids);
             HostTensor rewards = Data.normal(rng, 1, s); HostTensor advantages = HostTensor.allocate(DType.F32, s);
             HostTensor responseMask = Data.prefixMask(rng, s, t); HostTensor tokenAdvantages = HostTensor.allocate(DType.F32, s, t);
             HostTensor tokenRewards = Data.normal(rng, 0.1, s, t); HostTensor values = Data.normal(rng, 1, s, t);
             HostTensor returns = HostTensor.allocate(DType.F32, s, t)) {
            // README: advantages
            try (GroupLayout groups = GroupLayout.of(groupIds)) {        // O(S) on the host; reuse it while the grouping holds
                backend.groupAdvantages(GroupAdvantages.Config.defaults() // grpo, unbiased std, eps 1e-6
                        .withMode(GroupAdvantages.Mode.RLOO), rewards, groups, advantages);
                backend.sequenceToTokens(advantages, responseMask, tokenAdvantages);  // [S] -> [S, T] under the mask
                // or verl's estimators by name, [S, T] under the response mask, on the same backend:
                AdvantageEstimators.compute(backend, AdvantageEstimator.Config.of(AdvantageEstimator.parse("grpo_passk")),
                        AdvantageEstimator.Inputs.grouped(rewards, groups, responseMask), tokenAdvantages, returns);
            }
            backend.gae(new Gae.Config(0.99f, 0.95f), tokenRewards, values, responseMask, tokenAdvantages, returns);
            backend.maskedWhiten(MaskedWhiten.Config.defaults(), tokenAdvantages, responseMask, tokenAdvantages);
            // README end
            System.out.printf("advantages on %s: rloo a[0] = %.4f, whitened GAE A[0, 0] = %.4f%n", backend,
                    advantages.getFloat(0), tokenAdvantages.getFloat(0));
        }
    }
}
