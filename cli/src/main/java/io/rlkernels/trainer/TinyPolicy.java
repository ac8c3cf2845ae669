package io.rlkernels.trainer;

import java.util.SplittableRandom;

/**
 * A small policy over digit sequences, written out by hand so the trainer stays thin: the RL
 * math (log-probs, advantages, losses, logits gradients) is the library's.
 *
 * <p>A query asks for the digit at position p of a sequence of L positions, given the prompt (a
 * target t) and the sequence as known so far (each position a digit or MASK):
 *
 * <pre>
 *   x      = E_t[t] + sum_q E[q][token_q]          (token_q in 0..9 or MASK)
 *   h      = relu(W1 x + U[p])
 *   logits = W2 h + b2                            (10 digits)
 * </pre>
 *
 * The same model serves both tasks: autoregressive generation queries position k with the later
 * positions masked; masked diffusion queries any masked position. Parameters are trained by AdamW.
 */
public final class TinyPolicy {
    public static final int DIGITS = 10;
    public static final int MASK = DIGITS; // the eleventh token of a position

    final int length;
    final int targets;
    final int hidden;
    // parameters and their gradients (flat, row-major)
    final float[] embedTarget;  // [targets][hidden]
    final float[] embedToken;   // [length][DIGITS + 1][hidden]
    final float[] w1;           // [hidden][hidden]
    final float[] query;        // [length][hidden]: U
    final float[] w2;           // [DIGITS][hidden]
    final float[] b2;           // [DIGITS]
    private final float[][] params;
    private final float[][] grads;
    private final float[][] m;
    private final float[][] v;
    private long adamSteps;

    /** A policy for sequences of {@code length} digits and prompts 0..targets-1, initialised from {@code seed}. */
    public TinyPolicy(int length, int targets, int hidden, long seed) {
        this.length = length;
        this.targets = targets;
        this.hidden = hidden;
        SplittableRandom rng = new SplittableRandom(seed);
        embedTarget = normal(rng, targets * hidden, 0.5);
        embedToken = normal(rng, length * (DIGITS + 1) * hidden, 0.5);
        w1 = normal(rng, hidden * hidden, 1 / Math.sqrt(hidden));
        query = normal(rng, length * hidden, 0.5);
        w2 = normal(rng, DIGITS * hidden, 0.1 / Math.sqrt(hidden));
        b2 = new float[DIGITS];
        params = new float[][] {embedTarget, embedToken, w1, query, w2, b2};
        grads = new float[params.length][];
        m = new float[params.length][];
        v = new float[params.length][];
        for (int i = 0; i < params.length; i++) {
            grads[i] = new float[params[i].length];
            m[i] = new float[params[i].length];
            v[i] = new float[params[i].length];
        }
    }

