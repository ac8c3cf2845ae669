package io.rlkernels.cli;

import io.rlkernels.ops.internal.LogProbsChecks;
import io.rlkernels.backend.Backend;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.util.Set;

/**
 * {@code op logprobs}: in logits.npy [N,V] (float32, float16, or uint16 holding bf16 bits),
 * targets.npy [N] (int32 or int64), optional grad_logp.npy and grad_entropy.npy [N] float32;
 * params temperature (1.0), ignore_index (-100); out logp.npy, entropy.npy, lse.npy [N] float32,
 * and grad_logits.npy [N,V] float32 when an upstream gradient is given.
 */
final class LogProbsOp implements CliOp {
    @Override
    public String name() {
        return "logprobs";
    }

    @Override
    public Set<String> paramKeys() {
        return Set.of("temperature", "ignore_index");
    }

    @Override
    public void run(Backend backend, InputFiles in, OutputFiles out, Params params) throws IOException {
        LogProbs.Config config = new LogProbs.Config(params.floatValue("temperature", 1.0f),
                params.longValue("ignore_index", LogProbs.DEFAULT_IGNORE_INDEX));
        HostTensor logits = in.npy("logits.npy");
        HostTensor targets = in.npy("targets.npy");
        HostTensor gradLogp = in.optionalNpy("grad_logp.npy");
        HostTensor gradEntropy = in.optionalNpy("grad_entropy.npy");

        LogProbs.Dims d = LogProbsChecks.checkInputs(logits, targets);
        try (HostTensor logp = HostTensor.allocate(DType.F32, d.rows());
             HostTensor lse = HostTensor.allocate(DType.F32, d.rows());
             HostTensor entropy = HostTensor.allocate(DType.F32, d.rows());
             HostTensor lseParts = HostTensor.allocate(DType.F32, d.rows(), 2)) {
            backend.logProbs(config, logits, targets, logp, lse, entropy, lseParts);
            out.npy("logp.npy", logp);
            out.npy("lse.npy", lse);
            out.npy("entropy.npy", entropy);
            if (gradLogp != null || gradEntropy != null) {
                try (HostTensor grad = HostTensor.allocate(DType.F32, d.rows(), d.vocab())) {
                    backend.logProbsBackward(config, logits, targets, lseParts, entropy, gradLogp, gradEntropy, grad);
                    out.npy("grad_logits.npy", grad);
                }
            }
        }
    }
}
