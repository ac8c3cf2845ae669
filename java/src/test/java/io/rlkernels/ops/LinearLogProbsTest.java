package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.reference.LogProbsReference;
import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Log-probs from hidden states (LinearLogProbs): every backend against the f64 reference (H W^T
 * in f64, then the log-probs row functions), the reference's gradients against central
 * differences of the f64 loss, micro-batches accumulating dW, the workspace bound, the fused loss
 * form in one pass and in two, and refusals.
 *
 * <p>The backends form the logits with an f32 matrix product, the reference in f64, so outputs
 * differ by what the product's rounding propagates: a logit is within delta = d 2^-24 sum_k
 * |H_ik W_vk| of exact (the classic bound of an f32 dot product of length d), which moves logp
 * and lse by at most 2 delta / T and the entropy and each p_v by a relative 2 delta / T times
 * (1 + |log p| + H); on top comes the log-probs contract itself. The bounds below are exactly
 * that, per row; a wrong chunk offset or a missing accumulation is off by O(1).
 */
class LinearLogProbsTest {
    private static final double U = 0x1p-24;

    /**
     * Shapes: N rows, hidden size d (not a multiple of any vector width), vocabulary V, rows per
     * chunk (0: all), and the workspace (0: the default; a small one makes the native backend tile
     * the vocabulary too).
     */
    private record Case(int n, int d, int v, long chunk, DType hidden, DType weight, float temperature, long workspace) {
        Case(int n, int d, int v, long chunk, DType hidden, DType weight, float temperature) {
            this(n, d, v, chunk, hidden, weight, temperature, 0);
        }
    }

    private static final Case[] CASES = {
        new Case(13, 37, 211, 0, DType.F32, DType.F32, 1f),
        new Case(13, 37, 211, 4, DType.F32, DType.F32, 0.7f), // 4 does not divide 13
        new Case(9, 19, 97, 1, DType.BF16, DType.BF16, 1f),
        new Case(11, 24, 150, 5, DType.F32, DType.BF16, 1.3f),
        new Case(7, 16, 64, 3, DType.F16, DType.F32, 1f),
        new Case(1, 5, 1, 0, DType.F32, DType.F32, 1f), // N = 1, V = 1: logp = 0
        new Case(6, 8, 1, 2, DType.BF16, DType.F32, 1f),
        // 5.6 KB: two rows of whole logits, so native tiles 5 rows x 280 columns (280, 280, 140)
        new Case(13, 11, 700, 0, DType.F32, DType.F32, 0.8f, 4 * 700 * 2),
        new Case(9, 6, 1000, 0, DType.BF16, DType.F32, 1.1f, 4 * 1000 * 3),
    };

    private static HostTensor hidden(SplittableRandom rng, Case c) {
        return TestData.logits(rng, c.hidden, c.n, c.d, 1.0);
    }

    private static HostTensor weight(SplittableRandom rng, Case c) {
        return TestData.logits(rng, c.weight, c.v, c.d, 2.0 / Math.sqrt(c.d));
    }

    private static LinearLogProbs.Config config(Case c) {
        LinearLogProbs.Config cfg = LinearLogProbs.Config.defaults().withLogProbs(LogProbs.Config.defaults()
                .withTemperature(c.temperature)).withMaxChunkRows(c.chunk);
        return c.workspace > 0 ? cfg.withWorkspaceBytes(c.workspace) : cfg;
    }

