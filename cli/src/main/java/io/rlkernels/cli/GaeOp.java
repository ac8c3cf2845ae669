package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.util.Set;

/**
 * {@code op gae}: in rewards.npy and values.npy [B,T] float32, mask.npy [B,T] float32 or uint8;
 * params gamma (1.0), lam (1.0), whiten (false: true whitens the advantages under the mask, as
 * verl's GAE does); out advantages.npy and returns.npy [B,T] float32 (returns before whitening).
 */
final class GaeOp implements CliOp {
    @Override
    public String name() {
        return "gae";
    }

    @Override
    public Set<String> paramKeys() {
        return Set.of("gamma", "lam", "whiten");
    }

    @Override
    public void run(Backend backend, InputFiles in, OutputFiles out, Params params) throws IOException {
        Gae.Config config = new Gae.Config(params.floatValue("gamma", 1f), params.floatValue("lam", 1f));
        boolean whiten = params.flag("whiten", false);
        HostTensor rewards = in.npy("rewards.npy");
        HostTensor values = in.npy("values.npy");
        HostTensor mask = in.npy("mask.npy");
        Check.rank("rewards", rewards, 2);
        try (HostTensor advantages = HostTensor.allocate(DType.F32, rewards.shape());
             HostTensor returns = HostTensor.allocate(DType.F32, rewards.shape())) {
            backend.gae(config, rewards, values, mask, advantages, returns);
            if (whiten) {
                backend.maskedWhiten(MaskedWhiten.Config.defaults(), advantages, mask, advantages);
            }
            out.npy("advantages.npy", advantages);
            out.npy("returns.npy", returns);
        }
    }
}
