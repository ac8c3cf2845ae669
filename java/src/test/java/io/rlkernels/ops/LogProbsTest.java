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

/** Token log-probs on every backend against the f64 reference (ARCHITECTURE §5.1, §8). */
class LogProbsTest {
    private static final DType[] FLOAT_TYPES = {DType.F32, DType.BF16, DType.F16};
    /** V = 1, below a vector, not a multiple of any vector width, of a 2048-element chunk, or of a block. */
    private static final long[][] SHAPES = {{37, 1}, {29, 7}, {19, 1000}, {13, 4099}, {5, 3 * 2048 + 5}};

    static Stream<Arguments> backendDtypeShapeTemperature() {
        List<Arguments> out = new ArrayList<>();
        BackendUnderTest.fast().forEach(b -> {
            for (DType dt : FLOAT_TYPES) {
                for (long[] s : SHAPES) {
                    for (float t : new float[] {1.0f, 0.7f}) {
                        out.add(Arguments.of(b, dt, s[0], s[1], t));
                    }
                }
            }
        });
        return out.stream();
    }

    static Stream<Arguments> backendDtype() {
        List<Arguments> out = new ArrayList<>();
        BackendUnderTest.fast().forEach(b -> {
            for (DType dt : FLOAT_TYPES) {
                out.add(Arguments.of(b, dt));
            }
        });
        return out.stream();
    }

    static Stream<BackendUnderTest> fast() {
        return BackendUnderTest.fast();
    }

    static Stream<BackendUnderTest> all() {
        return BackendUnderTest.all();
    }

    /** Forward outputs, downloaded to the host; lseParts [N, 2] is what the backward takes. */
    record Outputs(HostTensor logp, HostTensor lse, HostTensor entropy, HostTensor lseParts) implements AutoCloseable {
        @Override
        public void close() {
            logp.close();
            lse.close();
            if (entropy != null) {
                entropy.close();
            }
            lseParts.close();
        }
    }

    /** Runs the forward with every tensor where the backend computes (device memory for cuda), outputs poisoned. */
    static Outputs forward(Backend b, LogProbs.Config c, HostTensor logits, HostTensor targets, boolean withEntropy) {
        long n = logits.dim(0);
        try (Tensor z = b.upload(logits); Tensor y = b.upload(targets);
             HostTensor p1 = TestData.poisoned(DType.F32, n); HostTensor p2 = TestData.poisoned(DType.F32, n);
             HostTensor p3 = TestData.poisoned(DType.F32, n); HostTensor p4 = TestData.poisoned(DType.F32, n, 2);
             Tensor logp = b.upload(p1); Tensor lse = b.upload(p2); Tensor entropy = withEntropy ? b.upload(p3) : null;
             Tensor parts = b.upload(p4)) {
            b.logProbs(c, z, y, logp, lse, entropy, parts);
            Outputs out = new Outputs(HostTensor.allocate(DType.F32, n), HostTensor.allocate(DType.F32, n),
                    withEntropy ? HostTensor.allocate(DType.F32, n) : null, HostTensor.allocate(DType.F32, n, 2));
            b.download(logp, out.logp());
            b.download(lse, out.lse());
            if (withEntropy) {
                b.download(entropy, out.entropy());
            }
            b.download(parts, out.lseParts());
            return out;
        }
    }

    static Outputs referenceForward(LogProbs.Config c, HostTensor logits, HostTensor targets) {
        try (Backend ref = new ReferenceBackend()) {
            return forward(ref, c, logits, targets, true);
        }
    }

    static void assertForwardClose(String ctx, Outputs expected, Outputs actual, Tolerance tol) {
        Compare.assertClose(ctx + " logp", expected.logp(), actual.logp(), tol);
        Compare.assertClose(ctx + " lse", expected.lse(), actual.lse(), tol);
        if (actual.entropy() != null) {
            Compare.assertClose(ctx + " entropy", expected.entropy(), actual.entropy(), tol);
        }
        Compare.assertClose(ctx + " lseParts", expected.lseParts(), actual.lseParts(), tol);
    }

