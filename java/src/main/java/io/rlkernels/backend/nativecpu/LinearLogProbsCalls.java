package io.rlkernels.backend.nativecpu;

import static io.rlkernels.backend.internal.LinearChunks.rows;
import static io.rlkernels.backend.nativecpu.NativeCalls.host;

import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.internal.LinearLogProbsChecks;
import io.rlkernels.ops.internal.LogProbsChecks;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.function.LongConsumer;

/**
 * Log-probs from hidden states on the native backend when the workspace is small (contract:
 * {@link LinearLogProbs}): tiles of the vocabulary as well as of the rows, so that each product
 * keeps many rows (a BLAS on two cores needs hundreds to reach its rate; measured in
 * bench/RESULTS.md). A tile is [rows, vt] logits of columns [v0, v0 + vt); the forward runs the
 * log-probs kernel on each tile (its (m_t, ln s_t) and entropy H_t) and merges the tiles of a row
 * in f64:
 *
 * <pre>
 *   M = max_t m_t,  delta_t = (m_t - M) / T,  S = sum_t e^(delta_t + ln s_t)   (kept as e^L + R, L = ln s of the max's tile)
 *   ln S = L + log1p(R / e^L),  logp = (z_y - M) / T - ln S,  lse = M / T + ln S
 *   H = ln S - (1 / S) sum_t e^(delta_t + ln s_t) (ln s_t - H_t + delta_t)
 * </pre>
 *
 * with z_y read from the tile that holds it, so a near-certain token's logp = -ln S keeps its
 * digits as in §5.1. The backward runs the log-probs backward on each recomputed tile with the
 * whole row's (M, ln S) and H (rlk_logprobs_bwd with the tile's first column: the one-hot term only
 * in the target's tile), then dH += dz W_t and dW_t += dz^T H. Four products a step, each with all
 * the rows of a chunk; the fused loss takes two passes (forward, the loss on the batch, backward).
 * Used when a chunk of whole rows would hold fewer than {@link #MIN_ROWS} rows (the fused loss:
 * {@link #tilesLoss}); otherwise the backend keeps the chunks of whole rows (BackendBase's
 * LinearHead), which are bitwise §5.1.
 */
final class LinearLogProbsCalls {
    /** Below this many rows a chunk of whole rows would starve the BLAS: tile the vocabulary. */
    static final long MIN_ROWS = 512;
    /** A tile keeps at least this many columns (fewer rows a chunk instead). */
    static final long MIN_COLUMNS = 256;

    private final LogProbsCalls logProbs;
    private final MatmulCalls matmul;
    private final NativeCalls calls;
    private final LongConsumer workspace;

    LinearLogProbsCalls(NativeCalls calls, LogProbsCalls logProbs, MatmulCalls matmul, LongConsumer workspace) {
        this.calls = calls;
        this.logProbs = logProbs;
        this.matmul = matmul;
        this.workspace = workspace;
    }

    /** Below this many rows a chunk the fused loss's one pass over whole rows loses to two passes over tiles. */
    static final long LOSS_MIN_ROWS = 256;

    /** Whether this call should tile the vocabulary: whole-row chunks would be smaller than MIN_ROWS (and than N). */
    static boolean tiles(LinearLogProbs.Config cfg, long rows, long vocab) {
        return rows > 1 && cfg.chunkRows(vocab, rows) < Math.min(rows, MIN_ROWS);
    }

    /**
     * Whether the fused loss should tile the vocabulary. Whole-row chunks take one pass (three
     * products) where each chunk holds whole sequences, so they win down to about 256 rows a
     * chunk (a product of 220 rows runs at ~2/3 of the BLAS's rate, measured: 3 x 3/2 &gt; 4); tiles
     * (four products at the full rate) win below that, and wherever the row chunks would need two
     * passes anyway (a sequence longer than a chunk).
     */
    static boolean tilesLoss(LinearLogProbs.Config cfg, io.rlkernels.ops.SequenceLayout sequences, long rows, long vocab) {
        if (rows <= 1) {
            return false;
        }
        long step = cfg.chunkRows(vocab, rows);
        if (step >= rows) {
            return false; // one chunk: one pass
        }
        return step < Math.min(rows, LOSS_MIN_ROWS) || io.rlkernels.backend.internal.LinearChunks.bounds(sequences, rows, step) == null;
    }

