package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.internal.SplitMix64;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.SplittableRandom;

/**
 * BGPO (Lin, Zhang, Hou, Li, arXiv 2510.11683; ARCHITECTURE §5.4): a policy-gradient bound for diffusion
 * language models that is linear in the Monte Carlo samples of the ELBO, so samples are consumed
 * one at a time and memory does not grow with their number n_t.
 *
 * <p>Sample j of sequence i masks a set M_ij of x_ij response positions; its value is
 * l_ij = w_ij * sum_{p in M_ij} logp_p (w = 1/x, or L/x = 1/t). With d = l_ij - l_ij^old and A_i
 * the sequence's advantage, the per-sample ratio is psi = 1 + d (A &gt;= 0) or exp(d) (A &lt; 0), and
 *
 * <pre>
 *   f(A, d) = max(-A psi, -A clip(psi, 1 - eps_low, 1 + eps_high)),  for A &lt; 0 with dual clip c: min(f, -c A)
 *   L       = 1 / (D n_t) * sum_i sum_j f(A_i, d_ij)                 (D: the denominator, default S)
 *   dz_v    = A_i psi'(d_ij) kappa_ij w_ij / (D n_t) * (p_v - 1[v = y_p])   on a masked row p of sample ij
 * </pre>
 *
 * with psi' = 1 or exp(d), kappa = 0 where the clipped (or dual-clip) branch is active; other rows
 * get zero gradient. On-policy the bound equals exp(mean_j d_ij) A_i in value and gradient; off-
 * policy it never exceeds it. A sequence with no masked position in a sample has l = 0 there (an
 * empty sum): with the old policy's value from the same masks (also 0) it is a constant with no
 * gradient; such samples are counted in {@link Stats#empty}.
 */
public final class Bgpo {
    private Bgpo() {}

    /** Clipping, the number of samples n_t, the denominator D (NaN: S, the sequences) and the temperature. */
    public record Config(float clipLow, float clipHigh, float dualClip, int samples, double denominator, float temperature) {
        /** Checks every component, refusing a bad one by name (the expected and the found value). */
        public Config {
            Check.clipping(clipLow, clipHigh, dualClip);
            if (samples < 1) {
                throw Check.fail("samples (n_t)", "at least 1 Monte Carlo sample", samples);
            }
            if (!Double.isNaN(denominator) && !(denominator > 0 && Double.isFinite(denominator))) {
                throw Check.fail("denominator", "a finite number > 0, or NaN for the number of sequences", denominator);
            }
            Check.finitePositive("temperature", temperature);
        }

        /** Clip 0.2/0.2, no dual clip, n_t samples, the denominator S, temperature 1. */
        public static Config defaults(int samples) {
            return new Config(0.2f, 0.2f, 0f, samples, Double.NaN, 1f);
        }

        /** The same with other clip bounds. */
        public Config withClip(float low, float high) {
            return new Config(low, high, dualClip, samples, denominator, temperature);
        }

        /** The same with the dual clip c (0: off). */
        public Config withDualClip(float c) {
            return new Config(clipLow, clipHigh, c, samples, denominator, temperature);
        }

        /** The same with a global denominator (NaN: the batch's S). */
        public Config withDenominator(double d) {
            return new Config(clipLow, clipHigh, dualClip, samples, d, temperature);
        }

        /** D for a batch of {@code sequences}. */
        public double denominatorFor(int sequences) {
            return Double.isNaN(denominator) ? Math.max(1, sequences) : denominator;
        }
    }

    /** Length of the f64 state vector the per-sample op adds into (see {@link Stats}). */
    public static final int STATS_LENGTH = 10;
    /** The slots of the f64 state vector, in the order of {@link Stats}'s components (the kernels': rlk_contract.h). */
    public static final int STAT_LOSS = 0;
    /** Slot of the number of sequence-samples seen. */
    public static final int STAT_SEEN = 1;
    /** Slot of the sequences whose upper clip bound binds. */
    public static final int STAT_CLIP_HIGH = 2;
    /** Slot of the sequences whose lower clip bound binds. */
    public static final int STAT_CLIP_LOW = 3;
    /** Slot of the sequences whose dual clip binds. */
    public static final int STAT_CLIP_DUAL = 4;
    /** Slot of the sequence-samples that mask no row (a constant, no gradient). */
    public static final int STAT_EMPTY = 5;
    /** Slot of the sum of d = l - l_old. */
    public static final int STAT_D_SUM = 6;
    /** Slot of the minimum of d. */
    public static final int STAT_D_MIN = 7;
    /** Slot of the maximum of d. */
    public static final int STAT_D_MAX = 8;
    /** Slot of the sum of the ratios psi. */
    public static final int STAT_PSI_SUM = 9;

    /**
     * Running statistics over the samples consumed so far: the loss (already divided by D n_t),
     * sequence-samples seen, clipped ones (high, low, dual), empty ones, and the sum, min and max
     * of d = l - l_old. Kept as sums: O(1) whatever n_t.
     */
    public record Stats(double loss, double seen, double clipHigh, double clipLow, double clipDual, double empty,
                        double dSum, double dMin, double dMax, double psiSum) {
        /** The statistics from their f64 slots [STATS_LENGTH]. */
        public static Stats of(HostTensor t) {
            double[] v = new double[STATS_LENGTH];
            for (int i = 0; i < STATS_LENGTH; i++) {
                v[i] = t.getDouble(i);
            }
            return new Stats(v[STAT_LOSS], v[STAT_SEEN], v[STAT_CLIP_HIGH], v[STAT_CLIP_LOW], v[STAT_CLIP_DUAL], v[STAT_EMPTY],
                    v[STAT_D_SUM], v[STAT_D_MIN], v[STAT_D_MAX], v[STAT_PSI_SUM]);
        }

        /** The state before any sample: sums 0, min +inf, max -inf. */
        public static double[] initial() {
            double[] v = new double[STATS_LENGTH];
            v[STAT_D_MIN] = Double.POSITIVE_INFINITY;
            v[STAT_D_MAX] = Double.NEGATIVE_INFINITY;
            return v;
        }

        /** The fraction of sequence-samples whose clip binds (any bound). */
        public double clipFraction() {
            return seen > 0 ? (clipHigh + clipLow + clipDual) / seen : 0;
        }

        /** The mean of d = l - l_old over the sequence-samples seen. */
        public double meanD() {
            return seen > 0 ? dSum / seen : 0;
        }
    }