    @ParameterizedTest(name = "{0} {1} [{2}, {3}] T={4}")
    @MethodSource("backendDtypeShapeTemperature")
    void forwardMatchesReference(BackendUnderTest bt, DType dtype, long n, long v, float temperature) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        LogProbs.Config c = LogProbs.Config.defaults().withTemperature(temperature);
        try (Backend b = bt.open();
             HostTensor logits = TestData.logits(rng, dtype, n, v, 4.0);
             HostTensor targets = TestData.targets(rng, DType.I64, n, v, 0.2, c.ignoreIndex());
             Outputs expected = referenceForward(c, logits, targets);
             Outputs actual = forward(b, c, logits, targets, true)) {
            assertForwardClose(bt + " " + dtype + " [" + n + ", " + v + "] T=" + temperature + " seed=" + seed,
                    expected, actual, Tolerance.F32_OUTPUT);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fast")
    void forwardWithoutEntropyWritesTheSameLogp(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        LogProbs.Config c = LogProbs.Config.defaults();
        try (Backend b = bt.open();
             HostTensor logits = TestData.logits(rng, DType.F32, 17, 3000, 2.0);
             HostTensor targets = TestData.targets(rng, DType.I32, 17, 3000, 0.1, c.ignoreIndex());
             Outputs expected = referenceForward(c, logits, targets);
             Outputs actual = forward(b, c, logits, targets, false)) {
            assertForwardClose(bt + " no entropy seed=" + seed, expected, actual, Tolerance.F32_OUTPUT);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fast")
    void logitsOfMagnitude1e4LoseNoDigits(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        for (float temperature : new float[] {1.0f, 0.7f}) {
            LogProbs.Config c = LogProbs.Config.defaults().withTemperature(temperature);
            try (Backend b = bt.open();
                 HostTensor logits = HostTensor.allocate(DType.F32, 9, 5003);
                 HostTensor targets = TestData.targets(rng, DType.I64, 9, 5003, 0.0, c.ignoreIndex())) {
                // a common offset of 1e4 plus a spread of a few units: naive exp overflows, naive
                // z/T - lse in f32 loses three digits
                for (long i = 0; i < logits.numel(); i++) {
                    logits.setFloat(i, (float) ((i % 2 == 0 ? 1e4 : -1e4) + rng.nextGaussian() * 3));
                }
                try (Outputs expected = referenceForward(c, logits, targets);
                     Outputs actual = forward(b, c, logits, targets, true)) {
                    assertForwardClose(bt + " |z|=1e4 T=" + temperature + " seed=" + seed, expected, actual,
                            Tolerance.F32_OUTPUT);
                    HostTensor g = TestData.normal(rng, 9, 1.0);
                    HostTensor h = TestData.normal(rng, 9, 1.0);
                    try (HostTensor want = backward(new ReferenceBackend(), c, logits, targets, expected, g, h, DType.F32);
                         HostTensor got = backward(b, c, logits, targets, expected, g, h, DType.F32)) {
                        Compare.assertClose(bt + " |z|=1e4 backward T=" + temperature + " seed=" + seed, want, got,
                                Tolerance.F32_OUTPUT);
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fast")
    void bannedTokensAtMinusInfinityHaveZeroProbability(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        LogProbs.Config c = LogProbs.Config.defaults().withTemperature(0.9f);
        long n = 11;
        long v = 777;
        try (Backend b = bt.open();
             HostTensor logits = TestData.logits(rng, DType.F32, n, v, 3.0);
             HostTensor targets = TestData.targets(rng, DType.I32, n, v, 0.0, c.ignoreIndex())) {
            for (long i = 0; i < n * v; i++) {
                if (rng.nextDouble() < 0.3) {
                    logits.setFloat(i, Float.NEGATIVE_INFINITY);
                }
            }
            // row 0: the first 2048 entries... of a short row: all but the target banned; row 1: its target banned
            long y0 = targets.getLong(0);
            for (long j = 0; j < v; j++) {
                logits.setFloat(j, j == y0 ? 1.5f : Float.NEGATIVE_INFINITY);
            }
            logits.setFloat(v + targets.getLong(1), Float.NEGATIVE_INFINITY);
            try (Outputs expected = referenceForward(c, logits, targets);
                 Outputs actual = forward(b, c, logits, targets, true)) {
                Tolerance.LOGPROBS_FORWARD.assertClose(0.0, actual.logp().getFloat(0), "only the target is allowed: logp = 0");
                Tolerance.LOGPROBS_FORWARD.assertClose(0.0, actual.entropy().getFloat(0), "only the target is allowed: H = 0");
                assertEquals(Float.NEGATIVE_INFINITY, actual.logp().getFloat(1), "a banned target has logp = -inf");
                assertForwardClose(bt + " -inf seed=" + seed, expected, actual, Tolerance.F32_OUTPUT);
                HostTensor g = TestData.normal(rng, n, 1.0);
                HostTensor h = TestData.normal(rng, n, 1.0);
                // the banned target's row has an infinite logp; its gradient is still finite
                try (HostTensor want = backward(new ReferenceBackend(), c, logits, targets, expected, g, h, DType.F32);
                     HostTensor got = backward(b, c, logits, targets, expected, g, h, DType.F32)) {
                    Compare.assertClose(bt + " -inf backward seed=" + seed, want, got, Tolerance.F32_OUTPUT);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fast")
    void ignoredRowsAreZeroWhateverTheIgnoreIndex(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        for (long ignore : new long[] {-100, -1, 5}) {
            LogProbs.Config c = LogProbs.Config.defaults().withIgnoreIndex(ignore);
            try (Backend b = bt.open();
                 HostTensor logits = TestData.logits(rng, DType.BF16, 23, 300, 2.0);
                 HostTensor targets = TestData.targets(rng, DType.I64, 23, 300, 0.5, ignore);
                 Outputs expected = referenceForward(c, logits, targets);
                 Outputs actual = forward(b, c, logits, targets, true)) {
                int ignored = 0;
                for (long i = 0; i < 23; i++) {
                    if (targets.getLong(i) == ignore) {
                        ignored++;
                        assertEquals(0f, actual.logp().getFloat(i), "ignored row " + i + " logp");
                        assertEquals(0f, actual.lse().getFloat(i), "ignored row " + i + " lse");
                        assertEquals(0f, actual.entropy().getFloat(i), "ignored row " + i + " entropy");
                    }
                }
                assertTrue(ignored > 0, "the draw ignored some rows");
                assertForwardClose(bt + " ignore=" + ignore + " seed=" + seed, expected, actual, Tolerance.F32_OUTPUT);
                HostTensor g = TestData.normal(rng, 23, 1.0);
                try (HostTensor grad = backward(b, c, logits, targets, expected, g, null, DType.F32)) {
                    for (long i = 0; i < 23; i++) {
                        if (targets.getLong(i) == ignore) {
                            for (long j = 0; j < 300; j++) {
                                assertEquals(0f, grad.getFloat(i * 300 + j), "ignored row " + i + " gradient");
                            }
                        }
                    }
                }
            }
        }
    }

    /** Runs the backward (into a poisoned buffer of {@code gradDtype}) and downloads the gradient. */
    static HostTensor backward(Backend b, LogProbs.Config c, HostTensor logits, HostTensor targets, Outputs fwd,
                               HostTensor g, HostTensor h, DType gradDtype) {
        try (Tensor z = b.upload(logits); Tensor y = b.upload(targets); Tensor parts = b.upload(fwd.lseParts());
             Tensor entropy = b.upload(fwd.entropy()); Tensor gd = g == null ? null : b.upload(g);
             Tensor hd = h == null ? null : b.upload(h);
             HostTensor poison = TestData.poisoned(gradDtype, logits.shape()); Tensor grad = b.upload(poison)) {
            b.logProbsBackward(c, z, y, parts, h == null ? null : entropy, gd, hd, grad);
            HostTensor out = HostTensor.allocate(gradDtype, logits.shape());
            b.download(grad, out);
            return out;
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("backendDtype")
    void backwardMatchesReference(BackendUnderTest bt, DType dtype) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        for (long[] s : SHAPES) {
            long n = s[0];
            long v = s[1];
            LogProbs.Config c = LogProbs.Config.defaults().withTemperature(0.8f);
            try (Backend b = bt.open();
                 HostTensor logits = TestData.logits(rng, dtype, n, v, 3.0);
                 HostTensor targets = TestData.targets(rng, DType.I32, n, v, 0.2, c.ignoreIndex());
                 HostTensor g = TestData.normal(rng, n, 1.0);
                 HostTensor h = TestData.normal(rng, n, 1.0);
                 Outputs fwd = referenceForward(c, logits, targets)) {
                // both upstream gradients, only g (logp), only h (entropy)
                HostTensor[][] upstream = {{g, h}, {g, null}, {null, h}};
                for (HostTensor[] gh : upstream) {
                    String ctx = bt + " " + dtype + " [" + n + ", " + v + "] g=" + (gh[0] != null) + " h=" + (gh[1] != null)
                            + " seed=" + seed;
                    try (HostTensor want = backward(new ReferenceBackend(), c, logits, targets, fwd, gh[0], gh[1], DType.F32);
                         HostTensor got = backward(b, c, logits, targets, fwd, gh[0], gh[1], DType.F32)) {
                        Compare.assertClose(ctx, want, got, Tolerance.F32_OUTPUT);
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("backendDtype")
    void inPlaceBackwardOverwritesTheLogits(BackendUnderTest bt, DType dtype) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        long n = 21;
        long v = 1531;
        LogProbs.Config c = LogProbs.Config.defaults().withTemperature(1.3f);
        try (Backend b = bt.open();
             HostTensor logits = TestData.logits(rng, dtype, n, v, 3.0);
             HostTensor targets = TestData.targets(rng, DType.I64, n, v, 0.1, c.ignoreIndex());
             HostTensor g = TestData.normal(rng, n, 1.0);
             HostTensor h = TestData.normal(rng, n, 1.0);
             Outputs fwd = referenceForward(c, logits, targets);
             HostTensor want = backward(new ReferenceBackend(), c, logits, targets, fwd, g, h, DType.F32);
             Tensor z = b.upload(logits); Tensor y = b.upload(targets); Tensor parts = b.upload(fwd.lseParts());
             Tensor entropy = b.upload(fwd.entropy()); Tensor gd = b.upload(g); Tensor hd = b.upload(h);
             HostTensor got = HostTensor.allocate(dtype, n, v)) {
            b.logProbsBackward(c, z, y, parts, entropy, gd, hd, z);
            b.download(z, got);
            // the f32 reference rounded once to the logits' type
            try (HostTensor wantRounded = HostTensor.allocate(dtype, n, v)) {
                for (long i = 0; i < want.numel(); i++) {
                    wantRounded.setFloat(i, want.getFloat(i));
                }
                Compare.assertClose(bt + " in place " + dtype + " seed=" + seed, wantRounded, got,
                        Tolerance.forOutput(dtype));
            }
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("backendDtype")
    void gradientIntoA16BitBuffer(BackendUnderTest bt, DType gradDtype) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        long n = 7;
        long v = 2053;
        LogProbs.Config c = LogProbs.Config.defaults();
        try (Backend b = bt.open()) {
            for (DType logitsDtype : FLOAT_TYPES) { // every (logits, gradient) pair: each is its own CUDA kernel
                try (HostTensor logits = TestData.logits(rng, logitsDtype, n, v, 3.0);
                     HostTensor targets = TestData.targets(rng, DType.I32, n, v, 0.0, c.ignoreIndex());
                     HostTensor g = TestData.normal(rng, n, 1.0);
                     Outputs fwd = referenceForward(c, logits, targets);
                     HostTensor want = backward(new ReferenceBackend(), c, logits, targets, fwd, g, null, gradDtype);
                     HostTensor got = backward(b, c, logits, targets, fwd, g, null, gradDtype)) {
                    Compare.assertClose(bt + " logits " + logitsDtype + " grad " + gradDtype + " seed=" + seed, want, got,
                            Tolerance.forOutput(gradDtype));
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void backwardMatchesFiniteDifferencesOfTheF64Reference(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        int n = 4;
        int v = 13;
        double t = 0.85;
        LogProbs.Config c = LogProbs.Config.defaults().withTemperature((float) t);
        try (Backend b = bt.open();
             HostTensor logits = TestData.logits(rng, DType.F32, n, v, 2.0);
             HostTensor targets = TestData.targets(rng, DType.I32, n, v, 0.0, c.ignoreIndex());
             HostTensor g = TestData.normal(rng, n, 1.0);
             HostTensor h = TestData.normal(rng, n, 1.0);
             Outputs fwd = referenceForward(c, logits, targets);
             HostTensor grad = backward(b, c, logits, targets, fwd, g, h, DType.F32)) {
            // L = sum_i g_i logp_i + h_i H_i, differentiated numerically in f64
            double eps = 1e-5;
            for (int i = 0; i < n; i++) {
                double[] z = new double[v];
                for (int j = 0; j < v; j++) {
                    z[j] = logits.getFloat((long) i * v + j);
                }
                int y = (int) targets.getLong(i);
                for (int j = 0; j < v; j++) {
                    double saved = z[j];
                    z[j] = saved + eps;
                    LogProbsReference.Row up = LogProbsReference.logProbsRow(z, y, t);
                    z[j] = saved - eps;
                    LogProbsReference.Row down = LogProbsReference.logProbsRow(z, y, t);
                    z[j] = saved;
                    double numeric = (g.getFloat(i) * (up.logp() - down.logp()) + h.getFloat(i) * (up.entropy() - down.entropy()))
                            / (2 * eps);
                    double analytic = grad.getFloat((long) i * v + j);
                    assertTrue(Math.abs(analytic - numeric) <= 1e-5 + 1e-4 * Math.abs(numeric),
                            bt + " seed=" + seed + " dz[" + i + ", " + j + "] = " + analytic + ", finite differences " + numeric);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fast")
    void gridStrideLoopsGiveTheSameRows(BackendUnderTest bt) {
        // three blocks for 40 rows: every block handles several rows, reusing its shared memory
        String saved = System.setProperty("rlk.cuda.maxGrid", "3");
        try {
            long seed = TestData.newSeed();
            SplittableRandom rng = new SplittableRandom(seed);
            LogProbs.Config c = LogProbs.Config.defaults().withTemperature(0.9f);
            try (Backend b = bt.open();
                 HostTensor logits = TestData.logits(rng, DType.BF16, 40, 4000, 3.0);
                 HostTensor targets = TestData.targets(rng, DType.I64, 40, 4000, 0.2, c.ignoreIndex());
                 HostTensor g = TestData.normal(rng, 40, 1.0);
                 Outputs expected = referenceForward(c, logits, targets);
                 Outputs actual = forward(b, c, logits, targets, true);
                 HostTensor want = backward(new ReferenceBackend(), c, logits, targets, expected, g, null, DType.F32);
                 HostTensor got = backward(b, c, logits, targets, expected, g, null, DType.F32)) {
                assertForwardClose(bt + " grid-stride seed=" + seed, expected, actual, Tolerance.F32_OUTPUT);
                Compare.assertClose(bt + " grid-stride backward seed=" + seed, want, got, Tolerance.F32_OUTPUT);
            }
        } finally {
            if (saved == null) {
                System.clearProperty("rlk.cuda.maxGrid");
            } else {
                System.setProperty("rlk.cuda.maxGrid", saved);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fast")
    void hostTensorsAndJavaArraysWorkOnEveryBackend(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        int n = 6;
        int v = 517;
        float[] z = new float[n * v];
        for (int i = 0; i < z.length; i++) {
            z[i] = (float) rng.nextGaussian();
        }
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            y[i] = rng.nextInt(v);
        }
        float[] logp = new float[n];
        float[] lse = new float[n];
        java.util.Arrays.fill(logp, Float.NaN);
        java.util.Arrays.fill(lse, Float.NaN);
        LogProbs.Config c = LogProbs.Config.defaults();
        try (Backend b = bt.open(); HostTensor logits = HostTensor.of(z, n, v); HostTensor targets = HostTensor.of(y);
             HostTensor outLogp = HostTensor.of(logp); HostTensor outLse = HostTensor.of(lse);
             Outputs expected = referenceForward(c, logits, targets)) {
            b.logProbs(c, logits, targets, outLogp, outLse, null);
            Compare.assertClose(bt + " Java arrays seed=" + seed, expected.logp(), outLogp, Tolerance.F32_OUTPUT);
            Compare.assertClose(bt + " Java arrays seed=" + seed, expected.lse(), outLse, Tolerance.F32_OUTPUT);
        }
    }
}
