package io.rlkernels.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.rlkernels.backend.AdvantageEstimators;
import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.ops.AdvantageEstimator;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.testing.Compare;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code rlkernels op advantages} and {@code op gae} on .npy files against the f64 reference. */
class OpAdvantagesCommandTest {
    @TempDir
    Path dir;

    @org.junit.jupiter.api.BeforeEach
    void onlyWhereNativeIsTested() {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.rlkernels.testing.BackendUnderTest.selected("native"),
                "rlk.test.backends leaves native out");
    }

    @Test
    void advantagesOnFilesAgreeWithTheReference() throws Exception {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Path in = Files.createDirectories(dir.resolve("in"));
        try (HostTensor rewards = TestData.normal(rng, 400, 1.0); HostTensor ids = HostTensor.allocate(DType.I64, 400)) {
            for (int i = 0; i < 400; i++) {
                ids.setLong(i, 1000 + rng.nextInt(50));
            }
            Npy.write(in.resolve("rewards.npy"), rewards);
            Npy.write(in.resolve("group_ids.npy"), ids);
            assertEquals(0, Main.run("op", "advantages", "--backend", "native", "--in", in.toString(), "--out",
                    dir.resolve("out").toString(), "--param", "mode=rloo", "--param", "std=biased"));
            GroupAdvantages.Config c = new GroupAdvantages.Config(GroupAdvantages.Mode.RLOO, false, 1e-6f);
            try (HostTensor want = HostTensor.allocate(DType.F32, 400); Arena arena = Arena.ofConfined()) {
                new ReferenceBackend().groupAdvantages(c, rewards, ids, want);
                Compare.assertClose("op advantages seed=" + seed, want, Npy.read(dir.resolve("out/advantages.npy"), arena),
                        new Tolerance(1e-6, 1e-5));
            }
        }
    }

    /** verl's adv_estimator on files: token advantages and returns [S, T], as the library's estimator computes them. */
    @Test
    void verlsEstimatorsOnFiles() throws Exception {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Path in = Files.createDirectories(dir.resolve("in"));
        int s = 40;
        int t = 16;
        try (HostTensor rewards = TestData.normal(rng, s, 1.0); HostTensor ids = HostTensor.allocate(DType.I64, s);
             HostTensor tokens = HostTensor.wrap(TestData.normal(rng, s * t, 1.0).segment(), DType.F32, s, t);
             HostTensor base = TestData.normal(rng, s, 1.0); HostTensor mask = HostTensor.allocate(DType.U8, s, t);
             HostTensor oldLogp = HostTensor.allocate(DType.F32, s, t); HostTensor sumPiSq = HostTensor.allocate(DType.F32, s, t);
             HostTensor isW = HostTensor.allocate(DType.F32, s, t)) {
            for (int i = 0; i < s * t; i++) { // optimal_token_baseline's: pi, a sum pi^2 >= pi^2, weights near 1
                double pi = rng.nextDouble(0.01, 0.99);
                oldLogp.setFloat(i, (float) Math.log(pi));
                sumPiSq.setFloat(i, (float) (pi * pi + (1 - pi) * (1 - pi) * rng.nextDouble()));
                isW.setFloat(i, (float) rng.nextDouble(0.5, 1.5));
            }
            for (int i = 0; i < s; i++) {
                ids.setLong(i, i / 5);
                int len = 1 + rng.nextInt(t);
                for (int j = 0; j < t; j++) {
                    mask.setLong(i * t + j, j < len ? 1 : 0);
                }
            }
            Npy.write(in.resolve("rewards.npy"), rewards);
            Npy.write(in.resolve("group_ids.npy"), ids);
            Npy.write(in.resolve("token_rewards.npy"), tokens);
            Npy.write(in.resolve("baseline_rewards.npy"), base);
            Npy.write(in.resolve("mask.npy"), mask);
            Npy.write(in.resolve("old_logp.npy"), oldLogp);
            Npy.write(in.resolve("sum_pi_squared.npy"), sumPiSq);
            Npy.write(in.resolve("rollout_is_weights.npy"), isW);
            for (String e : new String[] {"opo", "grpo_passk", "reinforce_plus_plus", "remax", "optimal_token_baseline"}) {
                Path out = dir.resolve("out-" + e);
                assertEquals(0, Main.run("op", "advantages", "--backend", "native", "--in", in.toString(), "--out", out.toString(),
                        "--param", "adv_estimator=" + e, "--param", "gamma=0.95", "--param", "norm_adv_by_std_in_grpo=false"));
                AdvantageEstimator.Config c = AdvantageEstimator.Config.of(AdvantageEstimator.parse(e)).withGamma(0.95f)
                        .withNormAdvByStd(false);
                try (GroupLayout groups = GroupLayout.of(ids); HostTensor want = HostTensor.allocate(DType.F32, s, t);
                     HostTensor wantRet = HostTensor.allocate(DType.F32, s, t); Arena arena = Arena.ofConfined()) {
                    AdvantageEstimator.Inputs inputs = c.estimator() == AdvantageEstimator.OPTIMAL_TOKEN_BASELINE
                            ? AdvantageEstimator.Inputs.optimalTokenBaseline(tokens, groups, mask, oldLogp, sumPiSq, isW)
                            : c.estimator().tokenRewards() ? AdvantageEstimator.Inputs.tokens(tokens, mask).withBaselineRewards(base)
                            : AdvantageEstimator.Inputs.grouped(rewards, groups, mask);
                    AdvantageEstimators.compute(new ReferenceBackend(), c, inputs, want, wantRet);
                    Compare.assertClose("op advantages " + e + " seed=" + seed, want, Npy.read(out.resolve("advantages.npy"), arena),
                            new Tolerance(1e-6, 1e-5));
                    Compare.assertClose("op advantages " + e + " returns seed=" + seed, wantRet,
                            Npy.read(out.resolve("returns.npy"), arena), new Tolerance(1e-6, 1e-5));
                }
            }
            Files.delete(in.resolve("sum_pi_squared.npy")); // optimal_token_baseline without it: refused, naming the file
            assertEquals(2, Main.run("op", "advantages", "--backend", "native", "--in", in.toString(), "--out",
                    dir.resolve("bad").toString(), "--param", "adv_estimator=optimal_token_baseline"));
        }
    }

    @Test
    void gaeOnFilesAgreesWithTheReference() throws Exception {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Path in = Files.createDirectories(dir.resolve("in"));
        try (HostTensor r = TestData.normal(rng, 8 * 50, 1.0); HostTensor v = TestData.normal(rng, 8 * 50, 1.0);
             HostTensor m = HostTensor.allocate(DType.U8, 8, 50)) {
            HostTensor r2 = HostTensor.wrap(r.segment(), DType.F32, 8, 50);
            HostTensor v2 = HostTensor.wrap(v.segment(), DType.F32, 8, 50);
            for (int i = 0; i < 400; i++) {
                m.setLong(i, rng.nextDouble() < 0.8 ? 1 : 0);
            }
            Npy.write(in.resolve("rewards.npy"), r2);
            Npy.write(in.resolve("values.npy"), v2);
            Npy.write(in.resolve("mask.npy"), m);
            assertEquals(0, Main.run("op", "gae", "--backend", "native", "--in", in.toString(), "--out",
                    dir.resolve("out").toString(), "--param", "gamma=0.99", "--param", "lam=0.95", "--param", "whiten=true"));
            try (HostTensor adv = HostTensor.allocate(DType.F32, 8, 50); HostTensor ret = HostTensor.allocate(DType.F32, 8, 50);
                 Arena arena = Arena.ofConfined()) {
                ReferenceBackend ref = new ReferenceBackend();
                ref.gae(new Gae.Config(0.99f, 0.95f), r2, v2, m, adv, ret);
                Compare.assertClose("op gae returns seed=" + seed, ret, Npy.read(dir.resolve("out/returns.npy"), arena),
                        new Tolerance(1e-6, 1e-5));
                ref.maskedWhiten(MaskedWhiten.Config.defaults(), adv, m, adv);
                Compare.assertClose("op gae whitened advantages seed=" + seed, adv,
                        Npy.read(dir.resolve("out/advantages.npy"), arena), new Tolerance(1e-6, 1e-5));
            }
        }
    }
}