    /** The rows of a chunk and the columns of a tile: rows x columns f32 within the workspace. */
    private static long[] shape(LinearLogProbs.Config cfg, long n, long v) {
        long elements = cfg.workspaceBytes() / 4;
        long rows = Math.min(n, Math.max(1, elements / Math.min(v, MIN_COLUMNS)));
        if (cfg.maxChunkRows() > 0) {
            rows = Math.min(rows, cfg.maxChunkRows());
        }
        long cols = Math.max(1, Math.min(v, elements / rows));
        return new long[] {rows, cols};
    }

    /** A workspace tensor, counted while it lives. */
    private final class Scratch implements AutoCloseable {
        final HostTensor t;

        Scratch(DType dtype, long... shape) {
            t = HostTensor.allocate(dtype, shape);
            workspace.accept(t.byteSize());
        }

        @Override
        public void close() {
            workspace.accept(-t.byteSize());
            t.close();
        }
    }

    void forward(LinearLogProbs.Config cfg, Tensor hidden, Tensor weight, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                 Tensor lseParts) {
        LinearLogProbs.Dims d = LinearLogProbsChecks.checkForward(cfg, hidden, weight, targets, logp, lse, entropy, lseParts);
        HostTensor y = host("targets", targets);
        HostTensor outLogp = host("logp", logp);
        HostTensor outLse = lse == null ? null : host("lse", lse);
        HostTensor outEntropy = entropy == null ? null : host("entropy", entropy);
        HostTensor outParts = lseParts == null ? null : host("lseParts", lseParts);
        LogProbs.Config lp = cfg.logProbs();
        double t = lp.temperature();
        long[] sh = shape(cfg, d.rows(), d.vocab());
        long nc = sh[0];
        long vt = sh[1];
        try (Scratch tile = new Scratch(DType.F32, nc, vt); Scratch tileTargets = new Scratch(DType.I64, nc);
             Scratch tLogp = new Scratch(DType.F32, nc); Scratch tEntropy = new Scratch(DType.F32, nc);
             Scratch tParts = new Scratch(DType.F32, nc, 2)) {
            double[] m = new double[(int) nc];
            double[] ls = new double[(int) nc];
            double[] rest = new double[(int) nc];
            double[] e = new double[(int) nc];
            double[] zy = new double[(int) nc];
            for (long r0 = 0; r0 < d.rows(); r0 += nc) {
                int r = (int) Math.min(nc, d.rows() - r0);
                java.util.Arrays.fill(m, Double.NEGATIVE_INFINITY);
                java.util.Arrays.fill(ls, 0);
                java.util.Arrays.fill(rest, 0);
                java.util.Arrays.fill(e, 0);
                java.util.Arrays.fill(zy, Double.NaN);
                for (long v0 = 0; v0 < d.vocab(); v0 += vt) {
                    long c = Math.min(vt, d.vocab() - v0);
                    HostTensor z = HostTensor.wrap(tile.t.segment().asSlice(0, (long) r * c * 4), DType.F32, r, c);
                    matmul.matmul(false, true, 1f, rows(hidden, r0, r), rows(weight, v0, c), 0f, z);
                    HostTensor ty = (HostTensor) rows(tileTargets.t, 0, r);
                    for (int i = 0; i < r; i++) {
                        long target = y.getLong(r0 + i);
                        ty.setLong(i, target == lp.ignoreIndex() ? lp.ignoreIndex() : target >= v0 && target < v0 + c ? target - v0 : 0);
                    }
                    logProbs.forward(lp, z, ty, rows(tLogp.t, 0, r), null, rows(tEntropy.t, 0, r), rows(tParts.t, 0, r));
                    for (int i = 0; i < r; i++) {
                        long target = y.getLong(r0 + i);
                        if (target == lp.ignoreIndex()) {
                            continue;
                        }
                        if (target >= v0 && target < v0 + c) {
                            zy[i] = z.getFloat((long) i * c + (target - v0));
                        }
                        double mt = tParts.t.getFloat(2L * i);
                        double lst = tParts.t.getFloat(2L * i + 1);
                        double ht = tEntropy.t.getFloat(i);
                        if (Double.isNaN(mt) || Double.isNaN(lst) || Double.isNaN(m[i])) {
                            m[i] = Double.NaN; // a row without a distribution in one tile has none at all
                            continue;
                        }
                        if (mt > m[i]) { // the new tile holds the row's max: rescale what was kept to it
                            double delta = (m[i] - mt) / t; // -inf for the first tile
                            double s = m[i] == Double.NEGATIVE_INFINITY ? 0 : Math.exp(ls[i]) + rest[i];
                            double scale = s == 0 ? 0 : Math.exp(delta);
                            e[i] = s == 0 ? 0 : scale * (e[i] + delta * s);
                            rest[i] = s * scale;
                            ls[i] = lst;
                            m[i] = mt;
                            e[i] += Math.exp(lst) * (lst - ht);
                        } else if (mt == m[i]) { // ties across tiles: both are part of the max's term
                            e[i] += Math.exp(lst) * (lst - ht);
                            ls[i] = ls[i] + Math.log1p(Math.exp(lst - ls[i]));
                        } else {
                            double delta = (mt - m[i]) / t;
                            double w = Math.exp(delta + lst);
                            rest[i] += w;
                            e[i] += w * (lst - ht + delta);
                        }
                    }
                }
                for (int i = 0; i < r; i++) {
                    long row = r0 + i;
                    long target = y.getLong(row);
                    float vLogp;
                    float vLse;
                    float vH;
                    float vM;
                    float vLs;
                    if (target == lp.ignoreIndex()) {
                        vLogp = vLse = vH = vM = vLs = 0f;
                    } else if (Double.isNaN(m[i])) {
                        vLogp = vLse = vH = vM = vLs = Float.NaN;
                    } else {
                        double lnS = ls[i] + Math.log1p(rest[i] / Math.exp(ls[i]));
                        double s = Math.exp(ls[i]) + rest[i];
                        vLogp = (float) ((zy[i] - m[i]) / t - lnS);
                        vLse = (float) (m[i] / t + lnS);
                        vH = (float) (lnS - e[i] / s);
                        vM = (float) m[i];
                        vLs = (float) lnS;
                        if (Float.isInfinite(vLse)) {
                            throw LogProbsChecks.overflow(row, lp);
                        }
                    }
                    outLogp.setFloat(row, vLogp);
                    if (outLse != null) {
                        outLse.setFloat(row, vLse);
                    }
                    if (outEntropy != null) {
                        outEntropy.setFloat(row, vH);
                    }
                    if (outParts != null) {
                        outParts.setFloat(2 * row, vM);
                        outParts.setFloat(2 * row + 1, vLs);
                    }
                }
            }
        }
    }

