package example;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.util.SplittableRandom;

/** The README's fused LM-head snippet: 256 rows, d = 512, V = 8192. */
public final class LinearHeadExample {
    private LinearHeadExample() {}

    public static void main(String[] args) {
        int n = 256;
        int d = 512;
        int v = 8192;
        SplittableRandom rng = new SplittableRandom(4);
        double globalTokens = n;
        try (Backend backend = Backends.auto(); HostTensor hidden = Data.normal(rng, 1, n, d);
             HostTensor lmHead = Data.normal(rng, 0.05, v, d); HostTensor targets = HostTensor.of(rng.ints(n, 0, v).toArray());
             HostTensor g = HostTensor.allocate(DType.F32, n).fill(-1f / n); HostTensor h = HostTensor.allocate(DType.F32, n).fill(0.01f);
             HostTensor gradHidden = HostTensor.allocate(DType.F32, n, d); HostTensor gradLmHead = HostTensor.allocate(DType.F32, v, d);
             HostTensor oldLogp = HostTensor.allocate(DType.F32, n); HostTensor advantages = Data.normal(rng, 1, n);
             HostTensor mask = HostTensor.allocate(DType.F32, n).fill(1f); HostTensor logp = HostTensor.allocate(DType.F32, n)) {
            // README: linear-head
            LinearLogProbs.Config lin = LinearLogProbs.Config.defaults()      // temperature 1, ignore_index -100
                    .withWorkspaceBytes(256L << 20);                          // at most 256 MiB of logits at a time
            try (LogProbs.Result r = backend.linearLogProbs(lin, hidden, lmHead, targets, true)) {   // [N, d], [V, d]
                backend.linearLogProbsBackward(lin, hidden, lmHead, targets, r.lseParts(), r.entropy(), g, h,
                        gradHidden, gradLmHead);                              // dH [N, d] written, dW [V, d] +=
            // README end
                backend.download(r.logp(), oldLogp); // this policy as the old one: ratios of 1
            // README: linear-head
            }
            // or the policy loss straight from the hidden states: loss, statistics, dH and dW in one call
            PolicyLoss.Stats stats = backend.linearPolicyLoss(lin, PolicyLoss.Config.defaults().withDenominator(globalTokens),
                    new LinearLogProbs.LossInputs(hidden, lmHead, targets, oldLogp, advantages, mask), logp, gradHidden, gradLmHead);
            // README end
            System.out.printf("linear head on %s: loss %.5f, logp[0] = %.4f%n", backend, stats.loss(), logp.getFloat(0));
        }
    }
}
