package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.ops.PolicyLoss.Aggregation;
import io.rlkernels.ops.PolicyLoss.Config;
import io.rlkernels.ops.PolicyLoss.LossType;
import io.rlkernels.ops.PolicyLoss.RatioLevel;
import io.rlkernels.ops.PolicyLoss.Rejection;
import io.rlkernels.ops.PolicyLoss.RolloutCorrection;
import io.rlkernels.ops.PolicyLoss.Stats;
import io.rlkernels.ops.PolicyLoss.WeightLevel;
import io.rlkernels.ops.PolicyLossTest.Batch;
import io.rlkernels.ops.PolicyLossTest.Result;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.Compare;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The rollout correction inside the policy-loss op (ARCHITECTURE §5.3, PolicyLoss.RolloutCorrection)
 * on every backend: against the reference for every weight level, threshold mode, normalisation and
 * rejection option; against closed forms (the weight multiplies the policy-gradient term only;
 * rejection is the loss on the shrunk mask); micro-batches with the global denominator and weight
 * mean; bypass mode; bad thresholds and missing inputs.
 */
class RolloutCorrectionTest {

    /** Criteria that bind on the test batches (d ~ N(0, 0.3) per token). */
    static final List<List<Rejection>> REJECTIONS = List.of(
            List.of(),
            Rejection.parse("token_k1", "0.7_1.4"),
            Rejection.parse("token_k2,token_k3", "0.02,0.03"),
            Rejection.parse("seq_sum_k1", "0.2_3"),
            Rejection.parse("seq_sum_k2,seq_sum_k3", "0.4"),
            Rejection.parse("seq_mean_k1,seq_mean_k2", "1.15,0.05"),
            Rejection.parse("seq_mean_k3", "0.05"),
            Rejection.parse("seq_max_k2,seq_max_k3,token_k1", "0.15,0.2,2"));

