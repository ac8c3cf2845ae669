package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.Compare;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The optimal token baseline op ({@link OptimalTokenBaseline}) on every backend against the f64
 * reference, over the cases its definition singles out: a group of one, two rows tied for the
 * longest (no zero tail), a unique longest row with handle_zero_tail on and off, masks with holes
 * (not only padded tails) in f32 and u8, with and without IS weights; outputs poisoned first, run
 * twice for bitwise determinism; bad input refused by name. (AdvantageEstimatorsTest holds the
 * reference itself to verl's code written out.)
 */
class OptimalTokenBaselineTest {
    static final int T = 37;
    /** Group sizes: 4, 1, 3, 2, 5 (rows interleaved across groups). */
    static final long[] IDS = {0, 2, 0, 1, 3, 2, 0, 3, 4, 4, 2, 4, 0, 4, 4};

    /**
     * Lengths in kept tokens: group 0 (rows 0, 2, 6, 12) has a unique longest, row 2 (37; the second
     * longest, row 0, keeps 26 of its 30 positions); group 1 is row 3 alone; group 2 (rows 1, 5, 10)
     * has rows 5 and 10 tied at 37; group 3 (rows 4, 7): row 4 (20) over 14; group 4: row 13 (36)
     * over 33. Rows 0, 3, 6, 9, 12 have holes: every j = 3 mod 7 dropped.
     */
    static final int[] LENGTHS = {30, 12, 37, 9, 20, 37, 5, 14, 33, 7, 37, 33, 29, 36, 1};

    private static boolean kept(int i, int j) {
        return j < LENGTHS[i] && !(i % 3 == 0 && j % 7 == 3);
    }

    private static HostTensor mask(DType dtype) {
        HostTensor m = HostTensor.allocate(dtype, IDS.length, T);
        for (int i = 0; i < IDS.length; i++) {
            for (int j = 0; j < T; j++) {
                if (dtype == DType.U8) {
                    m.setLong((long) i * T + j, kept(i, j) ? 1 : 0);
                } else {
                    m.setFloat((long) i * T + j, kept(i, j) ? 1 : 0);
                }
            }
        }
        return m;
    }

    private record Batch(HostTensor r, HostTensor lp, HostTensor q, HostTensor rho) implements AutoCloseable {
        static Batch random(SplittableRandom rng) {
            int s = IDS.length;
            HostTensor r = TestData.normal(rng, (long) s * T, 0.3);
            HostTensor lp = HostTensor.allocate(DType.F32, s, T);
            HostTensor q = HostTensor.allocate(DType.F32, s, T);
            HostTensor rho = HostTensor.allocate(DType.F32, s, T);
            for (int i = 0; i < s * T; i++) {
                double pi = rng.nextDouble(0.001, 0.999);
                lp.setFloat(i, (float) Math.log(pi));
                q.setFloat(i, (float) (pi * pi + (1 - pi) * (1 - pi) * rng.nextDouble()));
                rho.setFloat(i, (float) rng.nextDouble(0.3, 3));
            }
            return new Batch(HostTensor.wrap(r.segment(), DType.F32, s, T), lp, q, rho);
        }

        @Override
        public void close() {
            r.close();
            lp.close();
            q.close();
            rho.close();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void everyCaseAgreesWithTheReference(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        ReferenceBackend ref = new ReferenceBackend();
        try (Backend b = bt.open(); Batch batch = Batch.random(new SplittableRandom(seed)); HostTensor ids = HostTensor.of(IDS);
             GroupLayout groups = GroupLayout.of(ids)) {
            for (DType maskType : new DType[] {DType.F32, DType.U8}) {
                for (boolean withIs : new boolean[] {true, false}) {
                    HostTensor[][] want = new HostTensor[2][];
                    try (HostTensor m = mask(maskType)) {
                        for (int z = 0; z < 2; z++) {
                            boolean zeroTail = z == 0;
                            String ctx = bt + " mask " + maskType + (withIs ? " IS" : "") + (zeroTail ? " zero tail" : "") + " seed=" + seed;
                            OptimalTokenBaseline.Config c = OptimalTokenBaseline.Config.defaults().withHandleZeroTail(zeroTail);
                            OptimalTokenBaseline.Inputs in = new OptimalTokenBaseline.Inputs(batch.r, m, batch.lp, batch.q,
                                    withIs ? batch.rho : null, groups);
                            want[z] = new HostTensor[] {HostTensor.allocate(DType.F32, IDS.length, T), HostTensor.allocate(DType.F32, IDS.length, T)};
                            ref.optimalTokenBaseline(c, in, want[z][0], want[z][1]);
                            float[] first = null;
                            for (int run = 0; run < 2; run++) {
                                try (Tensor r = b.upload(batch.r); Tensor dm = b.upload(m); Tensor lp = b.upload(batch.lp);
                                     Tensor q = b.upload(batch.q); Tensor rho = b.upload(batch.rho);
                                     Tensor adv = b.upload(TestData.poisoned(DType.F32, IDS.length, T));
                                     Tensor ret = b.upload(TestData.poisoned(DType.F32, IDS.length, T));
                                     HostTensor gotAdv = HostTensor.allocate(DType.F32, IDS.length, T);
                                     HostTensor gotRet = HostTensor.allocate(DType.F32, IDS.length, T)) {
                                    b.optimalTokenBaseline(c, new OptimalTokenBaseline.Inputs(r, dm, lp, q, withIs ? rho : null, groups), adv,
                                            ret);
                                    b.download(adv, gotAdv);
                                    b.download(ret, gotRet);
                                    Compare.assertClose(ctx + " advantages", want[z][0], gotAdv, Tolerance.ADVANTAGE);
                                    Compare.assertClose(ctx + " returns", want[z][1], gotRet, Tolerance.ADVANTAGE);
                                    if (first == null) {
                                        first = gotAdv.toFloatArray();
                                    } else {
                                        assertArrayEquals(first, gotAdv.toFloatArray(), ctx + ": bitwise the same twice");
                                    }
                                }
                            }
                        }
                        checkCases(bt + " mask " + maskType + (withIs ? " IS" : "") + " seed=" + seed, want[0][0], want[1][0], want[0][1]);
                    } finally {
                        for (HostTensor[] pair : want) {
                            if (pair != null) {
                                pair[0].close();
                                pair[1].close();
                            }
                        }
                    }
                }
            }
        }
    }

    /** The cases the batch is built for, on the reference's numbers (with and without the zero tail). */
    private static void checkCases(String ctx, HostTensor withTail, HostTensor without, HostTensor ret) {
        for (int i = 0; i < IDS.length; i++) {
            for (int j = 0; j < T; j++) {
                long at = (long) i * T + j;
                if (!kept(i, j)) {
                    assertEquals(0f, withTail.getFloat(at), ctx + ": a dropped token's advantage is 0 [" + i + ", " + j + "]");
                    assertEquals(0f, ret.getFloat(at), ctx + ": and its return [" + i + ", " + j + "]");
                    continue;
                }
                String el = " [" + i + ", " + j + "]";
                if (i == 3) {
                    assertEquals(ret.getFloat(at), withTail.getFloat(at), 0f, ctx + ": a group of one keeps its returns" + el);
                }
                boolean tail = (i == 2 && j >= 26) || (i == 4 && j >= 14) || (i == 13 && j >= 33);
                if (tail) {
                    assertEquals(ret.getFloat(at), withTail.getFloat(at), 0f, ctx + ": the unique longest's tail has no baseline" + el);
                } else {
                    assertEquals(without.getFloat(at), withTail.getFloat(at), 0f, ctx + ": elsewhere the zero tail changes nothing" + el);
                }
                if (i == 2 && j >= 30) { // row 2 alone: B = G W / (W + eps) ~ G
                    assertEquals(0, without.getFloat(at), 1e-6, ctx + ": alone at a position, without the zero tail, A ~ 0" + el);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void badInputIsRefusedByName(BackendUnderTest bt) {
        OptimalTokenBaseline.Config c = OptimalTokenBaseline.Config.defaults();
        try (Backend b = bt.open(); Batch batch = Batch.random(new SplittableRandom(3)); HostTensor ids = HostTensor.of(IDS);
             GroupLayout groups = GroupLayout.of(ids); HostTensor m = mask(DType.F32);
             HostTensor adv = HostTensor.allocate(DType.F32, IDS.length, T); HostTensor ret = HostTensor.allocate(DType.F32, IDS.length, T);
             HostTensor bad = HostTensor.allocate(DType.F32, IDS.length, T); HostTensor huge = HostTensor.allocate(DType.F32, IDS.length, T);
             HostTensor shortLp = HostTensor.allocate(DType.F32, IDS.length, T - 1);
             GroupLayout fewer = GroupLayout.single(IDS.length - 1)) {
            batch.q.copyTo(bad);
            bad.setFloat(5L * T + 2, Float.NaN);
            huge.fill(1e30f); // rho^2 = 1e60: W leaves float32
            PolicyLossTest.assertRejected("sumPiSquared[" + (5 * T + 2) + "]", () -> b.optimalTokenBaseline(c,
                    new OptimalTokenBaseline.Inputs(batch.r, m, batch.lp, bad, null, groups), adv, ret));
            PolicyLossTest.assertRejected("oldLogp", () -> b.optimalTokenBaseline(c,
                    new OptimalTokenBaseline.Inputs(batch.r, m, shortLp, batch.q, null, groups), adv, ret));
            PolicyLossTest.assertRejected("groups", () -> b.optimalTokenBaseline(c,
                    new OptimalTokenBaseline.Inputs(batch.r, m, batch.lp, batch.q, null, fewer), adv, ret));
            PolicyLossTest.assertRejected("returns", () -> b.optimalTokenBaseline(c,
                    new OptimalTokenBaseline.Inputs(batch.r, m, batch.lp, batch.q, null, groups), adv, batch.lp));
            PolicyLossTest.assertRejected("eps", () -> b.optimalTokenBaseline(c.withEps(-1f),
                    new OptimalTokenBaseline.Inputs(batch.r, m, batch.lp, batch.q, null, groups), adv, ret));
            PolicyLossTest.assertRejected("oldLogp, sumPiSquared, isWeights, tokenRewards", () -> b.optimalTokenBaseline(c,
                    new OptimalTokenBaseline.Inputs(batch.r, m, batch.lp, batch.q, huge, groups), adv, ret));
        }
    }
}
