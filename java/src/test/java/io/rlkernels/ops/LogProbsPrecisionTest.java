package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.reference.LogProbsReference;
import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HalfFloats;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
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
 * The log-probs at float32's precision against f64 (LogProbs' contract), on every backend: logp,
 * lse and entropy within {@link Tolerance#LOGPROBS_FORWARD}, every element of the gradient within
 * {@link Tolerance#logProbsGradient} (1e-5, and float32's condition for a probability q below
 * 2^-24, which matters where the whole row's gradient is that small; never finer than what
 * flushing probabilities below 2^-127 to 0 can move it, {@link Tolerance#logProbsUnderflow}), on the rows RL fine-tuning produces — near-certain tokens
 * (p_y = 1 - 1e-3, 1 - 1e-6, 1 - 1e-7, 1 - 1e-30), logits offset by 1e4 or of magnitude 1e4, banned tokens —
 * at temperatures 0.3 to 2, V from 1 to 262,144, f32, bf16 and f16 (compared on the rounded
 * values). The truth is computed here in f64 from the definition (LogProbsReference.logProbsRow).
 *
 * <p>The gradient is checked twice: from g = dL/dlogp alone (what a policy loss gives), every
 * element within 1e-5 of itself; and from g and h = dL/dH together, where an element is the sum of
 * g's term and h's, -p_v (g + h (log p_v + H)) / T, which cancel where g ~ -h (log p_v + H), and
 * log p_v + H itself is a difference: there the error is measured against the magnitudes of what
 * is added, |g's term| + |h| p_v (|log p_v| + H) / T, since the float32 H and ln s the backward
 * is given already fix log p_v + H only to about 1e-7 of |log p_v| + H.
 */
class LogProbsPrecisionTest {
    /** The rows of a batch, one of each. */
    enum Kind {
        ORDINARY, NEAR_CERTAIN_1E3, NEAR_CERTAIN_1E6, NEAR_CERTAIN_1E7,
        /** 1 - p_y = 1e-30: below double's ulp of 1 too, so s = 1 + eps must be kept as its parts. */
        NEAR_CERTAIN_1E30,
        OFFSET_1E4, MAGNITUDE_1E4, BANNED
    }

    private static final long[] VOCABULARIES = {1, 7, 1000, 4099, 32000};

    static Stream<Arguments> backendDtypeTemperature() {
        List<Arguments> out = new ArrayList<>();
        BackendUnderTest.all().forEach(b -> {
            for (DType dt : new DType[] {DType.F32, DType.BF16, DType.F16}) {
                for (float t : new float[] {0.3f, 1.0f, 2.0f}) {
                    out.add(Arguments.of(b, dt, t));
                }
            }
        });
        return out.stream();
    }

    static Stream<BackendUnderTest> all() {
        return BackendUnderTest.all();
    }

    @ParameterizedTest(name = "{0} {1} T={2}")
    @MethodSource("backendDtypeTemperature")
    void forwardAndBackwardAtFloat32Precision(BackendUnderTest bt, DType dtype, float t) {
        long seed = TestData.newSeed();
        try (Backend b = bt.open()) {
            for (long v : VOCABULARIES) {
                check(b, bt + " " + dtype + " T=" + t + " V=" + v + " seed=" + seed, new SplittableRandom(seed + v), dtype, v, t);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void aVocabularyOf262144(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        try (Backend b = bt.open()) {
            check(b, bt + " V=262144 seed=" + seed, new SplittableRandom(seed), DType.F32, 262_144, 1.0f);
        }
    }

    /** One row of each kind (only ORDINARY when V = 1), forward and backward, every output checked. */
    private static void check(Backend b, String ctx, SplittableRandom rng, DType dtype, long v, float t) {
        Kind[] kinds = v == 1 ? new Kind[] {Kind.ORDINARY} : Kind.values();
        int n = kinds.length;
        LogProbs.Config c = LogProbs.Config.defaults().withTemperature(t);
        double[][] rows = new double[n][];
        int[] targets = new int[n];
        try (HostTensor z = HostTensor.allocate(dtype, n, v); HostTensor g = TestData.normal(rng, n, 1.0);
             HostTensor h = TestData.normal(rng, n, 1.0)) {
            for (int r = 0; r < n; r++) {
                targets[r] = rng.nextInt((int) v);
                rows[r] = row(rng, kinds[r], dtype, v, t, targets[r]);
                for (int j = 0; j < v; j++) {
                    z.setFloat((long) r * v + j, (float) rows[r][j]);
                }
            }
            try (HostTensor y = HostTensor.of(targets); Tensor dz = b.upload(z); Tensor dy = b.upload(y);
                 Tensor dg = b.upload(g); Tensor dh = b.upload(h);
                 LogProbs.Result got = b.logProbs(c, dz, dy, true);
                 Tensor gradG = b.logProbsBackward(c, dz, dy, got.lseParts(), null, dg, null);
                 Tensor gradGH = b.logProbsBackward(c, dz, dy, got.lseParts(), got.entropy(), dg, dh);
                 HostTensor logp = download(b, got.logp()); HostTensor lse = download(b, got.lse());
                 HostTensor entropy = download(b, got.entropy()); HostTensor parts = download(b, got.lseParts());
                 HostTensor outG = download(b, gradG); HostTensor outGH = download(b, gradGH)) {
                for (int r = 0; r < n; r++) {
                    String at = ctx + " " + kinds[r] + " (row " + r + ", target " + targets[r] + ")";
                    LogProbsReference.Row want = LogProbsReference.logProbsRow(rows[r], targets[r], t);
                    close(at + " logp", want.logp(), logp.getFloat(r), Tolerance.LOGPROBS_FORWARD);
                    close(at + " lse", want.lse(), lse.getFloat(r), Tolerance.LOGPROBS_FORWARD);
                    close(at + " entropy", want.entropy(), entropy.getFloat(r), Tolerance.LOGPROBS_FORWARD);
                    assertEquals((float) want.max(), parts.getFloat(2L * r), at + " lseParts: the row max, exactly");
                    close(at + " ln s", want.logSum(), parts.getFloat(2L * r + 1), Tolerance.LOGPROBS_FORWARD);
                    double[] termG = new double[(int) v];
                    double[] termH = new double[(int) v];
                    LogProbsReference.logProbsGradRow(rows[r], targets[r], t, want.max(), want.logSum(), want.entropy(),
                            g.getFloat(r), 0, termG);
                    LogProbsReference.logProbsGradRow(rows[r], targets[r], t, want.max(), want.logSum(), want.entropy(),
                            0, h.getFloat(r), termH);
                    double largestG = 0;
                    double largestGH = 0;
                    for (int j = 0; j < v; j++) {
                        largestG = Math.max(largestG, Math.abs(termG[j]));
                        largestGH = Math.max(largestGH, Math.abs(termG[j] + termH[j]));
                    }
                    for (int j = 0; j < v; j++) {
                        String el = "[" + j + "]" + (j == targets[r] ? " (the target)" : "");
                        double q = Math.abs(termG[j]) * t / Math.abs(g.getFloat(r)); // p_j, or 1 - p_y at the target
                        Tolerance tolG = Tolerance.logProbsGradient(largestG, q, Tolerance.logProbsUnderflow(g.getFloat(r), 0, v, t));
                        Tolerance tolGH = Tolerance.logProbsGradient(largestGH, q,
                                Tolerance.logProbsUnderflow(g.getFloat(r), h.getFloat(r), v, t));
                        close(at + " dz from g" + el, termG[j], outG.getFloat((long) r * v + j), tolG);
                        double both = termG[j] + termH[j];
                        double logP = (rows[r][j] - want.max()) / t - want.logSum();
                        double hScale = rows[r][j] == Double.NEGATIVE_INFINITY ? 0
                                : Math.abs(h.getFloat(r)) * Math.exp(logP) * (Math.abs(logP) + want.entropy()) / t;
                        double scale = Math.abs(termG[j]) + hScale; // the magnitude of what is added
                        double err = Math.abs(outGH.getFloat((long) r * v + j) - both);
                        if (!(err <= Math.max(tolGH.rtol() * scale, tolGH.atol()))) {
                            fail(String.format("%s dz from g and h%s: expected %.9g (terms %.3g and %.3g, scale %.3g), actual %.9g,"
                                    + " |diff| %.3g", at, el, both, termG[j], termH[j], scale, outGH.getFloat((long) r * v + j), err));
                        }
                    }
                }
            }
        }
    }

    /** A row of the given kind, in f64 but rounded to {@code dtype} (the values the kernels see). */
    private static double[] row(SplittableRandom rng, Kind kind, DType dtype, long v, double t, int target) {
        double[] z = new double[(int) v];
        for (int j = 0; j < v; j++) {
            double x = switch (kind) {
                case OFFSET_1E4 -> 1e4 + rng.nextGaussian() * 2;
                case MAGNITUDE_1E4 -> (rng.nextDouble() * 2 - 1) * 1e4;
                case ORDINARY -> rng.nextGaussian() * 3;
                default -> rng.nextGaussian();
            };
            z[j] = round(dtype, x);
        }
        double delta = switch (kind) {
            case NEAR_CERTAIN_1E3 -> 1e-3;
            case NEAR_CERTAIN_1E6 -> 1e-6;
            case NEAR_CERTAIN_1E7 -> 1e-7;
            case NEAR_CERTAIN_1E30 -> 1e-30;
            default -> 0;
        };
        if (delta > 0) { // z_y such that p_y = 1 - delta: exp(z_y/T) = (1 - delta)/delta * sum of the others
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < v; j++) {
                max = j == target ? max : Math.max(max, z[j]);
            }
            double rest = 0;
            for (int j = 0; j < v; j++) {
                rest += j == target ? 0 : Math.exp((z[j] - max) / t);
            }
            z[target] = round(dtype, max + t * Math.log((1 - delta) / delta * rest));
        }
        if (kind == Kind.BANNED) { // a third of the vocabulary at -inf, the target among them
            for (int j = 0; j < v; j++) {
                z[j] = j % 3 == 0 || j == target ? Double.NEGATIVE_INFINITY : z[j];
            }
            z[(target + 1) % (int) v] = round(dtype, 1.0); // at least one finite logit
        }
        return z;
    }

    private static double round(DType dtype, double x) {
        return HalfFloats.roundTo(dtype, (float) x);
    }

    private static HostTensor download(Backend b, Tensor t) {
        HostTensor h = HostTensor.allocate(t.dtype(), t.shape());
        b.download(t, h);
        return h;
    }

    private static void close(String what, double expected, double actual, Tolerance tol) {
        if (!tol.accepts(expected, actual)) {
            fail(String.format("%s: expected %.9g, actual %.9g, |diff| %.3g, allowed %.3g", what, expected, actual,
                    Math.abs(actual - expected), Math.max(tol.atol(), tol.rtol() * Math.abs(expected))));
        }
    }
}