    static Stream<Arguments> backendLevel() {
        List<Arguments> out = new ArrayList<>();
        BackendUnderTest.fast().forEach(b -> {
            for (WeightLevel l : WeightLevel.values()) {
                out.add(Arguments.of(b, l));
            }
        });
        return out.stream();
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("backendLevel")
    void everyCorrectionMatchesTheReference(BackendUnderTest bt, WeightLevel level) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open()) {
            for (int r = 0; r < REJECTIONS.size(); r++) {
                for (int k = 0; k < 8; k++) {
                    // the two-way options by the combination's index: mask or truncation, normalised or
                    // not, bypass or not, walked through by k; the loss and ratio by (r, k)
                    boolean mask = k % 2 == 1;
                    boolean normalize = k / 2 % 2 == 1;
                    boolean bypass = k / 4 % 2 == 1;
                    LossType[] losses = bypass ? new LossType[] {LossType.PPO, LossType.REINFORCE} : LossType.values();
                    LossType loss = losses[(r * 8 + k) % losses.length]; // every loss, across the (r, k) grid
                    RatioLevel ratio = RatioLevel.values()[(r + k / 2) % RatioLevel.values().length];
                    Aggregation agg = Aggregation.values()[(r + k) % Aggregation.values().length];
                    if (loss == LossType.CLIP_COV || loss == LossType.KL_COV) {
                        ratio = RatioLevel.TOKEN;
                    }
                    if (loss == LossType.GEO_MEAN || loss == LossType.VESPO) { // their sequence term is their own
                        ratio = RatioLevel.TOKEN;
                        agg = loss == LossType.GEO_MEAN && !agg.perSequence() ? Aggregation.SEQ_MEAN_TOKEN_MEAN : agg;
                        if (loss == LossType.VESPO && level != WeightLevel.NONE && level != WeightLevel.TOKEN) {
                            continue; // vespo takes token weights only
                        }
                    }
                    RolloutCorrection rc = RolloutCorrection.none().withWeights(level).withBatchNormalize(normalize, Double.NaN)
                            .withRejection(REJECTIONS.get(r)).withBypass(bypass);
                    rc = mask ? rc.withMask(0.6, 1.5) : rc.withTruncation(1.5);
                    Config c = Config.defaults().withLoss(loss).withRatio(ratio).withAggregation(agg).withClip(0.2f, 0.28f)
                            .withDualClip(3f).withKl(PolicyLoss.KlEstimator.K3, 0.05f).withEntropyCoef(0.01f).withRollout(rc);
                    String ctx = bt + " " + level + " rs=" + REJECTIONS.get(r) + " mask=" + mask + " norm=" + normalize + " bypass="
                            + bypass + " " + loss + " " + ratio + " " + agg + " seed=" + seed;
                    try (Batch batch = new Batch(rng, 13, 70, k % 3 == 0 ? DType.U8 : DType.F32, ratio == RatioLevel.SEQUENCE)) {
                        PolicyLoss.Inputs in = bypass ? batch.inputs() : batch.withRollout();
                        try (Result want = PolicyLossTest.run(new ReferenceBackend(), c, in); Result got = PolicyLossTest.run(b, c, in)) {
                            Compare.assertClose(ctx + " gradLogp", want.grad(), got.grad(), Tolerance.F32_OUTPUT);
                            Compare.assertClose(ctx + " gradEntropy", want.gradEntropy(), got.gradEntropy(), Tolerance.F32_OUTPUT);
                            PolicyLossTest.assertStatsClose(ctx, want.stats(), got.stats());
                            assertTrue(want.stats().rcTokens() > 0, ctx + ": the correction saw the tokens");
                        }
                    }
                }
            }
        }
    }

    /**
     * Token-level TIS on a loss whose tokens are independent (token ratio, fixed denominator):
     * each token's gradient is its weight min(e^(old - rollout), threshold) times the gradient
     * without the correction (the weight is detached), the KL and entropy terms left unweighted.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void theDetachedWeightMultipliesThePolicyGradientTermOnly(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        double threshold = 1.2;
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 6, 30, DType.F32, false)) {
            for (LossType loss : LossType.values()) {
                if (loss == LossType.GEO_MEAN || loss == LossType.VESPO || loss == LossType.CLIP_COV) {
                    continue; // a sequence's weight (geo_mean), inside phi (vespo), a selection by logp (clip_cov): the reference test's
                }
                Config plain = Config.defaults().withLoss(loss).withDualClip(3f).withDenominator(50).withEntropyCoef(0.02f);
                Config corrected = plain.withRollout(RolloutCorrection.truncated(WeightLevel.TOKEN, threshold));
                Config klOnly = plain.withKl(PolicyLoss.KlEstimator.K2, 0.3f);
                try (Result without = PolicyLossTest.run(b, plain, batch.inputs());
                     Result with = PolicyLossTest.run(b, corrected, batch.withRollout());
                     Result klWithout = PolicyLossTest.run(b, klOnly, batch.inputs());
                     Result klWith = PolicyLossTest.run(b, klOnly.withRollout(corrected.rollout()), batch.withRollout())) {
                    for (int i = 0; i < batch.n; i++) {
                        String ctx = bt + " " + loss + " token " + i + " seed=" + seed;
                        double w = Math.min(Math.exp((double) batch.old.getFloat(i) - batch.rollout.getFloat(i)), threshold);
                        // the gradient without the entropy term (which has no logp dependence) is the pg term's
                        Tolerance.F32_OUTPUT.assertClose(w * without.grad().getFloat(i), with.grad().getFloat(i), ctx);
                        // the KL term's gradient is the same with and without weights
                        double klGrad = klWithout.grad().getFloat(i) - without.grad().getFloat(i);
                        Tolerance.F32_OUTPUT.assertClose(w * without.grad().getFloat(i) + klGrad, klWith.grad().getFloat(i), ctx + " kl");
                        assertEquals(without.gradEntropy().getFloat(i), with.gradEntropy().getFloat(i), ctx + " entropy");
                    }
                    Stats s = with.stats();
                    assertEquals(without.stats().tokens(), s.tokens(), bt + " " + loss + ": no rejection, all tokens");
                    assertEquals(1.0, s.rcNormalizer(), "no normalisation");
                }
            }
        }
    }

    /** Rejection is the loss on the mask it shrinks: the same call without rejection on that mask. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void rejectionIsTheLossOnTheShrunkMask(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 12, 40, DType.F32, true)) {
            // token_k1 0.7_1.4 on -d and seq_mean_k3 0.05, written out here
            float[] shrunk = batch.mask.toFloatArray();
            int at = 0;
            int rejectedSeqs = 0;
            for (int len : batch.lengths) {
                double k3 = 0;
                double count = 0;
                for (int i = at; i < at + len; i++) {
                    if (shrunk[i] != 0) {
                        double d = (double) batch.old.getFloat(i) - batch.rollout.getFloat(i);
                        k3 += Math.exp(d) - 1 - d;
                        count++;
                    }
                }
                boolean seqKept = count == 0 || k3 / count <= 0.05;
                boolean anyRejected = false;
                for (int i = at; i < at + len; i++) {
                    if (shrunk[i] == 0) {
                        continue;
                    }
                    double d = (double) batch.old.getFloat(i) - batch.rollout.getFloat(i);
                    if (!seqKept || -d < Math.log(0.7) || -d > Math.log(1.4)) {
                        shrunk[i] = 0;
                        anyRejected = true;
                    }
                }
                rejectedSeqs += anyRejected ? 1 : 0;
                at += len;
            }
            RolloutCorrection rc = RolloutCorrection.none().withRejection(Rejection.parse("token_k1,seq_mean_k3", "0.7_1.4,0.05"));
            for (Aggregation agg : Aggregation.values()) {
                Config c = Config.defaults().withRatio(RatioLevel.SEQUENCE).withAggregation(agg).withDualClip(3f)
                        .withKl(PolicyLoss.KlEstimator.K1, 0.1f).withEntropyCoef(0.01f);
                try (HostTensor mask = HostTensor.of(shrunk);
                     Result want = PolicyLossTest.run(b, c, new PolicyLoss.Inputs(batch.logp, batch.old, batch.adv, mask,
                             batch.layout, batch.ref, batch.entropy));
                     Result got = PolicyLossTest.run(b, c.withRollout(rc), batch.withRollout())) {
                    String ctx = bt + " " + agg + " seed=" + seed;
                    Compare.assertClose(ctx, want.grad(), got.grad(), Tolerance.F32_OUTPUT);
                    Tolerance.F64_STATISTIC.assertClose(want.stats().loss(), got.stats().loss(), ctx + " loss");
                    assertEquals(want.stats().tokens(), got.stats().tokens(), ctx + " tokens");
                    assertEquals(want.stats().denominator(), got.stats().denominator(), ctx + " the denominator shrinks too");
                    assertEquals(got.stats().rcTokens() - got.stats().tokens(), got.stats().rcRejectedTokens(), ctx + " rejected");
                    assertEquals(rejectedSeqs, got.stats().rcRejectedSequences(), ctx + " sequences with a rejected token");
                    assertTrue(got.stats().rcRejectedTokens() > 0, ctx + ": the criteria bind");
                }
            }
        }
    }

    /** The metrics, against their definitions over the tokens the mask keeps. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void theMetricsAreVerlsDefinitions(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        double threshold = 1.3;
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 9, 50, DType.F32, false)) {
            Config c = Config.defaults().withRollout(RolloutCorrection.truncated(WeightLevel.TOKEN, threshold)
                    .withBatchNormalize(true, Double.NaN));
            double n = 0;
            double wSum = 0;
            double high = 0;
            double low = 0;
            double applied = 0;
            double kl = 0;
            double k3 = 0;
            double chi2 = 0;
            double wMax = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < batch.n; i++) {
                if (batch.mask.getFloat(i) == 0) {
                    continue;
                }
                double d = (double) batch.old.getFloat(i) - batch.rollout.getFloat(i);
                double w = Math.exp(d);
                n++;
                wSum += w;
                high += w > threshold ? 1 : 0;
                low += w < 1 / threshold ? 1 : 0;
                applied += Math.min(w, threshold);
                kl += -d;
                k3 += Math.exp(d) - d - 1;
                chi2 += w * w;
                wMax = Math.max(wMax, w);
            }
            try (Result r = PolicyLossTest.run(b, c, batch.withRollout())) {
                Stats s = r.stats();
                String ctx = bt + " seed=" + seed;
                Tolerance.F64_STATISTIC.assertClose(wSum / n, s.rolloutIsMean(), ctx + " rollout_is_mean");
                Tolerance.F64_STATISTIC.assertClose(high / n, s.rolloutIsFractionHigh(WeightLevel.TOKEN), ctx + " fraction_high");
                Tolerance.F64_STATISTIC.assertClose(low / n, s.rolloutIsFractionLow(WeightLevel.TOKEN), ctx + " fraction_low");
                Tolerance.F64_STATISTIC.assertClose(applied / n, s.rolloutIsBatchMean(), ctx + " batch mean");
                Tolerance.F64_STATISTIC.assertClose(applied / n, s.rcNormalizer(), ctx + " the normaliser used");
                Tolerance.F64_STATISTIC.assertClose(kl / n, s.rolloutKl(), ctx + " kl");
                Tolerance.F64_STATISTIC.assertClose(k3 / n, s.rolloutK3Kl(), ctx + " k3_kl");
                Tolerance.F64_STATISTIC.assertClose(chi2 / n - 1, s.rolloutChi2Token(), ctx + " chi2_token");
                Tolerance.F64_STATISTIC.assertClose(wMax, s.rcWeightMax(), ctx + " rollout_is_max");
                assertTrue(high > 0 && low > 0, ctx + ": the thresholds bind");
            }
        }
    }

    /** Micro-batches with the whole batch's denominator and weight mean add up to the whole batch. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void microBatchesWithTheGlobalStatisticsSumToTheWholeBatch(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open(); Batch whole = new Batch(rng, 17, 50, DType.F32, true)) {
            for (WeightLevel level : new WeightLevel[] {WeightLevel.TOKEN, WeightLevel.SEQUENCE, WeightLevel.GEOMETRIC}) {
                RolloutCorrection rc = RolloutCorrection.truncated(level, 2.0).withBatchNormalize(true, Double.NaN)
                        .withRejection(Rejection.parse("token_k1,seq_max_k2", "0.6_1.6,0.3"));
                Config implied = Config.defaults().withAggregation(Aggregation.SEQ_MEAN_TOKEN_MEAN).withDualClip(3f).withRollout(rc);
                try (Result full = PolicyLossTest.run(b, implied, whole.withRollout())) {
                    Stats f = full.stats();
                    Config global = implied.withDenominator(f.denominator())
                            .withRollout(rc.withBatchNormalize(true, f.rolloutIsBatchMean()));
                    // (the mean the op divided by and the one its statistics report are summed apart: equal to rounding)
                    Tolerance.F64_STATISTIC.assertClose(f.rolloutIsBatchMean(), f.rcNormalizer(), bt + ": the batch's own mean was the normaliser");
                    for (int k : new int[] {2, 5}) {
                        String ctx = bt + " " + level + " k=" + k + " seed=" + seed;
                        Stats sum = null;
                        float[] grads = new float[whole.n];
                        int at = 0;
                        for (Batch part : PolicyLossTest.split(whole, k)) {
                            try (part; Result r = PolicyLossTest.run(b, global, part.withRollout())) {
                                sum = sum == null ? r.stats() : sum.merge(r.stats());
                                float[] g = r.grad().toFloatArray();
                                System.arraycopy(g, 0, grads, at, g.length);
                                at += g.length;
                            }
                        }
                        Tolerance.F64_REGROUPED.assertClose(f.loss(), sum.loss(), ctx + " loss");
                        assertEquals(f.tokens(), sum.tokens(), ctx + " tokens");
                        assertEquals(f.rcRejectedTokens(), sum.rcRejectedTokens(), ctx + " rejected");
                        Tolerance.F64_REGROUPED.assertClose(f.rcWeightSum(), sum.rcWeightSum(), ctx + " weight sum");
                        assertEquals(f.rcWeightMax(), sum.rcWeightMax(), ctx + " weight max");
                        assertEquals(f.rcWeightMin(), sum.rcWeightMin(), ctx + " weight min");
                        Tolerance.F64_REGROUPED.assertClose(f.rolloutIsBatchMean(), sum.rolloutIsBatchMean(), ctx + " the mean merges");
                        float[] want = full.grad().toFloatArray();
                        for (int i = 0; i < whole.n; i++) {
                            Tolerance.F64_REGROUPED.assertClose(want[i], grads[i], ctx + " grad[" + i + "]");
                        }
                    }
                }
            }
        }
    }

    /**
     * Bypass mode: old is the rollout policy. With PPO the ratio to it is the correction (the weights
     * are metrics only: the loss is plain PPO's on the mask rejection leaves); with REINFORCE the
     * weights e^(logp - old), detached, multiply -A logp.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void bypassModeWeighsByTheCurrentPolicyAgainstTheRollout(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 6, 30, DType.F32, false)) {
            RolloutCorrection rc = RolloutCorrection.truncated(WeightLevel.TOKEN, 1.25).withBypass(true);
            Config ppo = Config.defaults().withDualClip(3f).withDenominator(40);
            try (Result plain = PolicyLossTest.run(b, ppo, batch.inputs());
                 Result bypass = PolicyLossTest.run(b, ppo.withRollout(rc), batch.inputs())) {
                assertArrayEquals(plain.grad().toFloatArray(), bypass.grad().toFloatArray(), bt + " ppo: weights not applied, seed=" + seed);
                assertEquals(plain.stats().loss(), bypass.stats().loss(), bt + " ppo loss");
                assertTrue(bypass.stats().rcWeightSum() > 0, bt + " the weights are still measured");
            }
            Config reinforce = Config.defaults().withLoss(LossType.REINFORCE).withDenominator(40);
            try (Result got = PolicyLossTest.run(b, reinforce.withRollout(rc), batch.inputs())) {
                for (int i = 0; i < batch.n; i++) {
                    double w = Math.min(Math.exp((double) batch.logp.getFloat(i) - batch.old.getFloat(i)), 1.25);
                    double want = batch.mask.getFloat(i) == 0 ? 0 : -w * batch.adv.getFloat(i) / 40;
                    Tolerance.F32_CLOSED_FORM.assertClose(want, got.grad().getFloat(i), bt + " reinforce token " + i + " seed=" + seed);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void theSameInputGivesBitwiseTheSameOutput(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Config c = Config.defaults().withRatio(RatioLevel.SEQUENCE).withAggregation(Aggregation.SEQ_MEAN_TOKEN_MEAN)
                .withRollout(RolloutCorrection.truncated(WeightLevel.GEOMETRIC, 1.5).withBatchNormalize(true, Double.NaN)
                        .withRejection(Rejection.parse("seq_mean_k3,token_k2", "0.05,0.1")));
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 300, 200, DType.U8, true);
             Result first = PolicyLossTest.run(b, c, batch.withRollout()); Result second = PolicyLossTest.run(b, c, batch.withRollout())) {
            assertArrayEquals(first.grad().toFloatArray(), second.grad().toFloatArray(), bt + " seed=" + seed);
            assertEquals(first.stats(), second.stats(), bt + " seed=" + seed);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void badThresholdsAndMissingInputsAreRefused(BackendUnderTest bt) {
        SplittableRandom rng = new SplittableRandom(3);
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 3, 6, DType.F32, false); Tensor grad = b.allocate(DType.F32, batch.n)) {
            Config token = Config.defaults().withRollout(RolloutCorrection.truncated(WeightLevel.TOKEN, 2));
            PolicyLossTest.assertRejected("rolloutLogp", () -> b.policyLoss(token, batch.inputs(), grad, null));
            PolicyLossTest.assertRejected("rolloutLogp", () -> b.policyLoss(token.withRollout(token.rollout().withBypass(true)), batch.withRollout(), grad,
                    null));
            Config perSequence = Config.defaults().withRollout(RolloutCorrection.truncated(WeightLevel.SEQUENCE, 2));
            PolicyLossTest.assertRejected("sequences", () -> b.policyLoss(perSequence, batch.withRollout().withSequences(null), grad, null));
            try (HostTensor shortRollout = HostTensor.allocate(DType.F32, batch.n - 1)) {
                PolicyLossTest.assertRejected("rolloutLogp", () -> b.policyLoss(token, batch.inputs().withRolloutLogp(shortRollout), grad, null));
            }
        }
        PolicyLossTest.assertRejected("rollout_is_threshold", () -> RolloutCorrection.truncated(WeightLevel.TOKEN, 0.8));
        PolicyLossTest.assertRejected("rollout_is_threshold", () -> RolloutCorrection.none().withWeights(WeightLevel.TOKEN).withMask(2, 0.5));
        PolicyLossTest.assertRejected("rollout_is_threshold", () -> RolloutCorrection.none().withWeights(WeightLevel.TOKEN).withThreshold("1.5_x"));
        PolicyLossTest.assertRejected("rollout_is_normalizer", () -> RolloutCorrection.none().withBatchNormalize(true, -1));
        PolicyLossTest.assertRejected("rollout_rs", () -> Rejection.parse("token_k4", "2"));
        PolicyLossTest.assertRejected("rollout_rs_threshold", () -> Rejection.parse("token_k2", "0.5_2"));
        PolicyLossTest.assertRejected("rollout_rs_threshold", () -> Rejection.parse("token_k1,seq_sum_k2", "1,2,3"));
        PolicyLossTest.assertRejected("rollout_rs_threshold", () -> Rejection.parse("token_k1", "2_0.5"));
        PolicyLossTest.assertRejected("rollout_rs_threshold", () -> Rejection.parse("seq_max_k3", null));
        PolicyLossTest.assertRejected("rollout.bypass", () -> Config.defaults().withLoss(LossType.CISPO).withRollout(RolloutCorrection.none().withBypass(true))
                .requireConsistent());
        // verl's syntax
        assertEquals(List.of(new Rejection(Rejection.Option.TOKEN_K1, 0.5, 2.0)), Rejection.parse("token_k1", "2"));
        assertEquals(PolicyLoss.WeightMode.MASK, RolloutCorrection.none().withWeights(WeightLevel.TOKEN).withThreshold("0.5_2").mode());
        assertEquals(0.5, RolloutCorrection.truncated(WeightLevel.SEQUENCE, 2).lower(), "TIS's lower bound is 1 / threshold");
    }
}
