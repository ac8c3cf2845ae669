package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.ops.PolicyLoss.Aggregation;
import io.rlkernels.ops.PolicyLoss.Config;
import io.rlkernels.ops.PolicyLoss.KlEstimator;
import io.rlkernels.ops.PolicyLoss.LossType;
import io.rlkernels.ops.PolicyLoss.RatioLevel;
import io.rlkernels.ops.PolicyLoss.WeightLevel;
import io.rlkernels.ops.PolicyLoss.WeightMode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** verl's (and TRL's) key names to the policy loss's configuration, and the README's table of them. */
class PolicyLossKeysTest {

    private static Config of(String... pairs) {
        java.util.LinkedHashMap<String, String> m = new java.util.LinkedHashMap<>();
        for (int i = 0; i < pairs.length; i += 2) {
            m.put(pairs[i], pairs[i + 1]);
        }
        return PolicyLossKeys.config(m);
    }

    @Test
    void noKeysIsVerlsDefault() {
        Config c = of();
        assertEquals(LossType.PPO, c.loss());
        assertEquals(RatioLevel.TOKEN, c.ratio());
        assertEquals(0.2f, c.clipLow());
        assertEquals(0.2f, c.clipHigh());
        assertEquals(3f, c.dualClip(), "loss_mode=vanilla has the dual clip on at 3.0, as verl does");
        assertEquals(Aggregation.TOKEN_MEAN, c.aggregation());
        assertEquals(KlEstimator.NONE, c.kl(), "use_kl_loss is false by default");
        assertEquals(0f, c.entropyCoef());
        assertEquals(WeightLevel.NONE, c.rollout().level(), "no correction without rollout_is");
        assertTrue(c.rollout().rejection().isEmpty());
        assertEquals(1.0f, c.options().tauPos());
        assertEquals(1.05f, c.options().tauNeg());
    }

    @Test
    void lossModesSetWhatVerlFixes() {
        Config gspo = of("loss_mode", "gspo", "loss_agg_mode", "token-mean", "clip_ratio_low", "3e-4", "clip_ratio_high", "4e-4");
        assertEquals(RatioLevel.SEQUENCE_TOKEN, gspo.ratio(), "verl's GSPO gradient");
        assertEquals(Aggregation.SEQ_MEAN_TOKEN_MEAN, gspo.aggregation(), "verl fixes GSPO's aggregation");
        assertEquals(0f, gspo.dualClip());
        assertEquals(10, gspo.options().seqLogMax(), "verl caps GSPO's log-ratio at 10");
        assertEquals(3e-4f, gspo.clipLow());
        assertEquals(Aggregation.SEQ_MEAN_TOKEN_MEAN, of("loss_mode", "sapo").aggregation());
        assertEquals(LossType.SAPO, of("loss_mode", "sapo", "tau_pos", "2", "tau_neg", "3").loss());
        assertEquals(2f, of("loss_mode", "sapo", "tau_pos", "2").options().tauPos());
        assertEquals(LossType.REINFORCE, of("loss_mode", "gpg").loss());
        assertEquals(LossType.CISPO, of("loss_mode", "cispo").loss());
        assertEquals(0f, of("loss_mode", "cispo").dualClip(), "only vanilla has the dual clip");
        assertEquals(0.5f, of("loss_mode", "dro", "dro_beta", "0.5").options().droBeta());
        assertEquals(LossType.DPPO_KL, of("loss_mode", "dppo_kl").loss());
        assertEquals(3f, of("loss_mode", "dppo_tv").dualClip(), "DPPO truncates its detached ratio at clip_ratio_c");
        Config bypass = of("loss_mode", "bypass_mode", "loss_type", "reinforce", "rollout_is", "token");
        assertTrue(bypass.rollout().bypass());
        assertEquals(LossType.REINFORCE, bypass.loss());
        assertTrue(bypass.appliesWeights(), "bypass reinforce applies the weights");
        assertTrue(!of("loss_mode", "bypass_mode", "rollout_is", "token").appliesWeights(), "bypass ppo_clip: metrics only");
        Config luspo = of("loss_mode", "luspo");
        assertEquals(RatioLevel.SEQUENCE, luspo.ratio());
        assertEquals(Aggregation.SEQ_MEAN_TOKEN_SUM, luspo.aggregation());
        assertEquals(Aggregation.TOKEN_MEAN, of("loss_mode", "bnpo").aggregation());
        assertEquals(0f, of("loss_mode", "bnpo").dualClip());
    }

