package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.internal.Check;
import io.rlkernels.backend.AdvantageEstimators;
import io.rlkernels.ops.AdvantageEstimator;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.util.Set;

/**
 * {@code op advantages}: in rewards.npy [S] float32, group_ids.npy [S] int32 or int64; params mode
 * (grpo, drgrpo, rloo, batch, none, gpg, opo, passk; default grpo), eps (1e-6), std (unbiased or
 * biased); out advantages.npy [S] float32. With verl's {@code adv_estimator} (grpo, rloo, gpg, opo,
 * grpo_passk, reinforce_plus_plus_baseline, reinforce_plus_plus, remax, gdpo, optimal_token_baseline;
 * {@link AdvantageEstimator}), {@code norm_adv_by_std_in_grpo} (true), {@code gamma} (1.0),
 * {@code gdpo_reward_weights} ("1,0.5"; 1 each), {@code handle_zero_tail} (true) and {@code eps}
 * (the estimator's verl default): in mask.npy [S, T] (float32 or uint8) and
 * rewards.npy [S] ([K, S] for gdpo) with group_ids.npy, or token_rewards.npy [S, T] float32
 * (reinforce_plus_plus, remax; remax also baseline_rewards.npy [S]; optimal_token_baseline also
 * group_ids.npy, old_logp.npy and sum_pi_squared.npy [S, T] float32, and optionally
 * rollout_is_weights.npy [S, T]); out advantages.npy and returns.npy [S, T] float32, as verl's
 * estimators return them.
 */
final class AdvantagesOp implements CliOp {
    @Override
    public String name() {
        return "advantages";
    }

    @Override
    public Set<String> paramKeys() {
        return Set.of("mode", "eps", "std", "adv_estimator", "norm_adv_by_std_in_grpo", "gamma", "gdpo_reward_weights",
                "handle_zero_tail");
    }

    @Override
    public void run(Backend backend, InputFiles in, OutputFiles out, Params params) throws IOException {
        if (params.all().containsKey("adv_estimator")) {
            estimator(backend, in, out, params);
            return;
        }
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

    /** verl's estimators: token advantages and returns [S, T]. */
    private static void estimator(Backend backend, InputFiles in, OutputFiles out, Params params) throws IOException {
        AdvantageEstimator e = AdvantageEstimator.parse(params.string("adv_estimator", "grpo"));
        float[] weights = null;
        String w = params.string("gdpo_reward_weights", null);
        if (w != null) {
            String[] parts = w.split(",");
            weights = new float[parts.length];
            for (int k = 0; k < parts.length; k++) {
                try {
                    weights[k] = Float.parseFloat(parts[k].trim());
                } catch (NumberFormatException x) {
                    throw Check.fail("--param gdpo_reward_weights", "comma-separated numbers", w);
                }
            }
        }
        AdvantageEstimator.Config c = new AdvantageEstimator.Config(e, params.flag("norm_adv_by_std_in_grpo", true),
                params.floatValue("eps", AdvantageEstimator.Config.defaultEpsilon(e)), params.floatValue("gamma", 1f), weights,
                params.flag("handle_zero_tail", true));
        HostTensor mask = in.npy("mask.npy");
        Check.rank("mask", mask, 2);
        try (HostTensor advantages = HostTensor.allocate(DType.F32, mask.shape());
             HostTensor returns = HostTensor.allocate(DType.F32, mask.shape())) {
            if (e == AdvantageEstimator.OPTIMAL_TOKEN_BASELINE) {
                try (GroupLayout groups = GroupLayout.of(in.npy("group_ids.npy"))) {
                    AdvantageEstimators.compute(backend, c, AdvantageEstimator.Inputs.optimalTokenBaseline(in.npy("token_rewards.npy"), groups,
                            mask, in.npy("old_logp.npy"), in.npy("sum_pi_squared.npy"), in.optionalNpy("rollout_is_weights.npy")),
                            advantages, returns);
                }
            } else if (e.tokenRewards()) {
                AdvantageEstimator.Inputs inputs = AdvantageEstimator.Inputs.tokens(in.npy("token_rewards.npy"), mask);
                if (e == AdvantageEstimator.REMAX) {
                    inputs = inputs.withBaselineRewards(in.npy("baseline_rewards.npy"));
                }
                AdvantageEstimators.compute(backend, c, inputs, advantages, returns);
            } else {
                try (GroupLayout groups = GroupLayout.of(in.npy("group_ids.npy"))) {
                    AdvantageEstimators.compute(backend, c, AdvantageEstimator.Inputs.grouped(in.npy("rewards.npy"), groups, mask),
                            advantages, returns);
                }
            }
            out.npy("advantages.npy", advantages);
            out.npy("returns.npy", returns);
        }
    }
}
