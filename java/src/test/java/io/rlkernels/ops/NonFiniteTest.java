package io.rlkernels.ops;

import static io.rlkernels.testing.Refusals.assertRefused;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.BgpoAccumulator;
import io.rlkernels.backend.Backends;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * One semantics for non-finite data and ids on every backend (the numerical contract): a NaN or
 * +inf logit, or a row of -inf only, gives NaN in that row's outputs and nowhere else; a -inf
 * target gives logp = -inf; non-finite upstream gradients are refused; a constant group gives 0
 * whatever eps is; every BGPO target is checked. And no silent infinity: finite inputs whose result
 * float32 cannot hold are refused naming the input and the output.
 */
class NonFiniteTest {
    private static final int V = 1000; // several vectors and a tail on every backend
    private static final float NAN = Float.NaN;
    private static final float INF = Float.POSITIVE_INFINITY;

    static Stream<BackendUnderTest> all() {
        return BackendUnderTest.all();
    }

    /** Rows: 0 normal, 1 NaN at j=0, 2 NaN mid-row, 3 +inf in the tail, 4 all -inf, 5 banned tokens with a banned target, 6 normal. */
    private static HostTensor logits(SplittableRandom rng, DType dtype, int[] targets) {
        HostTensor z = TestData.logits(rng, dtype, 7, V, 2.0);
        z.setFloat(1L * V, NAN);
        z.setFloat(2L * V + 517, NAN);
        z.setFloat(3L * V + V - 1, INF);
        for (int j = 0; j < V; j++) {
            z.setFloat(4L * V + j, Float.NEGATIVE_INFINITY);
            if (j % 3 == 0) {
                z.setFloat(5L * V + j, Float.NEGATIVE_INFINITY);
            }
        }
        targets[5] = 300; // a banned token as the target
        return z;
    }