    /** delta per row: d 2^-24 max_v sum_k |H_ik W_vk|, the f32 product's bound on any logit's error. */
    private static double[] logitError(HostTensor h, HostTensor w, Case c) {
        double[] out = new double[c.n];
        for (int i = 0; i < c.n; i++) {
            double worst = 0;
            for (int v = 0; v < c.v; v++) {
                double s = 0;
                for (int k = 0; k < c.d; k++) {
                    s += Math.abs(h.getFloat((long) i * c.d + k) * (double) w.getFloat((long) v * c.d + k));
                }
                worst = Math.max(worst, s);
            }
            out[i] = c.d * U * worst;
        }
        return out;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void forwardAndBackwardMatchTheF64Reference(BackendUnderTest bt) {
        try (Backend b = bt.open()) {
            forwardAndBackwardMatch(b, bt.toString());
        }
    }

    /**
     * The native backend tiles the vocabulary at every size these tests use (a chunk of whole rows
     * would hold under 512 rows); -Drlkernels.linear=rows keeps it on chunks of whole rows, so both
     * of its paths are checked, the fused loss's one pass included.
     */
    @org.junit.jupiter.api.Test
    void theNativeBackendsWholeRowPathToo() {
        org.junit.jupiter.api.Assumptions.assumeTrue(BackendUnderTest.selected("native") && io.rlkernels.backend.nativecpu.NativeBackend
                .isAvailable(), "native not tested here");
        System.setProperty("rlkernels.linear", "rows");
        try (Backend b = io.rlkernels.backend.nativecpu.NativeBackend.open()) {
            forwardAndBackwardMatch(b, "native (whole rows)");
            fusedLossMatches(b, "native (whole rows)");
        } finally {
            System.clearProperty("rlkernels.linear");
        }
    }

    private void forwardAndBackwardMatch(Backend b, String bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Backend ref = new ReferenceBackend();
        {
            for (Case c : CASES) {
                String where = bt + " " + c + " seed=" + seed;
                LinearLogProbs.Config cfg = config(c);
                try (HostTensor h = hidden(rng, c); HostTensor w = weight(rng, c);
                     HostTensor y = TestData.targets(rng, DType.I64, c.n, c.v, 0.15, LogProbs.DEFAULT_IGNORE_INDEX);
                     HostTensor g = TestData.normal(rng, c.n, 1.0); HostTensor he = TestData.normal(rng, c.n, 0.5);
                     HostTensor dW0 = TestData.logits(rng, DType.F32, c.v, c.d, 0.1);
                     Tensor hd = b.upload(h); Tensor wd = b.upload(w); Tensor yd = b.upload(y); Tensor gd = b.upload(g);
                     Tensor hed = b.upload(he);
                     LogProbs.Result want = ref.linearLogProbs(cfg, h, w, y, true)) {
                    Tensor logp = b.upload(TestData.poisoned(DType.F32, c.n));
                    Tensor lse = b.upload(TestData.poisoned(DType.F32, c.n));
                    Tensor ent = b.upload(TestData.poisoned(DType.F32, c.n));
                    Tensor parts = b.upload(TestData.poisoned(DType.F32, c.n, 2));
                    Tensor dH = b.upload(TestData.poisoned(DType.F32, c.n, c.d));
                    Tensor dW = b.upload(dW0);
                    try (logp; lse; ent; parts; dH; dW;
                         HostTensor wantDH = HostTensor.allocate(DType.F32, c.n, c.d); HostTensor wantDW = TestData.copy(dW0)) {
                        b.linearLogProbs(cfg, hd, wd, yd, logp, lse, ent, parts);
                        ref.linearLogProbsBackward(cfg, h, w, y, want.lseParts(), want.entropy(), g, he, wantDH, wantDW);
                        b.linearLogProbsBackward(cfg, hd, wd, yd, parts, ent, gd, hed, dH, dW);
                        double[] delta = logitError(h, w, c);
                        double lnV = Math.log(c.v);
                        HostTensor gotLogp = down(b, logp), gotLse = down(b, lse), gotEnt = down(b, ent);
                        HostTensor wantLogp = (HostTensor) want.logp(), wantLse = (HostTensor) want.lse(),
                                wantEnt = (HostTensor) want.entropy();
                        for (int i = 0; i < c.n; i++) {
                            double shift = 2 * delta[i] / c.temperature;
                            check(wantLogp.getFloat(i), gotLogp.getFloat(i), shift, where + " logp[" + i + "]");
                            check(wantLse.getFloat(i), gotLse.getFloat(i), shift, where + " lse[" + i + "]");
                            check(wantEnt.getFloat(i), gotEnt.getFloat(i), shift * (2 + 2 * lnV), where + " entropy[" + i + "]");
                        }
                        // gradients: each dz_v moves by a relative 2 delta / T (1 + |log p_v| + H) <= shift (2 + 2 ln V + 40)
                        // (|log p| is capped by the test's logits); the products add their own f32 rounding
                        double maxShift = 0;
                        for (double x : delta) {
                            maxShift = Math.max(maxShift, 2 * x / c.temperature);
                        }
                        double rel = 1e-5 + maxShift * (44 + 2 * lnV) + (c.v + c.n + c.d) * U;
                        double[][] exact = dz(cfg, h, w, y, g, he, c);
                        compareProducts(where + " gradHidden", wantDH, down(b, dH), magnitudesDH(exact, w, c), rel);
                        compareProducts(where + " gradWeight", wantDW, down(b, dW), magnitudesDW(exact, h, c, dW0), rel);
                        gotLogp.close();
                        gotLse.close();
                        gotEnt.close();
                    }
                }
            }
        }
    }

    private static void check(double want, double got, double shift, String where) {
        // the contract's own bound plus what the product's rounding of the logits moves the value by
        Tolerance.propagated(Tolerance.LOGPROBS_FORWARD.bound(want) + shift).assertClose(want, got, where);
    }

    private static HostTensor down(Backend b, Tensor t) {
        HostTensor out = HostTensor.allocate(t.dtype(), t.shape());
        b.download(t, out);
        return out;
    }

    /** |want - got| <= rel * magnitude elementwise (magnitude: the sum of |terms| of each element). */
    private static void compareProducts(String where, HostTensor want, HostTensor got, double[] magnitude, double rel) {
        try (got) {
            for (long e = 0; e < want.numel(); e++) {
                assertTrue(!TestData.isPoison(got, e), where + "[" + e + "] never written");
                double bound = rel * magnitude[(int) e] + Float.MIN_NORMAL;
                double diff = Math.abs(want.getFloat(e) - got.getFloat(e));
                if (!(diff <= bound + Math.ulp(want.getFloat(e)))) {
                    throw new AssertionError(String.format("%s[%d]: expected %.9g, actual %.9g (|diff| %.3g > bound %.3g)", where, e,
                            want.getFloat(e), got.getFloat(e), diff, bound));
                }
            }
        }
    }

    /** sum_v |dz_iv| |W_vk|: the size of dH_ik's terms. */
    private static double[] magnitudesDH(double[][] dz, HostTensor w, Case c) {
        double[] out = new double[c.n * c.d];
        for (int i = 0; i < c.n; i++) {
            for (int k = 0; k < c.d; k++) {
                double s = 0;
                for (int v = 0; v < c.v; v++) {
                    s += Math.abs(dz[i][v] * w.getFloat((long) v * c.d + k));
                }
                out[i * c.d + k] = s;
            }
        }
        return out;
    }

    /** |dW0_vk| + sum_i |dz_iv| |H_ik|: the size of dW_vk's terms. */
    private static double[] magnitudesDW(double[][] dz, HostTensor h, Case c, HostTensor dW0) {
        double[] out = new double[c.v * c.d];
        for (int v = 0; v < c.v; v++) {
            for (int k = 0; k < c.d; k++) {
                double s = Math.abs(dW0.getFloat((long) v * c.d + k));
                for (int i = 0; i < c.n; i++) {
                    s += Math.abs(dz[i][v] * h.getFloat((long) i * c.d + k));
                }
                out[v * c.d + k] = s;
            }
        }
        return out;
    }

    /** The exact logits gradient of every row, f64. */
    private static double[][] dz(LinearLogProbs.Config cfg, HostTensor h, HostTensor w, HostTensor y, HostTensor g, HostTensor he,
                                 Case c) {
        double[][] out = new double[c.n][c.v];
        for (int i = 0; i < c.n; i++) {
            long t = y.getLong(i);
            if (t == cfg.logProbs().ignoreIndex()) {
                continue;
            }
            double[] z = f64Logits(h, w, i, c.d, c.v);
            LogProbsReference.Row r = LogProbsReference.logProbsRow(z, (int) t, c.temperature);
            LogProbsReference.logProbsGradRow(z, (int) t, c.temperature, r.max(), r.logSum(), r.entropy(),
                    g == null ? 0 : g.getFloat(i), he == null ? 0 : he.getFloat(i), out[i]);
        }
        return out;
    }

    private static double[] f64Logits(HostTensor h, HostTensor w, int i, int d, int v) {
        return f64Logits(doubles(h), doubles(w), i, d, v);
    }

    /** Row i's logits sum_k H_ik W_jk in f64 from f64 copies of H [n, d] and W [v, d]. */
    private static double[] f64Logits(double[] hh, double[] ww, int i, int d, int v) {
        double[] z = new double[v];
        for (int j = 0; j < v; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) {
                s += hh[i * d + k] * ww[j * d + k];
            }
            z[j] = s;
        }
        return z;
    }