    void backward(LinearLogProbs.Config cfg, Tensor hidden, Tensor weight, Tensor targets, Tensor lseParts, Tensor entropy,
                  Tensor gradLogp, Tensor gradEntropy, Tensor gradHidden, Tensor gradWeight) {
        LinearLogProbs.Dims d = LinearLogProbsChecks.checkBackward(cfg, hidden, weight, targets, lseParts, entropy, gradLogp,
                gradEntropy, gradHidden, gradWeight);
        LogProbs.Config lp = cfg.logProbs();
        HostTensor y = host("targets", targets);
        float[] limits = LogProbsChecks.upstreamLimits(lp.temperature(), d.vocab());
        if (gradLogp != null) {
            calls.requireWithin("gradLogp", host("gradLogp", gradLogp), limits[0], LogProbsChecks.upstreamReason(lp.temperature()));
        }
        if (gradEntropy != null) {
            calls.requireWithin("gradEntropy", host("gradEntropy", gradEntropy), limits[1],
                    LogProbsChecks.upstreamReason(lp.temperature()));
        }
        long[] sh = shape(cfg, d.rows(), d.vocab());
        long nc = sh[0];
        long vt = sh[1];
        try (Scratch tile = new Scratch(DType.F32, nc, vt)) {
            for (long r0 = 0; r0 < d.rows(); r0 += nc) {
                long r = Math.min(nc, d.rows() - r0);
                Tensor hc = rows(hidden, r0, r);
                for (long v0 = 0; v0 < d.vocab(); v0 += vt) {
                    long c = Math.min(vt, d.vocab() - v0);
                    HostTensor z = HostTensor.wrap(tile.t.segment().asSlice(0, r * c * 4), DType.F32, r, c);
                    Tensor wt = rows(weight, v0, c);
                    matmul.matmul(false, true, 1f, hc, wt, 0f, z);
                    logProbs.backwardTile(lp, z, (HostTensor) rows(y, r0, r), (HostTensor) rows(host("lseParts", lseParts), r0, r),
                            entropy == null ? null : (HostTensor) rows(host("entropy", entropy), r0, r),
                            gradLogp == null ? null : (HostTensor) rows(host("gradLogp", gradLogp), r0, r),
                            gradEntropy == null ? null : (HostTensor) rows(host("gradEntropy", gradEntropy), r0, r), v0);
                    if (gradHidden != null) {
                        matmul.matmul(false, false, 1f, z, wt, v0 == 0 ? 0f : 1f, rows(gradHidden, r0, r));
                    }
                    if (gradWeight != null) {
                        matmul.matmul(true, false, 1f, z, hc, 1f, rows(gradWeight, v0, c));
                    }
                }
            }
        }
    }