    private static boolean noDistribution(int row) {
        return row >= 1 && row <= 4;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void aRowWithoutADistributionIsNaNAndOnlyThatRow(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        for (DType dtype : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            SplittableRandom rng = new SplittableRandom(seed);
            int[] ids = {5, 17, 900, 2, 4, 300, 999};
            try (Backend b = bt.open(); Backend ref = Backends.open(BackendKind.REFERENCE);
                 HostTensor z = logits(rng, dtype, ids); HostTensor y = HostTensor.of(ids);
                 HostTensor g = TestData.normal(rng, 7, 1.0); HostTensor h = TestData.normal(rng, 7, 1.0)) {
                LogProbs.Config c = LogProbs.Config.defaults().withTemperature(0.8f);
                String ctx = bt + " " + dtype + " seed=" + seed;
                try (Tensor zd = b.upload(z); Tensor yd = b.upload(y); LogProbs.Result got = b.logProbs(c, zd, yd, true);
                     LogProbs.Result want = ref.logProbs(c, z, y, true);
                     HostTensor logp = HostTensor.allocate(DType.F32, 7); HostTensor lse = HostTensor.allocate(DType.F32, 7);
                     HostTensor entropy = HostTensor.allocate(DType.F32, 7)) {
                    b.download(got.logp(), logp);
                    b.download(got.lse(), lse);
                    b.download(got.entropy(), entropy);
                    for (int i = 0; i < 7; i++) {
                        for (HostTensor[] o : new HostTensor[][] {{logp, (HostTensor) want.logp()}, {lse, (HostTensor) want.lse()},
                            {entropy, (HostTensor) want.entropy()}}) {
                            float a = o[0].getFloat(i);
                            float e = o[1].getFloat(i);
                            if (noDistribution(i)) {
                                assertTrue(Float.isNaN(a) && Float.isNaN(e), ctx + " row " + i + ": NaN, found " + a + " (reference " + e + ")");
                            } else {
                                assertTrue(Float.isFinite(a) || (i == 5 && o[0] == logp), ctx + " row " + i + " is not touched: " + a);
                            }
                        }
                    }
                    assertEquals(Float.NEGATIVE_INFINITY, logp.getFloat(5), ctx + ": a banned target's logp");
                    // into poisoned outputs: a NaN row's NaN is written, not the poison left in place
                    try (HostTensor p = TestData.poisoned(DType.F32, 7); HostTensor p2 = TestData.poisoned(DType.F32, 7, 2);
                         Tensor pl = b.upload(p); Tensor pe = b.upload(p); Tensor ps = b.upload(p); Tensor pp = b.upload(p2);
                         HostTensor back = HostTensor.allocate(DType.F32, 7); HostTensor backParts = HostTensor.allocate(DType.F32, 7, 2)) {
                        b.logProbs(c, zd, yd, pl, ps, pe, pp);
                        for (Tensor out : new Tensor[] {pl, ps, pe}) {
                            b.download(out, back);
                            for (int i = 0; i < 7; i++) {
                                assertTrue(!TestData.isPoison(back, i), ctx + " row " + i + " of an output left unwritten");
                            }
                        }
                        b.download(pp, backParts);
                        for (int i = 0; i < 14; i++) {
                            assertTrue(!TestData.isPoison(backParts, i), ctx + " lseParts element " + i + " left unwritten");
                        }
                    }
                    for (int i : new int[] {0, 5, 6}) {
                        assertTrue(Tolerance.F32_OUTPUT.accepts(((HostTensor) want.lse()).getFloat(i), lse.getFloat(i)), ctx + " lse row " + i);
                        assertTrue(Tolerance.F32_OUTPUT.accepts(((HostTensor) want.entropy()).getFloat(i), entropy.getFloat(i)),
                                ctx + " entropy row " + i);
                    }
                    // backward from the forward's own lse and entropy: NaN rows are NaN, the others finite
                    try (Tensor dg = b.upload(g); Tensor dh = b.upload(h);
                         Tensor grad = b.logProbsBackward(c, zd, yd, got.lseParts(), got.entropy(), dg, dh);
                         HostTensor dz = HostTensor.allocate(DType.F32, 7, V)) {
                        b.download(grad, dz);
                        for (int i = 0; i < 7; i++) {
                            for (int j = 0; j < V; j++) {
                                float x = dz.getFloat((long) i * V + j);
                                assertTrue(noDistribution(i) ? Float.isNaN(x) : Float.isFinite(x),
                                        ctx + " gradient [" + i + ", " + j + "] = " + x);
                            }
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void nonFiniteUpstreamGradientsAreRefused(BackendUnderTest bt) {
        SplittableRandom rng = new SplittableRandom(TestData.newSeed());
        try (Backend b = bt.open(); HostTensor z = TestData.logits(rng, DType.F32, 4, 50, 1.0);
             HostTensor y = TestData.targets(rng, DType.I32, 4, 50, 0, -100); HostTensor g = TestData.normal(rng, 4, 1.0);
             HostTensor h = TestData.normal(rng, 4, 1.0); HostTensor out = TestData.poisoned(DType.F32, 4, 50)) {
            LogProbs.Config c = LogProbs.Config.defaults();
            try (LogProbs.Result r = b.logProbs(c, z, y, true)) {
                g.setFloat(2, NAN);
                assertRefused("gradLogp[2]", "NaN", () -> b.logProbsBackward(c, z, y, r.lseParts(), r.entropy(), g, null, out));
                g.setFloat(2, 0.5f);
                h.setFloat(3, Float.NEGATIVE_INFINITY);
                assertRefused("gradEntropy[3]", "-Infinity", () -> b.logProbsBackward(c, z, y, r.lseParts(), r.entropy(), g, h, out));
                try (Tensor dg = b.upload(g); Tensor dh = b.upload(h)) { // device tensors too, where there is a device
                    assertRefused("gradEntropy[3]", "-Infinity", () -> b.logProbsBackward(c, z, y, r.lseParts(), r.entropy(), dg, dh,
                            out));
                }
            }
            assertTrue(Float.isNaN(out.getFloat(0)), "nothing written");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void aConstantGroupGetsExactlyZeroWhateverEps(BackendUnderTest bt) {
        try (Backend b = bt.open(); HostTensor rewards = HostTensor.of(new float[] {0.1f, 0.1f, 0.1f, 0.7f, -2f, 0.7f, 3f});
             HostTensor ids = HostTensor.of(new int[] {0, 0, 0, 1, 2, 1, 3}); HostTensor out = TestData.poisoned(DType.F32, 7)) {
            // the modes whose groups of one get 0 (gpg and opo follow verl there; passk needs two a group)
            for (GroupAdvantages.Mode mode : AdvantagesTest.CLASSIC) {
                GroupAdvantages.Config c = GroupAdvantages.Config.defaults().withMode(mode).withEps(0f);
                b.groupAdvantages(c, rewards, ids, out);
                for (int i = 0; i < 7; i++) {
                    float a = out.getFloat(i);
                    assertTrue(Float.isFinite(a), bt + " " + mode + " advantage " + i + " = " + a);
                    if (mode != GroupAdvantages.Mode.NONE && mode != GroupAdvantages.Mode.BATCH) {
                        assertEquals(i == 4 || i == 6 ? 0f : i < 3 || i == 3 || i == 5 ? 0f : a, a, bt + " " + mode + " " + i);
                    }
                }
            }
            try (HostTensor same = HostTensor.of(new float[] {2.5f, 2.5f, 2.5f}); HostTensor o = TestData.poisoned(DType.F32, 3)) {
                b.groupAdvantages(GroupAdvantages.Config.defaults().withMode(GroupAdvantages.Mode.BATCH).withEps(0f), same,
                        HostTensor.of(new int[] {0, 1, 2}), o);
                for (int i = 0; i < 3; i++) {
                    assertEquals(0f, o.getFloat(i), bt + " batch mode, constant batch");
                }
            }
        }
        assertRefused("eps", "-1.0E-6", () -> GroupAdvantages.Config.defaults().withEps(-1e-6f));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void everyBgpoTargetIsChecked(BackendUnderTest bt) {
        try (Backend b = bt.open(); SequenceLayout rows = SequenceLayout.ofLengths(2, 2);
             HostTensor adv = HostTensor.of(new float[] {1f, -1f}); HostTensor w = HostTensor.of(new float[] {0.5f, 0.5f});
             HostTensor old = HostTensor.of(new float[] {-1f, -1f}); HostTensor z = HostTensor.allocate(DType.F32, 4, 6).fill(0.25f);
             HostTensor g = HostTensor.allocate(DType.F32, 4, 6)) {
            Bgpo.Config c = Bgpo.Config.defaults(1);
            // -1 on a masked row (it was read as "not masked"), and V on a row this sample does not mask
            for (int[] case_ : new int[][] {{0, -1, 3, 4}, {0, 1, 3, 6}}) {
                try (HostTensor y = HostTensor.of(case_); Tensor dy = b.upload(y); BgpoAccumulator acc = new BgpoAccumulator(b, c, rows, dy, adv)) {
                    HostTensor mask = HostTensor.of(new byte[] {1, 1, 1, 0});
                    int bad = case_[1] < 0 ? 1 : 3;
                    assertRefused("targets[" + bad + "]", Integer.toString(case_[bad]), () -> acc.step(z, mask, w, old, g));
                }
            }
        }
    }

    // ---- no silent infinities ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void logitsWhoseLogProbsOverflowAreRefused(BackendUnderTest bt) {
        try (Backend b = bt.open(); HostTensor z = HostTensor.of(new float[] {1f, 2f, 3e38f, 1f, -3e38f, 3e38f}, 2, 3);
             HostTensor y = HostTensor.of(new int[] {0, 1}); HostTensor logp = HostTensor.allocate(DType.F32, 2);
             HostTensor lse = HostTensor.allocate(DType.F32, 2)) {
            // row 0: lse = 3e38 / 0.5 overflows; row 1 at T = 1: logp = -3e38 - 3e38 overflows, its lse does not
            assertRefused("logits", "row 0", () -> b.logProbs(LogProbs.Config.defaults().withTemperature(0.5f), z, y, logp, lse, null));
            assertRefused("logits", "row 1", () -> b.logProbs(LogProbs.Config.defaults(), z, y, logp, lse, null));
            try (Tensor dz = b.upload(z); Tensor dy = b.upload(y); Tensor dlogp = b.allocate(DType.F32, 2);
                 Tensor dlse = b.allocate(DType.F32, 2)) {
                assertRefused("logits", "row 1", () -> b.logProbs(LogProbs.Config.defaults(), dz, dy, dlogp, dlse, null));
            }
            z.setFloat(4, 1f); // finite everywhere at T = 1 now
            b.logProbs(LogProbs.Config.defaults(), z, y, logp, lse, null);
            assertTrue(Float.isFinite(logp.getFloat(0)) && Float.isFinite(logp.getFloat(1)));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void upstreamGradientsWhoseLogitsGradientOverflowsAreRefused(BackendUnderTest bt) {
        try (Backend b = bt.open(); HostTensor z = HostTensor.allocate(DType.F32, 2, 8).fill(0.5f); HostTensor y = HostTensor.of(new int[] {0, 1});
             HostTensor g = HostTensor.of(new float[] {1f, 3e38f}); HostTensor out = HostTensor.allocate(DType.F32, 2, 8)) {
            LogProbs.Config c = LogProbs.Config.defaults().withTemperature(0.5f);
            try (LogProbs.Result r = b.logProbs(c, z, y, false)) {
                assertRefused("gradLogp[1]", "3.0E38", () -> b.logProbsBackward(c, z, y, r.lseParts(), null, g, null, out));
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void rewardsWhoseAdvantagesOrReturnsOverflowAreRefused(BackendUnderTest bt) {
        // group 0: mean -1e38, so drgrpo's 3e38 - mean and rloo's scaled differences exceed float32
        try (Backend b = bt.open(); HostTensor rewards = HostTensor.of(new float[] {3e38f, -3e38f, -3e38f, 1f, 2f});
             HostTensor ids = HostTensor.of(new int[] {0, 0, 0, 1, 1}); HostTensor out = HostTensor.allocate(DType.F32, 5)) {
            for (GroupAdvantages.Mode mode : new GroupAdvantages.Mode[] {GroupAdvantages.Mode.DRGRPO, GroupAdvantages.Mode.RLOO}) {
                assertRefused("rewards", "advantages[0] = Infinity", () -> b.groupAdvantages(
                        GroupAdvantages.Config.defaults().withMode(mode), rewards, ids, out));
            }
            b.groupAdvantages(GroupAdvantages.Config.defaults(), rewards, ids, out); // grpo: (r - mean) / std is small
            assertTrue(Float.isFinite(out.getFloat(0)));
        }
        try (Backend b = bt.open(); HostTensor r = HostTensor.of(new float[] {3e38f, 3e38f, 1f, 1f}, 2, 2);
             HostTensor v = HostTensor.of(new float[] {0f, 0f, 0f, 0f}, 2, 2); HostTensor m = HostTensor.of(new byte[] {1, 1, 1, 1}, 2, 2);
             HostTensor adv = HostTensor.allocate(DType.F32, 2, 2); HostTensor ret = HostTensor.allocate(DType.F32, 2, 2)) {
            assertRefused("rewards, values", "advantages[0] = Infinity", () -> b.gae(new Gae.Config(1f, 1f), r, v, m, adv, ret));
            assertRefused("rewards, values", "returns[0] = Infinity", () -> b.discountedReturns(1f, r, m, ret));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void policyLossInputsWhoseGradientOverflowsAreRefused(BackendUnderTest bt) {
        try (Backend b = bt.open(); HostTensor logp = HostTensor.of(new float[] {-1f, -2f, -0.5f});
             HostTensor old = HostTensor.of(new float[] {-1.1f, -2f, -0.4f}); HostTensor adv = HostTensor.of(new float[] {1f, -1f, 2f});
             HostTensor mask = HostTensor.of(new byte[] {1, 1, 1}); HostTensor ref = HostTensor.of(new float[] {-1.5f, -1f, -3f});
             HostTensor grad = HostTensor.allocate(DType.F32, 3)) {
            PolicyLoss.Inputs in = new PolicyLoss.Inputs(logp, old, adv, mask).withRefLogp(ref);
            assertRefused("advantages, denominator, klCoef, entropyCoef", "gradLogp[0] = ",
                    () -> b.policyLoss(PolicyLoss.Config.defaults().withDenominator(1e-45), in, grad, null));
            assertRefused("advantages, denominator, klCoef, entropyCoef", "gradLogp[0] = ",
                    () -> b.policyLoss(PolicyLoss.Config.defaults().withKl(PolicyLoss.KlEstimator.ABS, 3e38f).withDenominator(0.5), in,
                            grad, null));
            PolicyLoss.Stats s = b.policyLoss(PolicyLoss.Config.defaults().withKl(PolicyLoss.KlEstimator.ABS, 1e30f), in, grad, null);
            assertTrue(Double.isFinite(s.loss()) && Float.isFinite(grad.getFloat(0)), "large but representable");
        }
    }

    /**
     * Sequence 0's two masked rows have logp = ln(1/6) each: with w = 1e30 its value (-3.6e30) fits
     * but its gradient A w / (D n_t) = 3e38 * 1e30 / 2 does not; with w = 3e38 the value does not.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void bgpoInputsWhoseValuesOrGradientOverflowAreRefused(BackendUnderTest bt) {
        try (Backend b = bt.open(); SequenceLayout rows = SequenceLayout.ofLengths(2, 2);
             HostTensor adv = HostTensor.of(new float[] {3e38f, 1f}); HostTensor old = HostTensor.of(new float[] {-1f, -1f});
             HostTensor z = HostTensor.allocate(DType.F32, 4, 6).fill(0.25f); HostTensor y = HostTensor.of(new int[] {0, 1, 2, 3});
             HostTensor g = HostTensor.allocate(DType.F32, 4, 6); HostTensor mask = HostTensor.of(new byte[] {1, 1, 1, 0});
             Tensor dy = b.upload(y); Tensor dadv = b.upload(adv)) {
            Bgpo.Config c = Bgpo.Config.defaults(1);
            try (BgpoAccumulator acc = new BgpoAccumulator(b, c, rows, dy, dadv); HostTensor w = HostTensor.of(new float[] {1e30f, 0.5f})) {
                assertRefused("advantages, weights, denominator", "row 0's A psi' w / (D n_t) = -Infinity", () -> acc.step(z, mask, w, old, g));
            }
            try (BgpoAccumulator acc = new BgpoAccumulator(b, c, rows, dy, dadv); HostTensor w = HostTensor.of(new float[] {3e38f, 0.5f})) {
                assertRefused("weights, logp", "values[0] = -Infinity", () -> acc.step(z, mask, w, old, g));
            }
        }
    }
}
