package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BgpoAccumulator;
import io.rlkernels.backend.reference.ReferenceBackend;
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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** BGPO (ARCHITECTURE §5.4): equivalence on-policy, the bound off-policy, every backend, constant memory. */
class BgpoTest {

    /** A batch: S response sequences of random lengths, n_t samples of logits [R, V], stratified masks. */
    static final class Batch implements AutoCloseable {
        final int samples;
        final int r;
        final int v;
        final int s;
        final SequenceLayout rows;
        final HostTensor targets;
        final HostTensor advantages;
        final HostTensor[] logits;
        final Bgpo.Samples masks;

        Batch(SplittableRandom rng, int sequences, int maxLength, int v, int samples, DType dtype, double[] advantageValues) {
            this(rng, sequences, maxLength, v, samples, dtype, advantageValues, Bgpo.Weighting.PER_MASKED_TOKEN);
        }

        Batch(SplittableRandom rng, int sequences, int maxLength, int v, int samples, DType dtype, double[] advantageValues,
              Bgpo.Weighting weighting) {
            this.samples = samples;
            this.v = v;
            this.s = sequences;
            int[] lengths = new int[sequences];
            int total = 0;
            for (int i = 0; i < sequences; i++) {
                lengths[i] = 1 + rng.nextInt(maxLength);
                total += lengths[i];
            }
            r = total;
            rows = SequenceLayout.ofLengths(lengths);
            targets = TestData.targets(rng, DType.I32, r, v, 0, -100);
            advantages = HostTensor.allocate(DType.F32, sequences);
            for (int i = 0; i < sequences; i++) {
                advantages.setFloat(i, (float) (advantageValues != null ? advantageValues[i % advantageValues.length]
                        : rng.nextGaussian()));
            }
            logits = new HostTensor[samples];
            for (int j = 0; j < samples; j++) {
                logits[j] = TestData.logits(rng, dtype, r, v, 2.0);
            }
            masks = Bgpo.sample(rng.nextLong(), samples, rows, weighting);
        }

        HostTensor mask(int j) {
            return masks.mask(j);
        }

        HostTensor weights(int j) {
            return masks.weights(j);
        }

        @Override
        public void close() {
            rows.close();
            targets.close();
            advantages.close();
            for (HostTensor t : logits) {
                t.close();
            }
            masks.close();
        }
    }

    /** What one run of the accumulator leaves: every sample's gradient and values, and the statistics. */
    record Run(List<HostTensor> grads, List<HostTensor> values, Bgpo.Stats stats, long bytes) implements AutoCloseable {
        @Override
        public void close() {
            grads.forEach(HostTensor::close);
            values.forEach(HostTensor::close);
        }
    }

    /** Consumes every sample on {@code b} with old values {@code old[j]} (host, [S]); gradients into a poisoned buffer. */
    static Run run(Backend b, Bgpo.Config c, Batch batch, HostTensor[] old) {
        List<HostTensor> grads = new ArrayList<>();
        List<HostTensor> values = new ArrayList<>();
        try (Tensor y = b.upload(batch.targets); Tensor adv = b.upload(batch.advantages);
             BgpoAccumulator acc = new BgpoAccumulator(b, c, batch.rows, y, adv)) {
            for (int j = 0; j < batch.samples; j++) {
                try (Tensor z = b.upload(batch.logits[j]); Tensor m = b.upload(batch.mask(j)); Tensor w = b.upload(batch.weights(j));
                     Tensor o = b.upload(old[j]); HostTensor poison = TestData.poisoned(DType.F32, batch.r, batch.v);
                     Tensor g = b.upload(poison)) {
                    acc.step(z, m, w, o, g);
                    HostTensor gh = HostTensor.allocate(DType.F32, batch.r, batch.v);
                    b.download(g, gh);
                    grads.add(gh);
                    HostTensor vh = HostTensor.allocate(DType.F32, batch.s);
                    b.download(acc.lastValues(), vh);
                    values.add(vh);
                }
            }
            return new Run(grads, values, acc.stats(), acc.allocatedBytes());
        }
    }

