package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.util.Set;

/**
 * {@code op advantages}: in rewards.npy [S] float32, group_ids.npy [S] int32 or int64; params mode
 * (grpo, drgrpo, rloo, batch, none; default grpo), eps (1e-6), std (unbiased or biased); out
 * advantages.npy [S] float32.
 */
final class AdvantagesOp implements CliOp {
    @Override
    public String name() {
        return "advantages";
    }

    @Override
    public Set<String> paramKeys() {
        return Set.of("mode", "eps", "std");
    }

    @Override
    public void run(Backend backend, InputFiles in, OutputFiles out, Params params) throws IOException {
        String std = params.string("std", "unbiased");
        if (!std.equals("unbiased") && !std.equals("biased")) {
            throw Check.fail("--param std", "unbiased or biased", std);
        }
        GroupAdvantages.Config config = new GroupAdvantages.Config(GroupAdvantages.Mode.parse(params.string("mode", "grpo")),
                std.equals("unbiased"), params.floatValue("eps", GroupAdvantages.Config.DEFAULT_EPS));
        HostTensor rewards = in.npy("rewards.npy");
        HostTensor ids = in.npy("group_ids.npy");
        Check.rank("rewards", rewards, 1);
        try (HostTensor advantages = HostTensor.allocate(DType.F32, rewards.dim(0))) {
            backend.groupAdvantages(config, rewards, ids, advantages);
            out.npy("advantages.npy", advantages);
        }
    }
}