    /**
     * One Monte Carlo sample's inputs: logits [R, V] (f32, bf16 or f16), targets [R], the rows of
     * each sequence, mask [R] (u8 or f32), weights, old values and advantages [S] f32.
     */
    public record Sample(Tensor logits, Tensor targets, SequenceLayout rows, Tensor mask, Tensor weights, Tensor oldValues,
                         Tensor advantages) {}

    /** The target id the per-sample forward gives rows a sample does not mask (they are skipped). */
    public static final long UNMASKED = -1;

    /** The log-probs configuration of a sample: the temperature, and unmasked rows skipped. */
    public static LogProbs.Config logProbsConfig(Config c) {
        return new LogProbs.Config(c.temperature(), UNMASKED);
    }

    // ---- the ELBO sampler ----

    /** How a sample's value is weighted: 1/x (length-normalised, the default) or L/x = 1/t (the paper's). */
    public enum Weighting {
        /** 1 / x: length-normalised (the default). */
        PER_MASKED_TOKEN,
        /** L / x = 1 / t: the paper's. */
        PER_MASK_RATIO
    }

    /**
     * The masks and weights of n_t Monte Carlo samples for every sequence: masks [n_t, R] u8 (1 =
     * masked), weights [n_t, S] f32, counts [n_t, S] i32 (x_ij). Seeded: the same seed gives the
     * same masks, so the old policy's values are taken on the current policy's masks.
     */
    public record Samples(HostTensor masks, HostTensor weights, HostTensor counts) implements AutoCloseable {
        /** Sample j's mask [R] u8 (1 = masked): a view of row j of {@link #masks()}, no copy; valid while this is open. */
        public HostTensor mask(int j) {
            return row(masks, j, "j");
        }

        /** Sample j's weights [S] f32: a view of row j of {@link #weights()}, no copy; valid while this is open. */
        public HostTensor weights(int j) {
            return row(weights, j, "j");
        }

        /** The number of samples, n_t. */
        public int samples() {
            return (int) masks.dim(0);
        }

        private static HostTensor row(HostTensor t, int j, String arg) {
            if (j < 0 || j >= t.dim(0)) {
                throw Check.fail(arg, "a sample index in [0, " + t.dim(0) + ")", j);
            }
            long n = t.dim(1);
            long bytes = n * t.dtype().byteSize();
            return HostTensor.wrap(t.segment().asSlice(j * bytes, bytes), t.dtype(), n);
        }

        @Override
        public void close() {
            masks.close();
            weights.close();
            counts.close();
        }
    }

    /**
     * Stratified masking (ARCHITECTURE §5.4): for sequence i of response length L, draw k uniform in
     * 1..L; sample j masks x_j = round(k + j L / n_t), wrapped into 1..L, positions drawn uniformly
     * without replacement. Every sample masks at least one position.
     */
    public static Samples sample(long seed, int samples, SequenceLayout rows, Weighting weighting) {
        if (samples < 1) {
            throw Check.fail("samples (n_t)", "at least 1 Monte Carlo sample", samples);
        }
        int r = (int) rows.tokens();
        int s = rows.sequences();
        HostTensor masks = HostTensor.allocate(DType.U8, samples, r);
        HostTensor weights = HostTensor.allocate(DType.F32, samples, s);
        HostTensor counts = HostTensor.allocate(DType.I32, samples, s);
        for (int i = 0; i < s; i++) {
            int begin = (int) rows.offsets().getLong(i);
            int length = (int) rows.offsets().getLong(i + 1) - begin;
            if (length == 0) {
                for (int j = 0; j < samples; j++) {
                    weights.setFloat((long) j * s + i, 1f);
                }
                continue;
            }
            SplittableRandom rng = new SplittableRandom(mix(seed, i, -1));
            long k = 1 + rng.nextInt(length);
            int[] positions = new int[length];
            for (int j = 0; j < samples; j++) {
                long x = Math.round(k + (double) j * length / samples);
                x = (x - 1) % length + 1; // wrapped into 1..L
                SplittableRandom pick = new SplittableRandom(mix(seed, i, j));
                for (int p = 0; p < length; p++) {
                    positions[p] = p;
                }
                for (int p = 0; p < x; p++) { // partial Fisher-Yates: x positions without replacement
                    int q = p + pick.nextInt(length - p);
                    int t = positions[p];
                    positions[p] = positions[q];
                    positions[q] = t;
                    masks.setLong((long) j * r + begin + positions[p], 1);
                }
                counts.setLong((long) j * s + i, x);
                weights.setFloat((long) j * s + i, (float) (weighting == Weighting.PER_MASKED_TOKEN ? 1.0 / x : (double) length / x));
            }
        }
        return new Samples(masks, weights, counts);
    }

    private static long mix(long seed, long i, long j) {
        return SplitMix64.mix(seed + SplitMix64.GOLDEN_GAMMA * (i + 1) + 0xC2B2AE3D27D4EB4FL * (j + 2));
    }
}