    /** l_ij in f64 from the definition: w_ij * sum of masked logp of sample j's logits. */
    static double[][] valuesF64(Batch batch, HostTensor[] logits, double temperature) {
        double[][] l = new double[batch.samples][batch.s];
        double[] row = new double[batch.v];
        for (int j = 0; j < batch.samples; j++) {
            for (int i = 0; i < batch.s; i++) {
                double sum = 0;
                for (long p = batch.rows.offsets().getLong(i); p < batch.rows.offsets().getLong(i + 1); p++) {
                    if (batch.mask(j).getFloat(p) != 0) {
                        for (int k = 0; k < batch.v; k++) {
                            row[k] = logits[j].getFloat(p * batch.v + k);
                        }
                        sum += io.rlkernels.backend.reference.LogProbsReference.logProbsRow(row, (int) batch.targets.getLong(p),
                                temperature).logp();
                    }
                }
                l[j][i] = batch.weights(j).getFloat(i) * sum;
            }
        }
        return l;
    }

    static HostTensor[] toTensors(double[][] values) {
        HostTensor[] t = new HostTensor[values.length];
        for (int j = 0; j < values.length; j++) {
            t[j] = HostTensor.allocate(DType.F32, values[j].length);
            for (int i = 0; i < values[j].length; i++) {
                t[j].setFloat(i, (float) values[j][i]);
            }
        }
        return t;
    }