    /** The fused loss in two passes over W: the tiled forward, the policy loss on the batch, the tiled backward. */
    PolicyLoss.Stats loss(LinearLogProbs.Config cfg, PolicyLoss.Config loss, LinearLogProbs.LossInputs in, Tensor logp,
                          Tensor gradHidden, Tensor gradWeight, PolicyLossCalls policy) {
        LinearLogProbs.Dims d = LinearLogProbsChecks.checkLoss(cfg, loss, in, logp, gradHidden, gradWeight);
        long n = d.rows();
        boolean withEntropy = loss.entropyCoef() != 0 || loss.selection().topEntropyQuantile() < 1;
        try (Scratch own = new Scratch(DType.F32, n); Scratch parts = new Scratch(DType.F32, n, 2);
             Scratch ent = new Scratch(DType.F32, withEntropy ? n : 0); Scratch g = new Scratch(DType.F32, n);
             Scratch h = new Scratch(DType.F32, withEntropy ? n : 0);
             HostTensor stats = HostTensor.allocate(DType.F64, PolicyLoss.STATS_LENGTH)) {
            Tensor lp = logp != null ? logp : own.t;
            HostTensor entropy = withEntropy ? ent.t : null;
            HostTensor gEntropy = withEntropy ? h.t : null;
            forward(cfg, in.hidden(), in.weight(), in.targets(), lp, null, entropy, parts.t);
            PolicyLoss.Config resolved = loss.selectsOnThisBatch()
                    ? io.rlkernels.ops.PolicyLossSelection.resolve(loss, in.perToken(lp, entropy)) : loss;
            policy.policyLoss(resolved, in.perToken(lp, entropy), g.t, gEntropy, stats);
            backward(cfg, in.hidden(), in.weight(), in.targets(), parts.t, entropy, g.t, gEntropy, gradHidden, gradWeight);
            return PolicyLoss.Stats.of(stats);
        }
    }
}
