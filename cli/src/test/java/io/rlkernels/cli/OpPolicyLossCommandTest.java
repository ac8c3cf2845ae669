package io.rlkernels.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.Compare;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code rlkernels op policy_loss} on .npy files against the f64 reference. */
class OpPolicyLossCommandTest {
    @TempDir
    Path dir;

    /** verl's keys, the rollout correction on, rollout_logp.npy read: the op's result and verl's metric names. */
    @Test
    void verlKeysWithTheRolloutCorrectionOnFiles() throws Exception {
        Assumptions.assumeTrue(BackendUnderTest.selected("native"), "rlk.test.backends leaves native out");
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Path in = Files.createDirectories(dir.resolve("in"));
        int n = 240;
        try (HostTensor logp = HostTensor.allocate(DType.F32, n); HostTensor old = HostTensor.allocate(DType.F32, n);
             HostTensor adv = HostTensor.allocate(DType.F32, n); HostTensor rollout = HostTensor.allocate(DType.F32, n);
             HostTensor mask = HostTensor.allocate(DType.F32, n); HostTensor ids = HostTensor.allocate(DType.I32, n)) {
            for (int i = 0; i < n; i++) {
                float lp = (float) (-Math.abs(rng.nextGaussian()) - 0.1);
                logp.setFloat(i, lp);
                old.setFloat(i, (float) (lp + 0.2 * rng.nextGaussian()));
                // every 40th token a mismatch of e (> 1.6) and in the mask, so that the rejection binds whatever the seed
                boolean mismatched = i % 40 == 5;
                rollout.setFloat(i, (float) (old.getFloat(i) + (mismatched ? -1.0 : 0.2 * rng.nextGaussian())));
                adv.setFloat(i, (float) rng.nextGaussian());
                mask.setFloat(i, mismatched || rng.nextDouble() < 0.9 ? 1 : 0);
                ids.setLong(i, i / 20);
            }
            Npy.write(in.resolve("logp.npy"), logp);
            Npy.write(in.resolve("old_logp.npy"), old);
            Npy.write(in.resolve("advantages.npy"), adv);
            Npy.write(in.resolve("rollout_logp.npy"), rollout);
            Npy.write(in.resolve("mask.npy"), mask);
            Npy.write(in.resolve("seq_ids.npy"), ids);
            Path out = dir.resolve("out");
            assertEquals(0, Main.run("op", "policy_loss", "--backend", "native", "--in", in.toString(), "--out", out.toString(),
                    "--param", "loss_mode=vanilla", "--param", "clip_ratio_high=0.28", "--param", "loss_agg_mode=seq-mean-token-sum",
                    "--param", "rollout_is=sequence", "--param", "rollout_is_threshold=2.0", "--param", "rollout_is_batch_normalize=true",
                    "--param", "rollout_rs=token_k1", "--param", "rollout_rs_threshold=0.6_1.6"));
            PolicyLoss.Config c = PolicyLoss.Config.defaults().withClip(0.2f, 0.28f).withDualClip(3f)
                    .withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_SUM)
                    .withRollout(PolicyLoss.RolloutCorrection.truncated(PolicyLoss.WeightLevel.SEQUENCE, 2.0)
                            .withBatchNormalize(true, Double.NaN)
                            .withRejection(java.util.List.of(new PolicyLoss.Rejection(PolicyLoss.Rejection.Option.TOKEN_K1, 0.6, 1.6))));
            try (SequenceLayout layout = SequenceLayout.ofSeqIds(ids); HostTensor want = HostTensor.allocate(DType.F32, n);
                 Arena arena = Arena.ofConfined()) {
                PolicyLoss.Stats s = new ReferenceBackend().policyLoss(c,
                        new PolicyLoss.Inputs(logp, old, adv, mask, layout, null, null, rollout), want, null);
                Compare.assertClose("op policy_loss grad seed=" + seed, want, Npy.read(out.resolve("grad_logp.npy"), arena),
                        new Tolerance(1e-7, 1e-5));
                java.util.Map<String, Object> m = io.rlkernels.testing.StrictJson.object(Files.readString(out.resolve("metrics.json")));
                Tolerance.F64_STATISTIC.assertClose(s.rolloutIsMean(), ((Number) m.get("rollout_corr/rollout_is_mean")).doubleValue(),
                        "rollout_is_mean");
                Tolerance.F64_STATISTIC.assertClose(s.rolloutRsMaskedFraction(),
                        ((Number) m.get("rollout_corr/rollout_rs_masked_fraction")).doubleValue(), "rollout_rs_masked_fraction");
                Tolerance.F64_STATISTIC.assertClose(s.rolloutK3Kl(), ((Number) m.get("rollout_corr/k3_kl")).doubleValue(), "k3_kl");
                Tolerance.F64_STATISTIC.assertClose(s.rcNormalizer(),
                        ((Number) m.get("rollout_corr/rollout_is_batch_norm_factor")).doubleValue(), "batch_norm_factor");
                for (String key : new String[] {"actor/pg_clipfrac", "actor/ppo_kl", "actor/pg_clipfrac_lower", "rollout_corr/chi2_seq",
                    "rollout_corr/rollout_is_eff_sample_size", "rc_weight_sum", "rc_norm_count"}) {
                    assertTrue(m.containsKey(key), key + " in " + m.keySet());
                }
                assertTrue(s.rcRejectedTokens() > 0, "the rejection binds");
            }
            // rollout_is without rollout_logp.npy: refused, naming the input
            Files.delete(in.resolve("rollout_logp.npy"));
            assertEquals(2, Main.run("op", "policy_loss", "--backend", "native", "--in", in.toString(), "--out",
                    dir.resolve("out2").toString(), "--param", "rollout_is=token"));
        }
    }

    @Test
    void gspoWithKlOnFilesAgreesWithTheReference() throws Exception {
        Assumptions.assumeTrue(BackendUnderTest.selected("native"), "rlk.test.backends leaves native out");
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Path in = Files.createDirectories(dir.resolve("in"));
        int n = 300;
        try (HostTensor logp = HostTensor.allocate(DType.F32, n); HostTensor old = HostTensor.allocate(DType.F32, n);
             HostTensor adv = HostTensor.allocate(DType.F32, n); HostTensor ref = HostTensor.allocate(DType.F32, n);
             HostTensor mask = HostTensor.allocate(DType.U8, n); HostTensor ids = HostTensor.allocate(DType.I32, n)) {
            for (int i = 0; i < n; i++) {
                float lp = (float) (-Math.abs(rng.nextGaussian()) - 0.1);
                logp.setFloat(i, lp);
                old.setFloat(i, (float) (lp + 0.2 * rng.nextGaussian()));
                ref.setFloat(i, (float) (lp + 0.3 * rng.nextGaussian()));
                adv.setFloat(i, (float) (i / 30 % 2 == 0 ? 1 : -1) * (1 + i / 30));
                mask.setLong(i, rng.nextDouble() < 0.9 ? 1 : 0);
                ids.setLong(i, i / 30); // ten sequences of 30 tokens
            }
            Npy.write(in.resolve("logp.npy"), logp);
            Npy.write(in.resolve("old_logp.npy"), old);
            Npy.write(in.resolve("advantages.npy"), adv);
            Npy.write(in.resolve("ref_logp.npy"), ref);
            Npy.write(in.resolve("mask.npy"), mask);
            Npy.write(in.resolve("seq_ids.npy"), ids);
            Path out = dir.resolve("out");
            assertEquals(0, Main.run("op", "policy_loss", "--backend", "native", "--in", in.toString(), "--out", out.toString(),
                    "--param", "ratio=sequence", "--param", "agg=seq-mean-token-mean", "--param", "clip_low=0.0003",
                    "--param", "clip_high=0.0004", "--param", "kl=k3", "--param", "kl_coef=0.01", "--param", "denom=10"));
            // this library's earlier names, now aliases of verl's keys, with verl's defaults (the dual clip at 3)
            PolicyLoss.Config c = PolicyLoss.Config.defaults().withRatio(PolicyLoss.RatioLevel.SEQUENCE).withDualClip(3f)
                    .withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_MEAN).withClip(0.0003f, 0.0004f)
                    .withKl(PolicyLoss.KlEstimator.K3, 0.01f).withDenominator(10);
            try (SequenceLayout layout = SequenceLayout.ofSeqIds(ids); HostTensor want = HostTensor.allocate(DType.F32, n);
                 Arena arena = Arena.ofConfined()) {
                PolicyLoss.Stats s = new ReferenceBackend().policyLoss(c,
                        new PolicyLoss.Inputs(logp, old, adv, mask, layout, ref, null), want, null);
                Compare.assertClose("op policy_loss grad seed=" + seed, want, Npy.read(out.resolve("grad_logp.npy"), arena),
                        new Tolerance(1e-7, 1e-5));
                Tolerance.F32_ROUNDED.assertClose(s.loss(), Npy.read(out.resolve("loss.npy"), arena).getFloat(0), "loss.npy");
                String metrics = Files.readString(out.resolve("metrics.json"));
                java.util.Map<String, Object> parsed = io.rlkernels.testing.StrictJson.object(metrics);
                assertEquals((long) s.tokens(), parsed.get("tokens"), metrics);
                for (String key : new String[] {"\"loss\"", "\"clip_fraction_high\"", "\"clip_fraction_low\"", "\"clip_fraction_dual\"",
                    "\"approx_kl\"", "\"ratio_min\"", "\"ratio_mean\"", "\"ratio_max\"", "\"tokens\": " + (long) s.tokens(),
                    "\"sequences\": 10", "\"denominator\": 10"}) {
                    assertTrue(metrics.contains(key), key + " in " + metrics);
                }
            }
        }
    }
}
