package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.ops.PolicyLoss.Config;
import io.rlkernels.ops.PolicyLoss.LossType;
import io.rlkernels.ops.PolicyLoss.Selection;
import io.rlkernels.ops.PolicyLoss.Stats;
import io.rlkernels.ops.PolicyLossTest.Batch;
import io.rlkernels.ops.PolicyLossTest.Result;
import io.rlkernels.tensor.DType;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The token selections of the policy loss by batch statistics (PolicyLoss.Selection): how many
 * each selects, written out from verl's and TRL's definitions; the same selections under a
 * micro-batch split with the whole batch's statistics and token offsets; clip_cov's key.
 */
class PolicyLossSelectionTest {

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void eachSelectsWhatItsDefinitionSays(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 20, 60, DType.F32, false)) {
            float[] m = batch.mask.toFloatArray();
            int kept = 0;
            for (float x : m) {
                kept += x != 0 ? 1 : 0;
            }
            // kl_cov: the top max(1, floor(N ratio)) covariances get the |logp - old| term: counted as clipHigh
            Config klCov = Config.defaults().withLoss(LossType.KL_COV).withDenominator(kept)
                    .withSelection(Selection.none().withCovariance(0.05, 1, 5, 0.1f));
            try (Result r = PolicyLossTest.run(b, klCov, batch.inputs())) {
                assertEquals((int) Math.max(1, Math.floor(kept * 0.05)), (int) r.stats().clipHigh(), bt + " kl_cov selects k, seed=" + seed);
            }
            // clip_cov: clip_num = max(1, floor(N ratio)) of the candidates, or all of them when fewer
            Config clipCov = Config.defaults().withLoss(LossType.CLIP_COV).withDenominator(kept)
                    .withSelection(Selection.none().withCovariance(0.02, 0.05, 5, 0.1f).withSeed(12345, 0));
            Config resolved = PolicyLossSelection.resolve(clipCov, batch.inputs());
            int candidates = 0;
            for (int i = 0; i < batch.n; i++) {
                if (m[i] == 0) {
                    continue;
                }
                double a = batch.adv.getFloat(i);
                double lp = batch.logp.getFloat(i);
                double r = Math.exp(Math.max(-20, Math.min(20, lp - batch.old.getFloat(i))));
                double cl = Math.min(Math.max(r, 0.8), 1.2);
                double cov = (a - resolved.selection().covMeanAdvantage()) * (lp - resolved.selection().covMeanLogp());
                candidates += !(-a * cl > -a * r) && cov > 0.05 && cov < 5 ? 1 : 0;
            }
            try (Result r = PolicyLossTest.run(b, clipCov, batch.inputs())) {
                int clipNum = (int) Math.max(1, Math.floor(kept * 0.02));
                assertEquals(Math.min(clipNum, candidates), (int) r.stats().clipHigh(), bt + " clip_cov chooses, seed=" + seed);
                assertTrue(candidates > clipNum, "more candidates than chosen: the key decides");
            }
            // top_entropy_quantile: the tokens at or above the (1 - rho) quantile keep their term
            Config entropy = Config.defaults().withLoss(LossType.REINFORCE).withDenominator(kept)
                    .withSelection(Selection.none().withTopEntropyQuantile(0.2));
            double[] h = new double[kept];
            int k = 0;
            for (int i = 0; i < batch.n; i++) {
                if (m[i] != 0) {
                    h[k++] = batch.entropy.getFloat(i);
                }
            }
            Arrays.sort(h);
            double pos = 0.8 * (kept - 1);
            double threshold = h[(int) pos] + (pos - Math.floor(pos)) * (h[Math.min((int) pos + 1, kept - 1)] - h[(int) pos]);
            try (Result r = PolicyLossTest.run(b, entropy, batch.inputs())) {
                for (int i = 0; i < batch.n; i++) {
                    boolean selected = m[i] != 0 && batch.entropy.getFloat(i) >= threshold;
                    assertEquals(!selected, r.grad().getFloat(i) == 0f, bt + " token " + i + " selected=" + selected + " seed=" + seed);
                }
            }
        }
    }

    /** Micro-batches with the whole batch's statistics and their token offsets select and sum as the whole batch. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void microBatchesWithTheWholeBatchsStatisticsSumToIt(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open(); Batch whole = new Batch(rng, 16, 50, DType.F32, false)) {
            for (LossType loss : new LossType[] {LossType.CLIP_COV, LossType.KL_COV, LossType.PPO}) {
                Config c = Config.defaults().withLoss(loss).withSelection(Selection.none().withCovariance(0.05, 0.05, 5, 0.2f)
                        .withSeed(7, 0).withTopEntropyQuantile(loss == LossType.PPO ? 0.3 : 1));
                Config global = PolicyLossSelection.resolve(c, whole.inputs());
                try (Result full = PolicyLossTest.run(b, global, whole.inputs())) {
                    global = global.withDenominator(full.stats().denominator());
                    Stats sum = null;
                    List<Float> grads = new ArrayList<>();
                    int offset = 0;
                    for (Batch part : PolicyLossTest.split(whole, 3)) {
                        Config mine = global.withSelection(global.selection().withSeed(7, offset));
                        try (part; Result r = PolicyLossTest.run(b, mine, part.inputs())) {
                            sum = sum == null ? r.stats() : sum.merge(r.stats());
                            for (float g : r.grad().toFloatArray()) {
                                grads.add(g);
                            }
                        }
                        offset += part.n;
                    }
                    String ctx = bt + " " + loss + " seed=" + seed;
                    Tolerance.F64_REGROUPED.assertClose(full.stats().loss(), sum.loss(), ctx + " loss");
                    assertEquals(full.stats().clipHigh(), sum.clipHigh(), ctx + " the same selections");
                    float[] want = full.grad().toFloatArray();
                    for (int i = 0; i < want.length; i++) {
                        Tolerance.F64_REGROUPED.assertClose(want[i], grads.get(i), ctx + " grad[" + i + "]");
                    }
                }
            }
        }
    }

    @Test
    void theKeyIsSplitmix64AndUniform() {
        double sum = 0;
        for (int i = 0; i < 100_000; i++) {
            double k = PolicyLossSelection.selectKey(42, i);
            assertTrue(k >= 0 && k < 1, "a key in [0, 1)");
            sum += k;
        }
        assertEquals(0.5, sum / 100_000, 0.01, "uniform on average");
        assertTrue(PolicyLossSelection.selectKey(42, 5) != PolicyLossSelection.selectKey(43, 5), "the seed matters");
    }
}
