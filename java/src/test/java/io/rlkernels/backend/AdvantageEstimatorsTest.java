package io.rlkernels.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.ops.AdvantageEstimator;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * verl's advantage estimators on every backend against their definitions, written out here in
 * f64 from verl's core_algos.py (compute_*_outcome_advantage): a batch of S = 26 sequences of T =
 * 12 tokens, groups of 4 and one pair, response masks with padded tails.
 */
class AdvantageEstimatorsTest {
    static final int S = 26;
    static final int T = 12;

    /**
     * The batch on the host: rewards [S], K = 2 rewards [2, S], token rewards [S, T], baselines [S],
     * a prefix mask [S, T]; for optimal_token_baseline the old log-probs, sum pi^2 (that of a
     * distribution with p_y = pi: pi^2 plus up to (1 - pi)^2) and IS weights [S, T].
     */
    private record Batch(float[] r, float[][] multi, float[] tokenR, float[] base, float[] mask, long[] ids, float[] oldLogp,
                         float[] sumPiSq, float[] isW) {
        static Batch random(SplittableRandom rng) {
            float[] r = new float[S];
            float[][] multi = new float[2][S];
            float[] tokenR = new float[S * T];
            float[] base = new float[S];
            float[] mask = new float[S * T];
            long[] ids = new long[S];
            float[] oldLogp = new float[S * T];
            float[] sumPiSq = new float[S * T];
            float[] isW = new float[S * T];
            for (int i = 0; i < S * T; i++) {
                double pi = rng.nextDouble(0.01, 0.99);
                oldLogp[i] = (float) Math.log(pi);
                sumPiSq[i] = (float) (pi * pi + (1 - pi) * (1 - pi) * rng.nextDouble());
                isW[i] = (float) rng.nextDouble(0.5, 2.0);
            }
            for (int i = 0; i < S; i++) {
                ids[i] = i < 24 ? i / 4 : 6; // six groups of four, one pair
                r[i] = rng.nextInt(3) == 0 ? 0f : (float) rng.nextGaussian(); // some zero rewards (gpg's alpha)
                multi[0][i] = rng.nextInt(2);
                multi[1][i] = (float) rng.nextGaussian() * 3;
                base[i] = (float) rng.nextGaussian();
                int len = 1 + rng.nextInt(T);
                for (int j = 0; j < T; j++) {
                    mask[i * T + j] = j < len ? 1f : 0f;
                    tokenR[i * T + j] = j == len - 1 ? (float) rng.nextGaussian() : (float) (rng.nextGaussian() * 0.1);
                }
            }
            return new Batch(r, multi, tokenR, base, mask, ids, oldLogp, sumPiSq, isW);
        }

        int len(int i) {
            int n = 0;
            for (int j = 0; j < T; j++) {
                n += mask[i * T + j] != 0 ? 1 : 0;
            }
            return n;
        }
    }

    /** Per-sequence values of group statistics: the group's members. */
    private static int[] members(long[] ids, int i) {
        return java.util.stream.IntStream.range(0, S).filter(k -> ids[k] == ids[i]).toArray();
    }

    private static double mean(float[] x, int[] m) {
        double s = 0;
        for (int k : m) {
            s += x[k];
        }
        return s / m.length;
    }

    private static double std(float[] x, int[] m) {
        double mu = mean(x, m);
        double s = 0;
        for (int k : m) {
            s += (x[k] - mu) * (x[k] - mu);
        }
        return Math.sqrt(s / (m.length - 1));
    }