    private static float[] normal(SplittableRandom rng, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rng.nextGaussian() * scale);
        }
        return a;
    }

    public int length() {
        return length;
    }

    /** Queries: prompt t, the sequence as known (digits or MASK) and the position asked for. */
    public record Queries(int[] target, int[][] tokens, int[] position) {
        public int size() {
            return target.length;
        }
    }

    /** What the backward needs from the forward: x and the pre-activations, per query. */
    public record Cache(Queries queries, float[] x, float[] pre) {}

    /** Logits [Q, 10] (row-major) into {@code logits}; returns the cache for {@link #backward}. */
    public Cache forward(Queries q, float[] logits) {
        int n = q.size();
        float[] x = new float[n * hidden];
        float[] pre = new float[n * hidden];
        for (int i = 0; i < n; i++) {
            int xo = i * hidden;
            int to = q.target()[i] * hidden;
            for (int k = 0; k < hidden; k++) {
                x[xo + k] = embedTarget[to + k];
            }
            for (int pos = 0; pos < length; pos++) {
                int eo = (pos * (DIGITS + 1) + q.tokens()[i][pos]) * hidden;
                for (int k = 0; k < hidden; k++) {
                    x[xo + k] += embedToken[eo + k];
                }
            }
            int uo = q.position()[i] * hidden;
            for (int r = 0; r < hidden; r++) {
                float a = query[uo + r];
                int wo = r * hidden;
                for (int k = 0; k < hidden; k++) {
                    a += w1[wo + k] * x[xo + k];
                }
                pre[xo + r] = a;
            }
            for (int d = 0; d < DIGITS; d++) {
                float z = b2[d];
                int wo = d * hidden;
                for (int k = 0; k < hidden; k++) {
                    z += w2[wo + k] * Math.max(0f, pre[xo + k]);
                }
                logits[i * DIGITS + d] = z;
            }
        }
        return new Cache(q, x, pre);
    }

    /** Adds the parameter gradients of dL/dlogits [Q, 10] into the gradient buffers. */
    public void backward(Cache c, float[] dLogits) {
        Queries q = c.queries();
        float[] dh = new float[hidden];
        float[] dx = new float[hidden];
        float[] gEt = grads[0];
        float[] gEk = grads[1];
        float[] gW1 = grads[2];
        float[] gU = grads[3];
        float[] gW2 = grads[4];
        float[] gB2 = grads[5];
        for (int i = 0; i < q.size(); i++) {
            int xo = i * hidden;
            java.util.Arrays.fill(dh, 0f);
            boolean any = false;
            for (int d = 0; d < DIGITS; d++) {
                float g = dLogits[i * DIGITS + d];
                if (g == 0f) {
                    continue;
                }
                any = true;
                gB2[d] += g;
                int wo = d * hidden;
                for (int k = 0; k < hidden; k++) {
                    gW2[wo + k] += g * Math.max(0f, c.pre()[xo + k]);
                    dh[k] += g * w2[wo + k];
                }
            }
            if (!any) {
                continue; // a row with no gradient (an unmasked position of a BGPO sample)
            }
            java.util.Arrays.fill(dx, 0f);
            int uo = q.position()[i] * hidden;
            for (int r = 0; r < hidden; r++) {
                if (c.pre()[xo + r] <= 0) {
                    continue;
                }
                float g = dh[r];
                gU[uo + r] += g;
                int wo = r * hidden;
                for (int k = 0; k < hidden; k++) {
                    gW1[wo + k] += g * c.x()[xo + k];
                    dx[k] += g * w1[wo + k];
                }
            }
            int to = q.target()[i] * hidden;
            for (int k = 0; k < hidden; k++) {
                gEt[to + k] += dx[k];
            }
            for (int pos = 0; pos < length; pos++) {
                int eo = (pos * (DIGITS + 1) + q.tokens()[i][pos]) * hidden;
                for (int k = 0; k < hidden; k++) {
                    gEk[eo + k] += dx[k];
                }
            }
        }
    }

    /** One AdamW step on the accumulated gradients (weight decay on the two matrices), then zeroes them. */
    public void adamw(double lr, double weightDecay) {
        adamSteps++;
        double b1 = 0.9;
        double b2c = 0.999;
        double c1 = 1 - Math.pow(b1, adamSteps);
        double c2 = 1 - Math.pow(b2c, adamSteps);
        for (int t = 0; t < params.length; t++) {
            float[] p = params[t];
            float[] g = grads[t];
            boolean decay = p == w1 || p == w2;
            for (int i = 0; i < p.length; i++) {
                m[t][i] = (float) (b1 * m[t][i] + (1 - b1) * g[i]);
                v[t][i] = (float) (b2c * v[t][i] + (1 - b2c) * g[i] * g[i]);
                double update = (m[t][i] / c1) / (Math.sqrt(v[t][i] / c2) + 1e-8);
                p[i] -= (float) (lr * (update + (decay ? weightDecay * p[i] : 0)));
                g[i] = 0f;
            }
        }
    }

    /** The parameter count. */
    public int parameters() {
        int n = 0;
        for (float[] p : params) {
            n += p.length;
        }
        return n;
    }
}
