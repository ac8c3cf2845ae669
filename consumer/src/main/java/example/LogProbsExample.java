package example;

// README: logprobs
import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;

// README end
import io.rlkernels.tensor.Tensor;
import java.util.SplittableRandom;

/** The README's log-probs snippet on N = 512 rows of a 32,000-token vocabulary in bf16. */
public final class LogProbsExample {
    private LogProbsExample() {}

    public static void main(String[] args) {
        int n = 512;
        int v = 32_000;
        SplittableRandom rng = new SplittableRandom(1);
        int[] tokenIds = rng.ints(n, 0, v).toArray();
        HostTensor g = HostTensor.of(new float[n]).fill(-1f / n); // d(mean -logp)/dlogp
        Tensor h = null;                                           // no entropy term
        // README: logprobs
        try (Backend backend = Backends.auto();                     // cuda, else native, else reference
             HostTensor logits = HostTensor.allocate(DType.BF16, n, v);   // or HostTensor.of(float[], n, v): no copy
             HostTensor targets = HostTensor.of(tokenIds)) {             // int[] or long[]
            // ... fill logits ...
        // README end
            for (long i = 0; i < (long) n * v; i++) {
                logits.setFloat(i, (float) (rng.nextGaussian() * 2));
            }
        // README: logprobs
            LogProbs.Config config = LogProbs.Config.defaults().withTemperature(0.7f);   // ignore_index -100
            try (LogProbs.Result r = backend.logProbs(config, logits, targets, true)) {  // logp, lse, entropy [N] f32
                // upstream gradients g = dL/dlogp and h = dL/dentropy ([N] f32, either may be null); the
                // backward takes the row's (max, ln s), lseParts [N, 2], not lse (see Numerics below):
                backend.logProbsBackward(config, logits, targets, r.lseParts(), r.entropy(), g, h, logits); // in place
        // README end
                HostTensor logp = HostTensor.allocate(DType.F32, n);
                backend.download(r.logp(), logp);
                System.out.printf("logprobs on %s: logp[0] = %.4f, dz[0, 0] = %.3g%n", backend, logp.getFloat(0), logits.getFloat(0));
                logp.close();
        // README: logprobs
            }
        }
        // README end
        g.close();
    }
}
