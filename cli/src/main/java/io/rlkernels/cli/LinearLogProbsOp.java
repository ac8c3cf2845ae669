package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.internal.LinearLogProbsChecks;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.util.Set;

/**
 * {@code op linear_logprobs}: in hidden.npy [N,d] and weight.npy [V,d] (float32, float16, or
 * uint16 holding bf16 bits; the two may differ), targets.npy [N] (int32 or int64), optional
 * grad_logp.npy and grad_entropy.npy [N] float32; params temperature (1.0), ignore_index (-100),
 * chunk (token rows per chunk, 0: as many as the workspace holds), workspace_mb (256); out
 * logp.npy, lse.npy, entropy.npy [N] float32 and, with an upstream gradient, grad_hidden.npy
 * [N,d] and grad_weight.npy [V,d] float32 (the fresh gradient: what the op's += adds to zeros).
 */
final class LinearLogProbsOp implements CliOp {
    @Override
    public String name() {
        return "linear_logprobs";
    }

    @Override
    public Set<String> paramKeys() {
        return Set.of("temperature", "ignore_index", "chunk", "workspace_mb");
    }

    @Override
    public void run(Backend backend, InputFiles in, OutputFiles out, Params params) throws IOException {
        LinearLogProbs.Config config = new LinearLogProbs.Config(new LogProbs.Config(params.floatValue("temperature", 1.0f),
                params.longValue("ignore_index", LogProbs.DEFAULT_IGNORE_INDEX)),
                params.longValue("workspace_mb", LinearLogProbs.DEFAULT_WORKSPACE_BYTES >> 20) << 20,
                params.longValue("chunk", 0));
        HostTensor hidden = in.npy("hidden.npy");
        HostTensor weight = in.npy("weight.npy");
        HostTensor targets = in.npy("targets.npy");
        HostTensor gradLogp = in.optionalNpy("grad_logp.npy");
        HostTensor gradEntropy = in.optionalNpy("grad_entropy.npy");

        LinearLogProbs.Dims d = LinearLogProbsChecks.checkInputs(config, hidden, weight, targets);
        try (HostTensor logp = HostTensor.allocate(DType.F32, d.rows());
             HostTensor lse = HostTensor.allocate(DType.F32, d.rows());
             HostTensor entropy = HostTensor.allocate(DType.F32, d.rows());
             HostTensor lseParts = HostTensor.allocate(DType.F32, d.rows(), 2)) {
            backend.linearLogProbs(config, hidden, weight, targets, logp, lse, entropy, lseParts);
            out.npy("logp.npy", logp);
            out.npy("lse.npy", lse);
            out.npy("entropy.npy", entropy);
            if (gradLogp != null || gradEntropy != null) {
                try (HostTensor gradHidden = HostTensor.allocate(DType.F32, d.rows(), d.hidden());
                     HostTensor gradWeight = HostTensor.allocate(DType.F32, d.vocab(), d.hidden()).fill(0f)) {
                    backend.linearLogProbsBackward(config, hidden, weight, targets, lseParts, entropy, gradLogp, gradEntropy,
                            gradHidden, gradWeight);
                    out.npy("grad_hidden.npy", gradHidden);
                    out.npy("grad_weight.npy", gradWeight);
                }
            }
        }
    }
}