    /** L(H, W) = sum_i g_i logp_i + h_i H_i in f64 from f64 copies of H and W. */
    private static double loss(double[] hh, double[] ww, long[] y, double[] g, double[] he, int n, int d, int v, double t) {
        double total = 0;
        for (int i = 0; i < n; i++) {
            if (y[i] < 0) {
                continue;
            }
            LogProbsReference.Row r = LogProbsReference.logProbsRow(f64Logits(hh, ww, i, d, v), (int) y[i], t);
            total += g[i] * r.logp() + he[i] * r.entropy();
        }
        return total;
    }

    @Test
    void theReferenceGradientsAreTheDerivativesOfTheLoss() {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Case c = new Case(5, 7, 23, 0, DType.F32, DType.F32, 0.8f);
        Backend ref = new ReferenceBackend();
        LinearLogProbs.Config cfg = config(c);
        try (HostTensor h = hidden(rng, c); HostTensor w = weight(rng, c);
             HostTensor y = TestData.targets(rng, DType.I64, c.n, c.v, 0.2, LogProbs.DEFAULT_IGNORE_INDEX);
             HostTensor g = TestData.normal(rng, c.n, 1.0); HostTensor he = TestData.normal(rng, c.n, 0.5);
             LogProbs.Result fwd = ref.linearLogProbs(cfg, h, w, y, true);
             HostTensor dH = TestData.poisoned(DType.F32, c.n, c.d); HostTensor dW = HostTensor.allocate(DType.F32, c.v, c.d).fill(0)) {
            ref.linearLogProbsBackward(cfg, h, w, y, fwd.lseParts(), fwd.entropy(), g, he, dH, dW);
            double[] hh = doubles(h);
            double[] ww = doubles(w);
            long[] ys = new long[c.n];
            double[] gs = doubles(g);
            double[] hs = doubles(he);
            for (int i = 0; i < c.n; i++) {
                ys[i] = y.getLong(i) == LogProbs.DEFAULT_IGNORE_INDEX ? -1 : y.getLong(i);
            }
            java.util.function.DoubleSupplier l = () -> loss(hh, ww, ys, gs, hs, c.n, c.d, c.v, c.temperature);
            for (int e = 0; e < hh.length; e++) {
                Tolerance.FINITE_DIFFERENCE.assertClose(centralDifference(hh, e, l), dH.getFloat(e), "dH[" + e + "] seed=" + seed);
            }
            for (int e = 0; e < ww.length; e += 3) {
                Tolerance.FINITE_DIFFERENCE.assertClose(centralDifference(ww, e, l), dW.getFloat(e), "dW[" + e + "] seed=" + seed);
            }
        }
    }