    @Test
    void theRolloutCorrectionKeys() {
        Config tis = of("rollout_is", "sequence", "rollout_is_threshold", "3.0", "rollout_is_batch_normalize", "true");
        assertEquals(WeightLevel.SEQUENCE, tis.rollout().level());
        assertEquals(WeightMode.TRUNCATE, tis.rollout().mode());
        assertEquals(3.0, tis.rollout().upper());
        assertTrue(tis.rollout().batchNormalize());
        Config icepop = of("rollout_is", "token", "rollout_is_threshold", "0.5_2");
        assertEquals(WeightMode.MASK, icepop.rollout().mode());
        assertEquals(0.5, icepop.rollout().lower());
        Config rs = of("rollout_rs", "token_k1,seq_max_k2", "rollout_rs_threshold", "0.5_2.0,0.1");
        assertEquals(2, rs.rollout().rejection().size());
        assertEquals(0.1, rs.rollout().rejection().get(1).upper());
        assertEquals(2.0, of("rollout_is", "token").rollout().upper(), "verl's default threshold");
        assertEquals(1.5f, of("delta", "1.5").options().delta());
        assertEquals(0.2, of("off_policy_mask_threshold", "0.2").options().offPolicyMaskThreshold(), 1e-7);
        assertEquals(RatioLevel.SEQUENCE, of("importance_sampling_level", "sequence").ratio());
    }

    @Test
    void klKeysAndOurAliases() {
        Config k3 = of("use_kl_loss", "true");
        assertEquals(KlEstimator.K3, k3.kl(), "verl's default kl_loss_type is low_var_kl");
        assertEquals(0.001f, k3.klCoef());
        assertEquals(KlEstimator.K1, of("use_kl_loss", "true", "kl_loss_type", "kl").kl());
        assertEquals(KlEstimator.K2, of("use_kl_loss", "true", "kl_loss_type", "mse").kl());
        assertEquals(KlEstimator.K3_PLUS, of("use_kl_loss", "true", "kl_loss_type", "low_var_kl+").kl());
        assertEquals(KlEstimator.K1_PLUS, of("use_kl_loss", "true", "kl_loss_type", "k1+").kl());
        assertEquals(KlEstimator.ABS, of("kl", "abs", "kl_coef", "0.1").kl(), "the alias kl turns the term on");
        assertEquals(KlEstimator.NONE, of("kl", "none").kl());
        Config old = of("loss", "ppo", "clip_low", "0.1", "clip_high", "0.3", "dual_clip", "0", "agg", "seq-mean-token-sum",
                "entropy_coef", "0.01", "ratio", "sequence");
        assertEquals(0.1f, old.clipLow());
        assertEquals(0.3f, old.clipHigh());
        assertEquals(0f, old.dualClip());
        assertEquals(Aggregation.SEQ_MEAN_TOKEN_SUM, old.aggregation());
        assertEquals(0.01f, old.entropyCoef());
        assertEquals(RatioLevel.SEQUENCE, old.ratio());
        assertEquals(LossType.REINFORCE, of("loss", "reinforce").loss());
        assertEquals(12.0, of("loss_agg_mode", "seq-mean-token-sum-norm", "loss_scale_factor", "12").denominator());
    }