    /** Old values from other logits: the current values plus noise of {@code spread}. */
    static HostTensor[] offPolicy(SplittableRandom rng, Batch batch, double spread) {
        double[][] l = valuesF64(batch, batch.logits, 1);
        for (double[] lj : l) {
            for (int i = 0; i < lj.length; i++) {
                lj[i] -= rng.nextGaussian() * spread;
            }
        }
        return toTensors(l);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void everyBackendMatchesTheReference(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        // every combination of the options, exhaustively: dual clip, denominator, temperature, weighting, dtype
        for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
            for (int k = 0; k < 16; k++) {
                Bgpo.Config c = new Bgpo.Config((k & 1) == 0 ? 0.2f : 0.1f, (k & 1) == 0 ? 0.2f : 0.15f, (k & 1) == 0 ? 0f : 2f,
                        3 + (k & 1), (k & 2) == 0 ? Double.NaN : 5, (k & 4) == 0 ? 1f : 0.7f);
                Bgpo.Weighting weighting = (k & 8) == 0 ? Bgpo.Weighting.PER_MASKED_TOKEN : Bgpo.Weighting.PER_MASK_RATIO;
                try (Backend b = bt.open(); Batch batch = new Batch(rng, 9, 30, 257, c.samples(), dtype, null, weighting)) {
                    HostTensor[] old = offPolicy(rng, batch, 0.3);
                    try (Run want = run(new ReferenceBackend(), c, batch, old); Run got = run(b, c, batch, old)) {
                        String ctx = bt + " " + dtype + " " + c + " " + weighting + " seed=" + seed;
                        for (int j = 0; j < c.samples(); j++) {
                            // the rows' upstream gradient is A psi'(d) w / (D n_t), psi' = exp(d) for A < 0: relative
                            // to it, as exact as d, which is as exact as l (see the statistics below)
                            double dRel = 0;
                            for (int i = 0; i < batch.s; i++) {
                                dRel = Math.max(dRel, Tolerance.LOGPROBS_FORWARD.bound(want.values().get(j).getFloat(i)));
                            }
                            Compare.assertClose(ctx + " sample " + j + " gradient", want.grads().get(j), got.grads().get(j),
                                    Tolerance.F32_OUTPUT.plusRelative(dRel));
                            Compare.assertClose(ctx + " sample " + j + " values", want.values().get(j), got.values().get(j),
                                    Tolerance.F32_OUTPUT);
                        }
                        Bgpo.Stats w = want.stats();
                        Bgpo.Stats g = got.stats();
                        // d = l - l_old is a difference of values |l| ~ w * sum |logp| (up to ~10^2): each d is as
                        // exact as its l, a weighted sum of log-probs (their contract: LOGPROBS_FORWARD of |l|), and
                        // the sums of d, psi and f as exact as their terms
                        double dErr = 0;
                        double dErrMax = 0;
                        double psiErr = 0;
                        double lossErr = 0;
                        for (int j = 0; j < c.samples(); j++) {
                            for (int i = 0; i < batch.s; i++) {
                                double l = want.values().get(j).getFloat(i);
                                double e = Tolerance.LOGPROBS_FORWARD.bound(l);
                                double slope = Math.max(1, Math.exp(Math.min(20, l - old[j].getFloat(i)))); // |dpsi/dd|
                                dErr += e;
                                dErrMax = Math.max(dErrMax, e);
                                psiErr += e * slope;
                                lossErr += Math.abs(batch.advantages.getFloat(i)) * e * slope / (c.denominatorFor(batch.s) * c.samples());
                            }
                        }
                        Tolerance.propagated(lossErr + Tolerance.STATISTIC.bound(w.loss())).assertClose(w.loss(), g.loss(), ctx + " loss");
                        assertEquals(w.seen(), g.seen(), ctx + " seen");
                        // a sample whose psi lies within rounding of a clip bound may be counted on either side of it,
                        // on one backend and not the other: each count within 1, and their total within 1
                        assertEquals(w.clipHigh(), g.clipHigh(), 1, ctx + " clipped high");
                        assertEquals(w.clipLow(), g.clipLow(), 1, ctx + " clipped low");
                        assertEquals(w.clipDual(), g.clipDual(), 1, ctx + " clipped dual");
                        assertEquals(w.clipHigh() + w.clipLow() + w.clipDual(), g.clipHigh() + g.clipLow() + g.clipDual(), 1, ctx + " clipped");
                        assertEquals(w.empty(), g.empty(), ctx + " empty");
                        Tolerance.propagated(dErr).assertClose(w.dSum(), g.dSum(), ctx + " sum d");
                        Tolerance.propagated(dErrMax).assertClose(w.dMin(), g.dMin(), ctx + " min d");
                        Tolerance.propagated(dErrMax).assertClose(w.dMax(), g.dMax(), ctx + " max d");
                        Tolerance.propagated(psiErr).assertClose(w.psiSum(), g.psiSum(), ctx + " sum psi");
                    } finally {
                        for (HostTensor t : old) {
                            t.close();
                        }
                    }
                }
            }
        }
    }