    /** verl's masked_whiten of token values over the mask: (x - mean) / sqrt(var + 1e-8), var unbiased. */
    private static double[] whiten(double[] x, float[] mask) {
        double n = 0;
        double sum = 0;
        for (int i = 0; i < x.length; i++) {
            n += mask[i];
            sum += mask[i] * x[i];
        }
        double mu = sum / n;
        double var = 0;
        for (int i = 0; i < x.length; i++) {
            var += mask[i] * (x[i] - mu) * (x[i] - mu);
        }
        var /= n - 1;
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = mask[i] != 0 ? (x[i] - mu) / Math.sqrt(var + 1e-8) : 0;
        }
        return out;
    }

    /** The estimator's token advantages by verl's definition. */
    private static double[] verl(AdvantageEstimator e, Batch b) {
        double[] seq = new double[S];
        double[] tok = new double[S * T];
        switch (e) {
            case GRPO, RLOO, GPG, OPO, GRPO_PASSK, REINFORCE_PLUS_PLUS_BASELINE -> {
                long nonzero = 0;
                for (float x : b.r) {
                    nonzero += x != 0 ? 1 : 0;
                }
                for (int i = 0; i < S; i++) {
                    int[] m = members(b.ids, i);
                    double mu = mean(b.r, m);
                    int n = m.length;
                    seq[i] = switch (e) {
                        case GRPO -> (b.r[i] - mu) / (std(b.r, m) + 1e-6);
                        case RLOO -> b.r[i] * n / (n - 1.0) - mu * n / (n - 1.0);
                        case GPG -> (double) S / Math.max(nonzero, 1) * (b.r[i] - mu);
                        case OPO -> {
                            double wl = 0;
                            double l = 0;
                            for (int k : m) {
                                wl += b.len(k) * (double) b.r[k];
                                l += b.len(k);
                            }
                            yield b.r[i] - wl / l;
                        }
                        case GRPO_PASSK -> {
                            int top = m[0];
                            for (int k : m) {
                                top = b.r[k] > b.r[top] ? k : top;
                            }
                            double second = Double.NEGATIVE_INFINITY;
                            for (int k : m) {
                                second = k != top ? Math.max(second, b.r[k]) : second;
                            }
                            yield i == top ? (b.r[top] - second) / (std(b.r, m) + 1e-6) : 0;
                        }
                        default -> b.r[i] - mu; // rf++ baseline: centred, then whitened over the tokens below
                    };
                }
                for (int i = 0; i < S * T; i++) {
                    tok[i] = b.mask[i] * seq[i / T];
                }
                if (e == AdvantageEstimator.REINFORCE_PLUS_PLUS_BASELINE) {
                    tok = whiten(tok, b.mask);
                }
            }
            case REINFORCE_PLUS_PLUS, REMAX -> {
                double gamma = e == AdvantageEstimator.REMAX ? 1 : 0.9;
                for (int i = 0; i < S; i++) {
                    double running = 0;
                    for (int j = T - 1; j >= 0; j--) {
                        int at = i * T + j;
                        running = b.tokenR[at] * (e == AdvantageEstimator.REMAX ? b.mask[at] : 1) + gamma * running;
                        tok[at] = running;
                        running *= e == AdvantageEstimator.REMAX ? 1 : b.mask[at]; // rf++ resets after the response
                    }
                    for (int j = 0; j < T; j++) {
                        int at = i * T + j;
                        tok[at] = e == AdvantageEstimator.REMAX ? b.mask[at] * (tok[at] - b.base[i]) : tok[at] * b.mask[at];
                    }
                }
                if (e == AdvantageEstimator.REINFORCE_PLUS_PLUS) {
                    tok = whiten(tok, b.mask);
                }
            }
            case GDPO -> {
                double[] w = {1.0, 0.5};
                double[] sum = new double[S];
                for (int k = 0; k < 2; k++) {
                    for (int i = 0; i < S; i++) {
                        int[] m = members(b.ids, i);
                        sum[i] += w[k] * (b.multi[k][i] == mean(b.multi[k], m) ? 0
                                : (b.multi[k][i] - mean(b.multi[k], m)) / (std(b.multi[k], m) + 1e-6));
                    }
                }
                float[] asFloat = new float[S];
                for (int i = 0; i < S; i++) {
                    asFloat[i] = (float) sum[i];
                }
                int[] all = java.util.stream.IntStream.range(0, S).toArray();
                double mu = mean(asFloat, all);
                double sd = std(asFloat, all);
                for (int i = 0; i < S * T; i++) {
                    tok[i] = b.mask[i] * (asFloat[i / T] - mu) / (sd + 1e-6);
                }
            }
            case OPTIMAL_TOKEN_BASELINE -> tok = otb(b, true, true);
            default -> throw new IllegalStateException();
        }
        return tok;
    }

    /**
     * verl's compute_optimal_token_baseline_advantage, on padded rows as verl computes it: returns
     * by a reversed cumulative sum of r m, W as the cumulative sum of (1 - 2 pi + sum pi^2) rho^2 m,
     * per group and column B = sum G W m / (sum W m + 1e-8), no baseline for a group of one, and with
     * handle_zero_tail the baseline of a unique longest row zeroed from the second longest length on.
     */
    private static double[] otb(Batch b, boolean withIs, boolean zeroTail) {
        double[] g = new double[S * T];
        double[] w = new double[S * T];
        for (int i = 0; i < S; i++) {
            double run = 0;
            for (int j = T - 1; j >= 0; j--) {
                run += b.tokenR[i * T + j] * b.mask[i * T + j];
                g[i * T + j] = run;
            }
            double cum = 0;
            for (int j = 0; j < T; j++) {
                int at = i * T + j;
                double rho = withIs ? b.isW[at] : 1;
                cum += (1 - 2 * Math.exp(b.oldLogp[at]) + b.sumPiSq[at]) * rho * rho * b.mask[at];
                w[at] = cum;
            }
        }
        double[] base = new double[S * T];
        java.util.Set<Long> done = new java.util.HashSet<>();
        for (int i = 0; i < S; i++) {
            if (!done.add(b.ids[i])) {
                continue;
            }
            int[] m = members(b.ids, i);
            if (m.length == 1) {
                continue;
            }
            for (int j = 0; j < T; j++) {
                double num = 0;
                double den = 0;
                for (int k : m) {
                    num += g[k * T + j] * w[k * T + j] * b.mask[k * T + j];
                    den += w[k * T + j] * b.mask[k * T + j];
                }
                for (int k : m) {
                    base[k * T + j] = num / (den + 1e-8);
                }
            }
            if (zeroTail) {
                int[] lengths = java.util.Arrays.stream(m).map(b::len).sorted().toArray();
                int max = lengths[lengths.length - 1];
                int second = lengths[lengths.length - 2];
                int[] longest = java.util.Arrays.stream(m).filter(k -> b.len(k) == max).toArray();
                if (longest.length == 1 && max > second) {
                    for (int j = second; j < T; j++) {
                        base[longest[0] * T + j] = 0;
                    }
                }
            }
        }
        double[] adv = new double[S * T];
        for (int i = 0; i < S * T; i++) {
            adv[i] = (g[i] - base[i]) * b.mask[i];
        }
        return adv;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void everyEstimatorIsVerlsDefinition(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        Batch batch = Batch.random(new SplittableRandom(seed));
        try (Backend b = bt.open(); HostTensor ids = HostTensor.of(batch.ids); GroupLayout groups = GroupLayout.of(ids);
             Tensor rewards = b.upload(HostTensor.of(batch.r)); Tensor multi = b.upload(HostTensor.of(concat(batch.multi), 2, S));
             Tensor tokenRewards = b.upload(HostTensor.of(batch.tokenR, S, T)); Tensor base = b.upload(HostTensor.of(batch.base));
             Tensor mask = b.upload(HostTensor.of(batch.mask, S, T)); Tensor oldLogp = b.upload(HostTensor.of(batch.oldLogp, S, T));
             Tensor sumPiSq = b.upload(HostTensor.of(batch.sumPiSq, S, T)); Tensor isW = b.upload(HostTensor.of(batch.isW, S, T))) {
            for (AdvantageEstimator e : AdvantageEstimator.values()) {
                AdvantageEstimator.Config c = AdvantageEstimator.Config.of(e).withGamma(0.9f).withGdpoWeights(1f, 0.5f);
                AdvantageEstimator.Inputs in = e == AdvantageEstimator.OPTIMAL_TOKEN_BASELINE
                        ? AdvantageEstimator.Inputs.optimalTokenBaseline(tokenRewards, groups, mask, oldLogp, sumPiSq, isW)
                        : e.tokenRewards() ? AdvantageEstimator.Inputs.tokens(tokenRewards, mask).withBaselineRewards(base)
                        : AdvantageEstimator.Inputs.grouped(e == AdvantageEstimator.GDPO ? multi : rewards, groups, mask);
                try (Tensor adv = b.upload(TestData.poisoned(DType.F32, S, T)); Tensor ret = b.upload(TestData.poisoned(DType.F32, S, T));
                     HostTensor got = HostTensor.allocate(DType.F32, S, T); HostTensor gotRet = HostTensor.allocate(DType.F32, S, T)) {
                    AdvantageEstimators.compute(b, c, in, adv, ret);
                    b.download(adv, got);
                    b.download(ret, gotRet);
                    double[] want = verl(e, batch);
                    for (int i = 0; i < S * T; i++) {
                        Tolerance.ADVANTAGE.assertClose(want[i], got.getFloat(i), bt + " " + e + " [" + i / T + ", " + i % T + "] seed=" + seed);
                    }
                    if (!e.tokenRewards()) {
                        assertArrayEquals(got.toFloatArray(), gotRet.toFloatArray(), bt + " " + e + ": verl's returns are the advantages");
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void missingInputsAreRefusedByName(BackendUnderTest bt) {
        Batch batch = Batch.random(new SplittableRandom(5));
        try (Backend b = bt.open(); HostTensor rewards = HostTensor.of(batch.r); HostTensor mask = HostTensor.of(batch.mask, S, T);
             HostTensor ids = HostTensor.of(batch.ids); GroupLayout groups = GroupLayout.of(ids);
             HostTensor adv = HostTensor.allocate(DType.F32, S, T)) {
            IllegalArgumentException remax = assertThrows(IllegalArgumentException.class, () -> AdvantageEstimators.compute(b,
                    AdvantageEstimator.Config.of(AdvantageEstimator.REMAX), AdvantageEstimator.Inputs.tokens(HostTensor.of(batch.tokenR, S, T),
                            mask), adv, null));
            assertTrue(remax.getMessage().startsWith("baselineRewards:"), remax.getMessage());
            IllegalArgumentException grouped = assertThrows(IllegalArgumentException.class, () -> AdvantageEstimators.compute(b,
                    AdvantageEstimator.Config.of(AdvantageEstimator.GRPO), AdvantageEstimator.Inputs.grouped(rewards, null, mask), adv, null));
            assertTrue(grouped.getMessage().startsWith("groups:"), grouped.getMessage());
            try (HostTensor two = HostTensor.allocate(DType.F32, 2, S).fill(1f)) {
                IllegalArgumentException gdpo = assertThrows(IllegalArgumentException.class, () -> AdvantageEstimators.compute(b,
                        AdvantageEstimator.Config.of(AdvantageEstimator.GDPO).withGdpoWeights(1f, 2f, 3f),
                        AdvantageEstimator.Inputs.grouped(two, groups, mask), adv, null));
                assertTrue(gdpo.getMessage().startsWith("gdpo_reward_weights:"), gdpo.getMessage());
            }
            assertEquals(AdvantageEstimator.OPTIMAL_TOKEN_BASELINE, AdvantageEstimator.parse("optimal_token_baseline"));
            try (HostTensor tokens = HostTensor.of(batch.tokenR, S, T); HostTensor lp = HostTensor.of(batch.oldLogp, S, T)) {
                IllegalArgumentException otb = assertThrows(IllegalArgumentException.class, () -> AdvantageEstimators.compute(b,
                        AdvantageEstimator.Config.of(AdvantageEstimator.OPTIMAL_TOKEN_BASELINE),
                        AdvantageEstimator.Inputs.optimalTokenBaseline(tokens, groups, mask, lp, null, null), adv, null));
                assertTrue(otb.getMessage().startsWith("sumPiSquared:"), otb.getMessage());
            }
            assertEquals(AdvantageEstimator.REINFORCE_PLUS_PLUS_BASELINE, AdvantageEstimator.parse("reinforce_plus_plus_baseline"));
        }
    }

    private static float[] concat(float[][] rows) {
        float[] out = new float[rows.length * rows[0].length];
        for (int k = 0; k < rows.length; k++) {
            System.arraycopy(rows[k], 0, out, k * rows[0].length, rows[0].length);
        }
        return out;
    }
}