    /** (L(x + h e_i) - L(x - h e_i)) / 2h at h = 1e-6, x[i] restored. */
    private static double centralDifference(double[] x, int i, java.util.function.DoubleSupplier loss) {
        double step = 1e-6;
        double keep = x[i];
        x[i] = keep + step;
        double up = loss.getAsDouble();
        x[i] = keep - step;
        double down = loss.getAsDouble();
        x[i] = keep;
        return (up - down) / (2 * step);
    }

    private static double[] doubles(HostTensor t) {
        double[] out = new double[(int) t.numel()];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.getFloat(i);
        }
        return out;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void microBatchesAccumulateTheWholeBatchsWeightGradient(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Case c = new Case(12, 20, 90, 5, DType.F32, DType.F32, 1f);
        LinearLogProbs.Config cfg = config(c);
        try (Backend b = bt.open(); HostTensor h = hidden(rng, c); HostTensor w = weight(rng, c);
             HostTensor y = TestData.targets(rng, DType.I32, c.n, c.v, 0.1, LogProbs.DEFAULT_IGNORE_INDEX);
             HostTensor g = TestData.normal(rng, c.n, 1.0);
             HostTensor whole = HostTensor.allocate(DType.F32, c.v, c.d).fill(0);
             HostTensor split = HostTensor.allocate(DType.F32, c.v, c.d).fill(0);
             HostTensor dHWhole = HostTensor.allocate(DType.F32, c.n, c.d);
             HostTensor dHSplit = HostTensor.allocate(DType.F32, c.n, c.d)) {
            try (Tensor hd = b.upload(h); Tensor wd = b.upload(w); Tensor yd = b.upload(y); Tensor gd = b.upload(g);
                 Tensor dW = b.upload(whole); Tensor dH = b.upload(dHWhole);
                 LogProbs.Result fwd = b.linearLogProbs(cfg, hd, wd, yd, false)) {
                b.linearLogProbsBackward(cfg, hd, wd, yd, fwd.lseParts(), null, gd, null, dH, dW);
                b.download(dW, whole);
                b.download(dH, dHWhole);
            }
            int[] cut = {0, 7, 12}; // 7: the parts chunk differently from the whole
            try (Tensor wd = b.upload(w); Tensor dW = b.upload(split)) {
                for (int part = 0; part < 2; part++) {
                    int r0 = cut[part];
                    int r = cut[part + 1] - r0;
                    try (HostTensor hp = rowsOf(h, r0, r, c.d); HostTensor yp = rowsOf(y, r0, r, 1); HostTensor gp = rowsOf(g, r0, r, 1);
                         Tensor hd = b.upload(hp); Tensor yd = b.upload(yp); Tensor gd = b.upload(gp);
                         Tensor dH = b.allocate(DType.F32, r, c.d);
                         LogProbs.Result fwd = b.linearLogProbs(cfg, hd, wd, yd, false);
                         HostTensor dHp = HostTensor.allocate(DType.F32, r, c.d)) {
                        b.linearLogProbsBackward(cfg, hd, wd, yd, fwd.lseParts(), null, gd, null, dH, dW);
                        b.download(dH, dHp);
                        for (long e = 0; e < dHp.numel(); e++) {
                            dHSplit.setFloat((long) r0 * c.d + e, dHp.getFloat(e));
                        }
                    }
                }
                b.download(dW, split);
            }
            for (long e = 0; e < whole.numel(); e++) {
                new Tolerance(1e-6, 1e-5).assertClose(whole.getFloat(e), split.getFloat(e), bt + " dW[" + e + "] seed=" + seed);
            }
            for (long e = 0; e < dHWhole.numel(); e++) { // a row's own, up to the BLAS's rounding of a row in another block
                new Tolerance(1e-6, 1e-5).assertClose(dHWhole.getFloat(e), dHSplit.getFloat(e), bt + " dH[" + e + "] seed=" + seed);
            }
        }
    }