    /**
     * BGPO's state is added into, never overwritten (so it cannot be poisoned): the same sample
     * consumed twice gives exactly twice every sum and count, and the same min and max, on every
     * backend (a + a is exact in f64).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void theStateIsAddedIntoNotOverwritten(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Bgpo.Config c = Bgpo.Config.defaults(2).withClip(0.05f, 0.05f).withDualClip(1.5f);
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 7, 12, 64, 1, DType.F32, null)) {
            HostTensor[] old = offPolicy(rng, batch, 0.5);
            try (Tensor y = b.upload(batch.targets); Tensor adv = b.upload(batch.advantages);
                 BgpoAccumulator acc = new BgpoAccumulator(b, c, batch.rows, y, adv);
                 Tensor z = b.upload(batch.logits[0]); Tensor m = b.upload(batch.mask(0)); Tensor w = b.upload(batch.weights(0));
                 Tensor o = b.upload(old[0]); Tensor g = b.allocate(DType.F32, batch.r, batch.v)) {
                acc.step(z, m, w, o, g);
                double[] once = slots(acc.stats());
                acc.step(z, m, w, o, g);
                double[] twice = slots(acc.stats());
                String ctx = bt + " seed=" + seed;
                assertTrue(once[Bgpo.STAT_SEEN] == batch.s && once[Bgpo.STAT_LOSS] != 0, ctx + ": the sample counted");
                for (int k = 0; k < Bgpo.STATS_LENGTH; k++) {
                    double want = k == Bgpo.STAT_D_MIN || k == Bgpo.STAT_D_MAX ? once[k] : 2 * once[k];
                    assertEquals(want, twice[k], ctx + " slot " + k + " after the same sample twice");
                }
            } finally {
                for (HostTensor t : old) {
                    t.close();
                }
            }
        }
    }

    private static double[] slots(Bgpo.Stats st) {
        double[] v = new double[Bgpo.STATS_LENGTH];
        v[Bgpo.STAT_LOSS] = st.loss();
        v[Bgpo.STAT_SEEN] = st.seen();
        v[Bgpo.STAT_CLIP_HIGH] = st.clipHigh();
        v[Bgpo.STAT_CLIP_LOW] = st.clipLow();
        v[Bgpo.STAT_CLIP_DUAL] = st.clipDual();
        v[Bgpo.STAT_EMPTY] = st.empty();
        v[Bgpo.STAT_D_SUM] = st.dSum();
        v[Bgpo.STAT_D_MIN] = st.dMin();
        v[Bgpo.STAT_D_MAX] = st.dMax();
        v[Bgpo.STAT_PSI_SUM] = st.psiSum();
        return v;
    }

    /** The ELBO objective's loss, -1/D sum_i A_i exp(mean_j d_ij), in f64 (the function BGPO bounds). */
    static double elboLoss(Batch batch, HostTensor[] logits, double[][] old, double denominator) {
        double[][] l = valuesF64(batch, logits, 1);
        double loss = 0;
        for (int i = 0; i < batch.s; i++) {
            double meanD = 0;
            for (int j = 0; j < batch.samples; j++) {
                meanD += (l[j][i] - old[j][i]) / batch.samples;
            }
            loss -= batch.advantages.getFloat(i) * Math.exp(meanD) / denominator;
        }
        return loss;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void onPolicyTheSummedGradientIsTheElboObjectivesGradient(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        // positive and negative advantages: the bound's two forms, 1 + d and exp(d)
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 4, 3, 7, 3, DType.F32, new double[] {1.3, -0.7, 2.1, -1.9})) {
            double[][] old = valuesF64(batch, batch.logits, 1); // on-policy: the old values are the current ones
            HostTensor[] oldT = toTensors(old);
            Bgpo.Config c = Bgpo.Config.defaults(batch.samples);
            double d = c.denominatorFor(batch.s);
            try (Run got = run(b, c, batch, oldT)) {
                double eps = 1e-3; // f32 logits: steps large enough that rounding the inputs does not matter
                for (int j = 0; j < batch.samples; j++) {
                    for (long e = 0; e < (long) batch.r * batch.v; e++) {
                        float saved = batch.logits[j].getFloat(e);
                        batch.logits[j].setFloat(e, (float) (saved + eps));
                        double up = elboLoss(batch, batch.logits, old, d);
                        batch.logits[j].setFloat(e, (float) (saved - eps));
                        double down = elboLoss(batch, batch.logits, old, d);
                        batch.logits[j].setFloat(e, saved);
                        double h = (double) (float) (saved + eps) - (float) (saved - eps);
                        double numeric = (up - down) / h;
                        Tolerance.BGPO_FINITE_DIFFERENCE.assertClose(numeric, got.grads().get(j).getFloat(e),
                                bt + " sample " + j + " logit " + e + " seed=" + seed);
                    }
                }
                // and the value: on-policy, the bound's loss equals the objective's, -1/D sum A
                Tolerance.STATISTIC.assertClose(elboLoss(batch, batch.logits, old, d), got.stats().loss(), bt + " loss on-policy seed=" + seed);
            } finally {
                for (HostTensor t : oldT) {
                    t.close();
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void offPolicyTheBoundNeverExceedsTheElboObjective(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        for (int trial = 0; trial < 5; trial++) {
            for (Bgpo.Config c : new Bgpo.Config[] {new Bgpo.Config(0.999f, 1e6f, 0f, 4, Double.NaN, 1f), Bgpo.Config.defaults(4)}) {
                try (Backend b = bt.open(); Batch batch = new Batch(rng, 6, 10, 11, c.samples(), DType.F32, null)) {
                    HostTensor[] old = offPolicy(rng, batch, 0.5 + trial);
                    double[][] oldD = new double[batch.samples][batch.s];
                    for (int j = 0; j < batch.samples; j++) {
                        for (int i = 0; i < batch.s; i++) {
                            oldD[j][i] = old[j].getFloat(i);
                        }
                    }
                    try (Run got = run(b, c, batch, old)) {
                        double elbo = elboLoss(batch, batch.logits, oldD, c.denominatorFor(batch.s));
                        // in loss terms: the bound's loss is at least the objective's (its objective at most)
                        assertTrue(got.stats().loss() >= elbo - 1e-6 * (1 + Math.abs(elbo)),
                                bt + " trial " + trial + " " + c + ": BGPO loss " + got.stats().loss() + " < ELBO loss " + elbo + " seed=" + seed);
                    } finally {
                        for (HostTensor t : old) {
                            t.close();
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void memoryDoesNotGrowWithTheNumberOfSamples(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        List<Long> bytes = new ArrayList<>();
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 3, 8, 5, 1, DType.F32, null); Tensor y = b.upload(batch.targets);
             Tensor adv = b.upload(batch.advantages); Tensor z = b.upload(batch.logits[0]); Tensor m = b.upload(batch.mask(0));
             Tensor w = b.upload(batch.weights(0)); HostTensor zeros = HostTensor.allocate(DType.F32, batch.s);
             Tensor old = b.upload(zeros)) {
            for (int samples : new int[] {1, 4, 16, 64}) {
                try (BgpoAccumulator acc = new BgpoAccumulator(b, Bgpo.Config.defaults(samples), batch.rows, y, adv)) {
                    for (int j = 0; j < samples; j++) {
                        acc.step(z, m, w, old, z); // in place: the logits buffer is reused by every sample
                    }
                    assertEquals(samples, acc.consumed());
                    assertThrows(IllegalArgumentException.class, () -> acc.step(z, m, w, old, z), "no more than n_t samples");
                    bytes.add(acc.allocatedBytes());
                }
            }
        }
        assertTrue(bytes.stream().distinct().count() == 1, bt + ": accumulator bytes for n_t = 1, 4, 16, 64: " + bytes);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void theLinearHeadAccumulatesItsWeightGradient(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        int d = 19;
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 5, 9, 37, 3, DType.F32, null);
             HostTensor w = TestData.logits(rng, DType.F32, 37, d, 0.5)) {
            HostTensor[] hidden = new HostTensor[batch.samples];
            for (int j = 0; j < batch.samples; j++) {
                hidden[j] = TestData.logits(rng, DType.F32, batch.r, d, 1.0);
            }
            HostTensor[] old = offPolicy(rng, batch, 0.2);
            Bgpo.Config c = Bgpo.Config.defaults(batch.samples);
            HostTensor[][] results = new HostTensor[2][];
            Backend[] backends = {new ReferenceBackend(), b};
            for (int k = 0; k < 2; k++) {
                Backend be = backends[k];
                try (Tensor y = be.upload(batch.targets); Tensor adv = be.upload(batch.advantages); Tensor wd = be.upload(w);
                     HostTensor zero = HostTensor.allocate(DType.F32, 37, d); Tensor gradW = be.upload(zero);
                     Tensor gradH = be.allocate(DType.F32, batch.r, d);
                     BgpoAccumulator acc = new BgpoAccumulator(be, c, batch.rows, y, adv).linearWorkspaceBytes(37 * 4 * 4)) {
                    be.resetWorkspacePeak();
                    List<HostTensor> out = new ArrayList<>();
                    for (int j = 0; j < batch.samples; j++) {
                        try (Tensor h = be.upload(hidden[j]); Tensor m = be.upload(batch.mask(j)); Tensor wt = be.upload(batch.weights(j));
                             Tensor o = be.upload(old[j])) {
                            acc.stepLinear(h, wd, m, wt, o, gradW, gradH);
                            HostTensor gh = HostTensor.allocate(DType.F32, batch.r, d);
                            be.download(gradH, gh);
                            out.add(gh);
                        }
                    }
                    HostTensor gw = HostTensor.allocate(DType.F32, 37, d);
                    be.download(gradW, gw);
                    out.add(gw);
                    results[k] = out.toArray(new HostTensor[0]);
                    assertEquals(batch.samples, acc.consumed());
                    // chunks of 4 rows of logits (the workspace given) and per-row scratch, never the sample's [R, V] logits
                    assertTrue(be.workspacePeakBytes() <= 37 * 4 * 4 + 64L * batch.r, bt + ": workspace " + be.workspacePeakBytes());
                }
            }
            for (int j = 0; j < results[0].length; j++) {
                String what = j < batch.samples ? "dH of sample " + j : "dW";
                Compare.assertClose(bt + " " + what + " seed=" + seed, results[0][j], results[1][j], new Tolerance(1e-6, 1e-4));
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void matmulMatchesTheReferenceInEveryLayout(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open()) {
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    int m = 1 + rng.nextInt(40);
                    int n = 1 + rng.nextInt(1100);
                    int k = 1 + rng.nextInt(40);
                    float beta = rng.nextBoolean() ? 0f : 0.5f;
                    try (HostTensor a = TestData.logits(rng, DType.F32, ta ? k : m, ta ? m : k, 1.0);
                         HostTensor bb = TestData.logits(rng, DType.F32, tb ? n : k, tb ? k : n, 1.0);
                         HostTensor c0 = TestData.logits(rng, DType.F32, m, n, 1.0);
                         HostTensor want = TestData.copy(c0); Tensor ad = b.upload(a); Tensor bd = b.upload(bb); Tensor cd = b.upload(c0);
                         HostTensor got = HostTensor.allocate(DType.F32, m, n)) {
                        new ReferenceBackend().matmul(ta, tb, 1.5f, a, bb, beta, want);
                        b.matmul(ta, tb, 1.5f, ad, bd, beta, cd);
                        b.download(cd, got);
                        Compare.assertClose(bt + " matmul ta=" + ta + " tb=" + tb + " " + m + "x" + n + "x" + k + " seed=" + seed, want, got,
                                new Tolerance(1e-5, 1e-5));
                    }
                }
            }
        }
    }

    @Test
    void theSamplerIsStratifiedSeededAndMasksWhatItCounts() {
        int[] lengths = {1, 7, 20, 33};
        try (SequenceLayout rows = SequenceLayout.ofLengths(lengths);
             Bgpo.Samples a = Bgpo.sample(42, 8, rows, Bgpo.Weighting.PER_MASKED_TOKEN);
             Bgpo.Samples b = Bgpo.sample(42, 8, rows, Bgpo.Weighting.PER_MASKED_TOKEN);
             Bgpo.Samples c = Bgpo.sample(43, 8, rows, Bgpo.Weighting.PER_MASK_RATIO)) {
            assertArrayEquals(a.masks().toFloatArray(), b.masks().toFloatArray(), "the same seed, the same masks");
            int r = (int) rows.tokens();
            for (int i = 0; i < lengths.length; i++) {
                int begin = (int) rows.offsets().getLong(i);
                long[] counts = new long[8];
                for (int j = 0; j < 8; j++) {
                    long x = a.counts().getLong((long) j * lengths.length + i);
                    counts[j] = x;
                    assertTrue(x >= 1 && x <= lengths[i], "x in 1..L: " + x);
                    long masked = 0;
                    for (int p = 0; p < lengths[i]; p++) {
                        masked += a.masks().getLong((long) j * r + begin + p);
                    }
                    assertEquals(x, masked, "sample " + j + " of sequence " + i + " masks x positions");
                    Tolerance.F32_ROUNDED.assertClose(1.0 / x, a.weights().getFloat((long) j * lengths.length + i), "w = 1/x");
                    long xc = c.counts().getLong((long) j * lengths.length + i);
                    Tolerance.F32_ROUNDED.assertClose((double) lengths[i] / xc, c.weights().getFloat((long) j * lengths.length + i), "w = L/x");
                }
                // stratified: consecutive samples step by L / n_t (mod L)
                for (int j = 1; j < 8; j++) {
                    long step = Math.floorMod(counts[j] - counts[j - 1], lengths[i]);
                    double want = (double) lengths[i] / 8;
                    assertTrue(Math.abs(step - want) <= 1 || Math.abs(step - want - lengths[i]) <= 1 || lengths[i] == 1,
                            "sequence " + i + ": step " + step + " for L/n_t = " + want);
                }
            }
            for (long e = 0; e < a.masks().numel(); e++) { // the kernels read any nonzero byte as masked: only 0 and 1 are written
                long m = a.masks().getLong(e);
                assertTrue(m == 0 || m == 1, "mask byte " + e + " is 0 or 1, found " + m);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void badInputAndEmptySamples(BackendUnderTest bt) {
        SplittableRandom rng = new SplittableRandom(5);
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 3, 4, 5, 1, DType.F32, null); Tensor y = b.upload(batch.targets);
             Tensor adv = b.upload(batch.advantages);
             BgpoAccumulator acc = new BgpoAccumulator(b, Bgpo.Config.defaults(1), batch.rows, y, adv);
             HostTensor badW = TestData.copy(batch.weights(0)); HostTensor zeroMask = HostTensor.allocate(DType.U8, batch.r);
             HostTensor old = HostTensor.allocate(DType.F32, batch.s); Tensor g = b.allocate(DType.F32, batch.r, batch.v)) {
            badW.setFloat(1, 0f);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> acc.step(batch.logits[0], batch.mask(0), badW, old, g));
            assertTrue(e.getMessage().startsWith("weights[1]:"), e.getMessage());
            badW.setFloat(1, Float.NaN);
            e = assertThrows(IllegalArgumentException.class, () -> acc.step(batch.logits[0], batch.mask(0), badW, old, g));
            assertTrue(e.getMessage().startsWith("weights[1]:"), e.getMessage());
            try (HostTensor shortMask = HostTensor.allocate(DType.U8, batch.r - 1)) {
                e = assertThrows(IllegalArgumentException.class, () -> acc.step(batch.logits[0], shortMask, batch.weights(0), old, g));
                assertTrue(e.getMessage().startsWith("mask:"), e.getMessage());
            }
            // a sample masking nothing: l = 0 = l_old, a constant, no gradient, counted as empty
            acc.step(batch.logits[0], zeroMask, batch.weights(0), old, g);
            try (HostTensor gh = HostTensor.allocate(DType.F32, batch.r, batch.v)) {
                b.download(g, gh);
                for (float x : gh.toFloatArray()) {
                    assertEquals(0f, x, bt + ": no gradient from an empty sample");
                }
            }
            assertEquals(batch.s, acc.stats().empty(), bt + ": every sequence was empty");
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Bgpo.Config.defaults(0));
        assertTrue(e.getMessage().startsWith("samples (n_t):"), e.getMessage());
    }
}