    @Test
    void badKeysAndValuesAreRefusedByName() {
        PolicyLossTest.assertRejected("policy loss keys", () -> of("clip_ratio_lo", "0.2"));
        PolicyLossTest.assertRejected("clip_ratio_low", () -> of("clip_ratio_low", "0.2", "clip_low", "0.3"));
        PolicyLossTest.assertRejected("use_kl_loss", () -> of("use_kl_loss", "yes"));
        PolicyLossTest.assertRejected("clip_ratio", () -> of("clip_ratio", "1e40"));
        PolicyLossTest.assertRejected("loss_mode", () -> of("loss_mode", "grpo"));
        assertEquals(LossType.GEO_MEAN, of("loss_mode", "geo_mean").loss());
        assertEquals(Aggregation.SEQ_MEAN_TOKEN_MEAN, of("loss_mode", "geo_mean").aggregation());
        assertEquals(4f, of("loss_mode", "vespo", "vespo_k_neg", "4").options().vespoKNeg());
        assertEquals(LossType.CLIP_COV, of("loss_mode", "clip_cov").loss());
        assertEquals(2e-4, of("loss_mode", "clip_cov").selection().covRatio(), 1e-12);
        assertEquals(0.01, of("loss_mode", "kl_cov", "kl_cov_ratio", "0.01").selection().covRatio(), 1e-12);
        assertEquals(0.2, of("top_entropy_quantile", "0.2").selection().topEntropyQuantile(), 1e-12);
        PolicyLossTest.assertRejected("top_entropy_quantile", () -> of("top_entropy_quantile", "1.5"));
        PolicyLossTest.assertRejected("seed", () -> of("seed", "-1"));
        PolicyLossTest.assertRejected("loss_type", () -> of("loss_mode", "bypass_mode", "loss_type", "ppo"));
        PolicyLossTest.assertRejected("kl_loss_type", () -> of("use_kl_loss", "true", "kl_loss_type", "full"));
        PolicyLossTest.assertRejected("rollout_is_threshold", () -> of("rollout_is", "token", "rollout_is_threshold", "0.9"));
        PolicyLossTest.assertRejected("rollout_is_threshold", () -> of("rollout_is", "token", "rollout_is_threshold", "2_0.5"));
        PolicyLossTest.assertRejected("rollout_rs_threshold", () -> of("rollout_rs", "token_k2"));
        PolicyLossTest.assertRejected("rollout_is", () -> of("rollout_is", "none"));
        PolicyLossTest.assertRejected("clipLow", () -> of("clip_ratio_low", "1.5"));
        PolicyLossTest.assertRejected("delta", () -> of("delta", "0.5"));
    }

    /** The README's table lists every key under its name, with its aliases and default: the table cannot drift from the code. */
    @Test
    void theReadmeTableListsEveryKey() throws Exception {
        Path readme = null;
        for (Path dir = Path.of("").toAbsolutePath(); dir != null && readme == null; dir = dir.getParent()) {
            if (Files.isRegularFile(dir.resolve("README.md")) && Files.isDirectory(dir.resolve("native"))) {
                readme = dir.resolve("README.md");
            }
        }
        String text = Files.readString(readme);
        for (PolicyLossKeys.Key k : PolicyLossKeys.KEYS) {
            String row = "| `" + k.name() + "` |";
            int at = text.indexOf(row);
            assertTrue(at >= 0, "README.md has a row for " + k.name() + " (" + row + ")");
            String line = text.substring(at, text.indexOf('\n', at));
            assertTrue(line.contains("`" + k.fallback() + "`"), k.name() + "'s default " + k.fallback() + " in: " + line);
            for (String alias : k.aliases()) {
                assertTrue(line.contains("`" + alias + "`"), k.name() + "'s alias " + alias + " in: " + line);
            }
        }
        Map<String, String> none = Map.of();
        assertEquals(PolicyLoss.Config.defaults().withDualClip(3f).withSelection(PolicyLoss.Selection.none().withCovariance(2e-4, 1, 5,
                0.1f)), PolicyLossKeys.config(none), "no keys: verl's defaults");
    }
}