    private static HostTensor rowsOf(HostTensor t, int from, int count, int width) {
        HostTensor out = HostTensor.allocate(t.dtype(), width == 1 ? new long[] {count} : new long[] {count, width});
        java.lang.foreign.MemorySegment.copy(t.segment(), (long) from * width * t.dtype().byteSize(), out.segment(), 0,
                out.byteSize());
        return out;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void theWorkspaceIsBoundedByTheCallerNotByTheVocabulary(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        long workspace = 64 << 10; // 64 KiB: 4096 logits a chunk
        try (Backend b = bt.open()) {
            long[] peaks = new long[2];
            int[] vocabs = {600, 4000};
            for (int t = 0; t < 2; t++) {
                Case c = new Case(40, 12, vocabs[t], 0, DType.F32, DType.BF16, 1f);
                LinearLogProbs.Config cfg = config(c).withWorkspaceBytes(workspace);
                try (HostTensor h = hidden(rng, c); HostTensor w = weight(rng, c);
                     HostTensor y = TestData.targets(rng, DType.I64, c.n, c.v, 0, -100); HostTensor g = TestData.normal(rng, c.n, 1);
                     Tensor hd = b.upload(h); Tensor wd = b.upload(w); Tensor yd = b.upload(y); Tensor gd = b.upload(g);
                     LogProbs.Result fwd = b.linearLogProbs(cfg, hd, wd, yd, false);
                     Tensor dH = b.allocate(DType.F32, c.n, c.d); Tensor dW = b.upload(HostTensor.allocate(DType.F32, c.v, c.d).fill(0))) {
                    b.resetWorkspacePeak();
                    b.linearLogProbs(cfg, hd, wd, yd, fwd.logp(), null, null, fwd.lseParts());
                    b.linearLogProbsBackward(cfg, hd, wd, yd, fwd.lseParts(), null, gd, null, dH, dW);
                    peaks[t] = b.workspacePeakBytes();
                }
            }
            // the chunk is within the caller's bound; what else an op takes (a widened bf16 tile of W) is a
            // tile of at most 8 MiB, here all of W's f32 copy (V d 4 bytes) — the weight itself, not N x V
            for (int t = 0; t < 2; t++) {
                long allowed = workspace + (long) vocabs[t] * 12 * 4;
                assertTrue(peaks[t] <= allowed, bt + ": V = " + vocabs[t] + " took " + peaks[t] + " bytes, allowed " + allowed);
                assertTrue(peaks[t] < 40L * vocabs[t] * 4, bt + ": less than the N x V logits");
            }
        }
    }

    /** A loss case: the sequences' lengths, rows per chunk, and the loss; {@code passes} is how many passes over W it takes. */
    private record LossCase(int[] lengths, long chunk, PolicyLoss.Config loss, boolean withSequences, int passes, int vocab,
                            long workspace) {
        LossCase(int[] lengths, long chunk, PolicyLoss.Config loss, boolean withSequences, int passes) {
            this(lengths, chunk, loss, withSequences, passes, 130, 0);
        }
    }

    private static final LossCase[] LOSS_CASES = {
        // token ratio, token-mean, KL and entropy bonus, fixed chunks (4 does not divide 14): one pass
        new LossCase(new int[] {3, 5, 2, 4}, 4, PolicyLoss.Config.defaults().withKl(PolicyLoss.KlEstimator.K3, 0.05f)
                .withEntropyCoef(0.01f), false, 1),
        // GSPO's sequence ratio, seq-mean-token-mean: whole sequences packed into chunks of 6 rows: one pass
        new LossCase(new int[] {3, 5, 2, 4}, 6, PolicyLoss.Config.defaults().withRatio(PolicyLoss.RatioLevel.SEQUENCE)
                .withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_MEAN).withClip(3e-4f, 4e-4f), true, 1),
        // a sequence longer than a chunk: two passes
        new LossCase(new int[] {9, 3}, 4, PolicyLoss.Config.defaults().withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_SUM)
                .withLoss(PolicyLoss.LossType.CISPO).withEntropyCoef(-0.02f), true, 2),
        // an explicit (global) denominator, dual clip, the norm mode
        new LossCase(new int[] {4, 4, 6}, 5, PolicyLoss.Config.defaults().withDualClip(3f)
                .withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_SUM_NORM).withDenominator(32), true, 1),
        // a workspace of 2 rows of V = 600: native tiles the vocabulary and takes two passes; the others one row chunk at a time
        new LossCase(new int[] {3, 5, 2}, 0, PolicyLoss.Config.defaults().withRatio(PolicyLoss.RatioLevel.SEQUENCE)
                .withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_MEAN).withClip(3e-4f, 4e-4f).withEntropyCoef(0.01f), true, 2,
                600, 4 * 600 * 2),
        // the rollout correction: sequence-level TIS, normalised by the batch's mean (fixed before the one pass), rejection
        new LossCase(new int[] {3, 5, 2, 4}, 6, PolicyLoss.Config.defaults().withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_MEAN)
                .withRollout(PolicyLoss.RolloutCorrection.truncated(PolicyLoss.WeightLevel.SEQUENCE, 1.5)
                        .withBatchNormalize(true, Double.NaN).withRejection(PolicyLoss.Rejection.parse("token_k1", "0.6_1.6"))), true, 1),
        // bypass mode with rejection: the mask depends on logp, so the loss needs it whole first (two passes)
        new LossCase(new int[] {4, 4, 6}, 5, PolicyLoss.Config.defaults().withLoss(PolicyLoss.LossType.REINFORCE)
                .withRollout(PolicyLoss.RolloutCorrection.truncated(PolicyLoss.WeightLevel.TOKEN, 1.3).withBypass(true)
                        .withRejection(PolicyLoss.Rejection.parse("token_k2", "0.08"))), true, 2),
    };

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void theFusedLossMatchesTheLossOfTheLogProbsByDefinition(BackendUnderTest bt) {
        try (Backend b = bt.open()) {
            fusedLossMatches(b, bt.toString());
        }
    }

    private void fusedLossMatches(Backend b, String bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Backend ref = new ReferenceBackend();
        {
            for (LossCase lc : LOSS_CASES) {
                int n = java.util.Arrays.stream(lc.lengths).sum();
                Case c = new Case(n, 21, lc.vocab, lc.chunk, DType.BF16, DType.F32, 1f, lc.workspace);
                String where = bt + " " + lc.loss + " lengths=" + java.util.Arrays.toString(lc.lengths) + " chunk=" + lc.chunk
                        + " seed=" + seed;
                LinearLogProbs.Config cfg = config(c);
                try (HostTensor h = hidden(rng, c); HostTensor w = weight(rng, c);
                     HostTensor y = TestData.targets(rng, DType.I64, n, c.v, 0.1, LogProbs.DEFAULT_IGNORE_INDEX);
                     LogProbs.Result fwd = ref.linearLogProbs(cfg, h, w, y, false);
                     HostTensor old = HostTensor.allocate(DType.F32, n); HostTensor adv = TestData.normal(rng, n, 1.0);
                     HostTensor mask = HostTensor.allocate(DType.U8, n); HostTensor refLogp = HostTensor.allocate(DType.F32, n);
                     HostTensor rollout = HostTensor.allocate(DType.F32, n);
                     SequenceLayout seqs = SequenceLayout.ofLengths(lc.lengths);
                     HostTensor wantDH = HostTensor.allocate(DType.F32, n, c.d);
                     HostTensor wantDW = HostTensor.allocate(DType.F32, c.v, c.d).fill(0);
                     HostTensor wantLogp = HostTensor.allocate(DType.F32, n)) {
                    for (int i = 0; i < n; i++) {
                        float lp = ((HostTensor) fwd.logp()).getFloat(i);
                        old.setFloat(i, lp + (float) (rng.nextGaussian() * 0.3)); // ratios around 1, some clipped
                        refLogp.setFloat(i, lp + (float) (rng.nextGaussian() * 0.2));
                        rollout.setFloat(i, old.getFloat(i) + (float) (rng.nextGaussian() * 0.2));
                        mask.setLong(i, rng.nextDouble() < 0.85 && y.getLong(i) != LogProbs.DEFAULT_IGNORE_INDEX ? 1 : 0);
                    }
                    LinearLogProbs.LossInputs hostIn = new LinearLogProbs.LossInputs(h, w, y, old, adv, mask)
                            .withSequences(lc.withSequences ? seqs : null).withRefLogp(refLogp)
                            .withRolloutLogp(lc.loss.rollout().needsRolloutLogp() ? rollout : null);
                    PolicyLoss.Stats want = ref.linearPolicyLoss(cfg, lc.loss, hostIn, wantLogp, wantDH, wantDW);
                    try (Tensor hd = b.upload(h); Tensor wd = b.upload(w); Tensor yd = b.upload(y); Tensor od = b.upload(old);
                         Tensor ad = b.upload(adv); Tensor md = b.upload(mask); Tensor rd = b.upload(refLogp);
                         Tensor rolld = b.upload(rollout);
                         Tensor logp = b.upload(TestData.poisoned(DType.F32, n));
                         Tensor dH = b.upload(TestData.poisoned(DType.F32, n, c.d));
                         Tensor dW = b.upload(HostTensor.allocate(DType.F32, c.v, c.d).fill(0))) {
                        PolicyLoss.Stats got = b.linearPolicyLoss(cfg, lc.loss, new LinearLogProbs.LossInputs(hd, wd, yd, od, ad, md)
                                .withSequences(lc.withSequences ? seqs : null).withRefLogp(rd)
                                .withRolloutLogp(lc.loss.rollout().needsRolloutLogp() ? rolld : null), logp, dH, dW);
                        Tolerance.STATISTIC.assertClose(want.loss(), got.loss(), where + " loss");
                        assertEquals(want.tokens(), got.tokens(), where + " tokens");
                        assertEquals(want.sequences(), got.sequences(), where + " sequences");
                        assertEquals(want.denominator(), got.denominator(), where + " denominator");
                        assertEquals(want.clipHigh() + want.clipLow(), got.clipHigh() + got.clipLow(), 1, where + " clipped");
                        Tolerance.STATISTIC.assertClose(want.ratioSum(), got.ratioSum(), where + " ratio sum");
                        assertEquals(want.rcRejectedTokens(), got.rcRejectedTokens(), 1, where + " rejected");
                        Tolerance.STATISTIC.assertClose(want.rcNormalizer(), got.rcNormalizer(), where + " weight mean");
                        HostTensor gotLogp = down(b, logp);
                        for (int i = 0; i < n; i++) {
                            Tolerance.propagated(1e-5).assertClose(wantLogp.getFloat(i), gotLogp.getFloat(i), where + " logp[" + i + "]");
                        }
                        gotLogp.close();
                        assertCloseToScale(where + " gradHidden", wantDH, down(b, dH));
                        assertCloseToScale(where + " gradWeight", wantDW, down(b, dW));
                    }
                }
            }
        }
    }

    /**
     * The fused loss with token selections whose statistics depend on logp and the entropy
     * (kl_cov, top_entropy_quantile): it takes two passes and resolves them after its forward, so
     * it must equal, on the same backend, the forward, the policy-loss op (which resolves them on
     * the same log-probs) and the backward composed by hand.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void selectionsByLogpMatchTheComposedPath(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        int n = 40;
        Case c = new Case(n, 16, 120, 7, DType.F32, DType.F32, 1f);
        LinearLogProbs.Config cfg = config(c);
        PolicyLoss.Config[] losses = {
            PolicyLoss.Config.defaults().withLoss(PolicyLoss.LossType.KL_COV).withDenominator(n)
                    .withSelection(PolicyLoss.Selection.none().withCovariance(0.2, 1, 5, 0.3f)),
            PolicyLoss.Config.defaults().withLoss(PolicyLoss.LossType.REINFORCE).withDenominator(n).withEntropyCoef(0.01f)
                    .withSelection(PolicyLoss.Selection.none().withTopEntropyQuantile(0.3)),
        };
        try (Backend b = bt.open(); HostTensor h = hidden(rng, c); HostTensor w = weight(rng, c);
             HostTensor y = TestData.targets(rng, DType.I64, n, c.v, 0.0, LogProbs.DEFAULT_IGNORE_INDEX);
             HostTensor old = TestData.normal(rng, n, 1.0); HostTensor adv = TestData.normal(rng, n, 1.0);
             HostTensor mask = HostTensor.allocate(DType.F32, n).fill(1f)) {
            for (int i = 0; i < n; i++) {
                old.setFloat(i, -3f + 0.3f * old.getFloat(i));
            }
            for (PolicyLoss.Config loss : losses) {
                String where = bt + " " + loss.loss() + " seed=" + seed;
                try (Tensor hd = b.upload(h); Tensor wd = b.upload(w); Tensor yd = b.upload(y); Tensor od = b.upload(old);
                     Tensor ad = b.upload(adv); Tensor md = b.upload(mask);
                     Tensor dH = b.upload(TestData.poisoned(DType.F32, n, c.d));
                     Tensor dW = b.upload(HostTensor.allocate(DType.F32, c.v, c.d).fill(0));
                     Tensor dH2 = b.upload(TestData.poisoned(DType.F32, n, c.d));
                     Tensor dW2 = b.upload(HostTensor.allocate(DType.F32, c.v, c.d).fill(0));
                     LogProbs.Result fwd = b.linearLogProbs(cfg, hd, wd, yd, true);
                     Tensor g = b.allocate(DType.F32, n); Tensor gh = b.allocate(DType.F32, n)) {
                    PolicyLoss.Stats fused = b.linearPolicyLoss(cfg, loss, new LinearLogProbs.LossInputs(hd, wd, yd, od, ad, md), null,
                            dH, dW);
                    PolicyLoss.Stats composed = b.policyLoss(loss, new PolicyLoss.Inputs(fwd.logp(), od, ad, md).withEntropy(fwd.entropy()),
                            g, gh);
                    b.linearLogProbsBackward(cfg, hd, wd, yd, fwd.lseParts(), fwd.entropy(), g, gh, dH2, dW2);
                    Tolerance.STATISTIC.assertClose(composed.loss(), fused.loss(), where + " loss");
                    assertEquals(composed.clipHigh(), fused.clipHigh(), where + " the same selections");
                    assertCloseToScale(where + " gradHidden", down(b, dH2), down(b, dH));
                    assertCloseToScale(where + " gradWeight", down(b, dW2), down(b, dW));
                }
            }
        }
    }

    /**
     * Each element within 1e-3 of the largest |element| plus 1e-3 relative: the loss's gradient
     * through the product's rounded logits (a clip decision can flip for a ratio within rounding of
     * its bound, so no tighter); a wrong chunk, a missing sequence or a lost accumulation is O(1).
     */
    private static void assertCloseToScale(String where, HostTensor want, HostTensor got) {
        try (got) {
            double scale = 0;
            for (long e = 0; e < want.numel(); e++) {
                scale = Math.max(scale, Math.abs(want.getFloat(e)));
            }
            assertTrue(scale > 0, where + ": a gradient that is not zero");
            for (long e = 0; e < want.numel(); e++) {
                new Tolerance(1e-3 * scale, 1e-3).assertClose(want.getFloat(e), got.getFloat(e), where + "[" + e + "]");
            }
        }
    }

    /**
     * Rows whose target has p_y = 1 - 1e-7, the rest of the mass spread over every tile of the
     * vocabulary: logp = -1e-7 to float32's precision (the log-probs contract, no product rounding:
     * H = (1, 0) and W = (a_v, 0) make the products exact), whether a backend takes whole rows or,
     * with a small workspace, tiles of the vocabulary.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void nearCertainTokensKeepTheirDigitsAcrossVocabularyTiles(BackendUnderTest bt) {
        int n = 4;
        int v = 900;
        int[] target = {0, 450, 899, 300};
        Backend ref = new ReferenceBackend();
        int d = n + 1; // row i's hidden state is e_0 + e_(i+1): column i+1 of W lifts only row i's target
        try (Backend b = bt.open(); HostTensor h = HostTensor.allocate(DType.F32, n, d).fill(0f);
             HostTensor w = HostTensor.allocate(DType.F32, v, d).fill(0f); HostTensor y = HostTensor.allocate(DType.I64, n)) {
            float rest = (float) Math.log(1e-7 / (v - 1)); // the other v - 1 tokens share 1e-7 of the mass
            for (int j = 0; j < v; j++) {
                w.setFloat((long) j * d, rest);
            }
            for (int i = 0; i < n; i++) {
                h.setFloat((long) i * d, 1f);
                h.setFloat((long) i * d + i + 1, 1f);
                y.setLong(i, target[i]);
                w.setFloat((long) target[i] * d + i + 1, -rest); // row i: z = 0 at its target, rest elsewhere (exactly)
            }
            for (long ws : new long[] {0, 4L * v * 2}) {
                LinearLogProbs.Config cfg = ws == 0 ? LinearLogProbs.Config.defaults() : LinearLogProbs.Config.defaults().withWorkspaceBytes(ws);
                try (LogProbs.Result want = ref.linearLogProbs(cfg, h, w, y, true); LogProbs.Result got = b.linearLogProbs(cfg, h, w, y, true)) {
                    HostTensor gl = down(b, got.logp());
                    HostTensor ge = down(b, got.entropy());
                    for (int i = 0; i < n; i++) {
                        double wl = ((HostTensor) want.logp()).getFloat(i);
                        assertTrue(wl < 0 && wl > -1e-5, "the truth is near 0: " + wl);
                        Tolerance.LOGPROBS_FORWARD.assertClose(wl, gl.getFloat(i), bt + " workspace " + ws + " logp[" + i + "]");
                        Tolerance.LOGPROBS_FORWARD.assertClose(((HostTensor) want.entropy()).getFloat(i), ge.getFloat(i),
                                bt + " workspace " + ws + " entropy[" + i + "]");
                    }
                    gl.close();
                    ge.close();
                }
            }
        }
    }

    @Test
    void chunksHoldWholeSequencesOrTheLossTakesTwoPasses() {
        try (SequenceLayout seqs = SequenceLayout.ofLengths(3, 5, 2, 4); SequenceLayout longOne = SequenceLayout.ofLengths(9, 3)) {
            assertEquals(java.util.List.of(0L, 4L, 8L, 12L, 14L), boxed(io.rlkernels.backend.internal.LinearChunks.bounds(null, 14, 4)));
            assertEquals(java.util.List.of(0L, 3L, 8L, 14L), boxed(io.rlkernels.backend.internal.LinearChunks.bounds(seqs, 14, 6)));
            assertEquals(java.util.List.of(0L, 14L), boxed(io.rlkernels.backend.internal.LinearChunks.bounds(seqs, 14, 14)));
            assertEquals(null, io.rlkernels.backend.internal.LinearChunks.bounds(longOne, 12, 4));
            assertEquals(java.util.List.of(0L, 0L), boxed(io.rlkernels.backend.internal.LinearChunks.bounds(null, 0, 4)));
        }
    }

    private static java.util.List<Long> boxed(long[] x) {
        return java.util.Arrays.stream(x).boxed().toList();
    }

    @Test
    void badArgumentsAreRefusedByName() {
        Backend ref = new ReferenceBackend();
        LinearLogProbs.Config cfg = LinearLogProbs.Config.defaults();
        try (HostTensor h = HostTensor.allocate(DType.F32, 4, 8).fill(0.1f); HostTensor w = HostTensor.allocate(DType.F32, 10, 8).fill(0.2f);
             HostTensor wBad = HostTensor.allocate(DType.F32, 10, 7).fill(0.2f); HostTensor y = HostTensor.of(new long[] {1, 2, 3, 10}, 4);
             HostTensor yOk = HostTensor.of(new long[] {1, 2, 3, 9}, 4); HostTensor logp = HostTensor.allocate(DType.F32, 4);
             HostTensor hi = HostTensor.allocate(DType.I32, 4, 8)) {
            assertTrue(assertThrows(IllegalArgumentException.class, () -> ref.linearLogProbs(cfg, h, wBad, yOk, logp, null, null, null))
                    .getMessage().startsWith("weight: expected [V, 8]"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> ref.linearLogProbs(cfg, h, w, y, logp, null, null, null))
                    .getMessage().startsWith("targets[3]"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> ref.linearLogProbs(cfg, hi, w, yOk, logp, null, null, null))
                    .getMessage().startsWith("hidden:"));
            assertTrue(assertThrows(IllegalArgumentException.class,
                    () -> ref.linearLogProbs(cfg.withWorkspaceBytes(39), h, w, yOk, logp, null, null, null)).getMessage()
                    .startsWith("workspaceBytes: expected at least 4 V = 40"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> ref.linearLogProbs(cfg, h, w, yOk, h, null, null, null))
                    .getMessage().startsWith("logp:"));
            assertThrows(IllegalArgumentException.class, () -> new LinearLogProbs.Config(LogProbs.Config.defaults(), 0, 0));
        }
    }
}
