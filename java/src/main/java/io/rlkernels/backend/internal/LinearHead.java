package io.rlkernels.backend.internal;

import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.ops.internal.LinearLogProbsChecks;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.DeviceTensor;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * Log-probs from hidden states on any backend, from its own primitives (contract:
 * {@link LinearLogProbs}): chunks of whole token rows, each the matrix product H_c W^T into one
 * workspace of {@code chunkRows x V} f32, the log-probs kernels on it, and for the backward,
 * in place, dH_c = dz W and dW += dz^T H_c. The workspace is the only allocation of size V;
 * everything else is per row.
 *
 * <p>The fused loss form takes one pass over W when it can: with the denominator fixed for the
 * whole batch (given, or what the mode implies, found first by the policy-loss op itself), a
 * chunk of whole sequences has the same per-token loss, gradient and statistics as in the whole
 * batch, so each chunk runs forward, loss, backward and both gradient products at once (three
 * products per chunk, as the materialised path). When a sequence the loss needs whole does not
 * fit in a chunk, it takes two: the forward over all chunks, the loss on the whole batch, then
 * the backward over recomputed chunks (four products per chunk).
 */
final class LinearHead {
    private final BackendBase b;

    LinearHead(BackendBase b) {
        this.b = b;
    }

    void forward(LinearLogProbs.Config cfg, Tensor hidden, Tensor weight, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                 Tensor lseParts) {
        LinearLogProbs.Dims d = LinearLogProbsChecks.checkForward(cfg, hidden, weight, targets, logp, lse, entropy, lseParts);
        eachChunk(cfg, d, hidden, weight, (z, r0, r) -> b.runLogProbs(cfg.logProbs(), z, rows(targets, r0, r), rows(logp, r0, r),
                rows(lse, r0, r), rows(entropy, r0, r), rows(lseParts, r0, r)));
    }

    void backward(LinearLogProbs.Config cfg, Tensor hidden, Tensor weight, Tensor targets, Tensor lseParts, Tensor entropy,
                  Tensor gradLogp, Tensor gradEntropy, Tensor gradHidden, Tensor gradWeight) {
        LinearLogProbs.Dims d = LinearLogProbsChecks.checkBackward(cfg, hidden, weight, targets, lseParts, entropy, gradLogp,
                gradEntropy, gradHidden, gradWeight);
        eachChunk(cfg, d, hidden, weight, (z, r0, r) -> {
            b.runLogProbsBackward(cfg.logProbs(), z, rows(targets, r0, r), rows(lseParts, r0, r), rows(entropy, r0, r),
                    rows(gradLogp, r0, r), rows(gradEntropy, r0, r), z);
            gradientProducts(z, hidden, weight, r0, r, gradHidden, gradWeight);
        });
    }

    /** What runs on one chunk's logits z (rows [r0, r0 + r) of the batch). */
    private interface ChunkBody {
        void run(Tensor z, long r0, long r);
    }

    /** The batch in chunks of rows: each chunk's logits formed in one workspace, then {@code body}. */
    private void eachChunk(LinearLogProbs.Config cfg, LinearLogProbs.Dims d, Tensor hidden, Tensor weight, ChunkBody body) {
        if (d.rows() == 0) {
            return;
        }
        long step = cfg.chunkRows(d.vocab(), d.rows());
        try (BackendBase.Workspace chunk = b.workspace(DType.F32, step, d.vocab())) {
            for (long r0 = 0; r0 < d.rows(); r0 += step) {
                long r = Math.min(step, d.rows() - r0);
                body.run(logits(chunk, r, d, hidden, weight, r0), r0, r);
            }
        }
    }

    PolicyLoss.Stats loss(LinearLogProbs.Config cfg, PolicyLoss.Config loss, LinearLogProbs.LossInputs in, Tensor logp,
                          Tensor gradHidden, Tensor gradWeight) {
        LinearLogProbs.Dims d = LinearLogProbsChecks.checkLoss(cfg, loss, in, logp, gradHidden, gradWeight);
        long step = cfg.chunkRows(d.vocab(), Math.max(d.rows(), 1));
        boolean withEntropy = loss.entropyCoef() != 0 || loss.selection().topEntropyQuantile() < 1;
        long[] bounds = LinearChunks.bounds(in.sequences(), d.rows(), step);
        if (bounds == null) {
            return twoPasses(cfg, loss, in, d, logp, gradHidden, gradWeight, withEntropy);
        }
        PolicyLoss.Config fixed = bounds.length > 2 ? fixBatchValues(loss, in, d, withEntropy) : loss;
        if (fixed == null) { // what the batch implies depends on logp itself: it is needed whole first
            return twoPasses(cfg, loss, in, d, logp, gradHidden, gradWeight, withEntropy);
        }
        long widest = 0;
        for (int c = 0; c + 1 < bounds.length; c++) {
            widest = Math.max(widest, bounds[c + 1] - bounds[c]);
        }
        long w = Math.max(widest, 1);
        PolicyLoss.Stats total = null;
        try (BackendBase.Workspace chunk = b.workspace(DType.F32, w, d.vocab());
             BackendBase.Workspace rowLogp = b.workspace(DType.F32, w);
             BackendBase.Workspace parts = b.workspace(DType.F32, w, 2);
             BackendBase.Workspace entropy = withEntropy ? b.workspace(DType.F32, w) : null;
             BackendBase.Workspace gLogp = b.workspace(DType.F32, w);
             BackendBase.Workspace gEntropy = withEntropy ? b.workspace(DType.F32, w) : null;
             BackendBase.Workspace stats = b.workspace(DType.F64, PolicyLoss.STATS_LENGTH);
             HostTensor hostStats = HostTensor.allocate(DType.F64, PolicyLoss.STATS_LENGTH)) {
            for (int c = 0; c + 1 < bounds.length; c++) {
                long r0 = bounds[c];
                long r = bounds[c + 1] - r0;
                Tensor z = logits(chunk, r, d, in.hidden(), in.weight(), r0);
                Tensor t = rows(in.targets(), r0, r);
                Tensor lp = logp != null ? rows(logp, r0, r) : rows(rowLogp.tensor(), 0, r);
                Tensor ps = rows(parts.tensor(), 0, r);
                Tensor ent = entropy == null ? null : rows(entropy.tensor(), 0, r);
                Tensor g = rows(gLogp.tensor(), 0, r);
                Tensor h = gEntropy == null ? null : rows(gEntropy.tensor(), 0, r);
                b.runLogProbs(cfg.logProbs(), z, t, lp, null, ent, ps);
                try (SequenceLayout seqs = in.sequences() == null ? null : part(in.sequences(), r0, r0 + r)) {
                    b.runPolicyLoss(fixed, new PolicyLoss.Inputs(lp, rows(in.oldLogp(), r0, r), rows(in.advantages(), r0, r),
                            rows(in.mask(), r0, r), seqs, rows(in.refLogp(), r0, r), ent, rows(in.rolloutLogp(), r0, r)), g, h,
                            stats.tensor());
                }
                b.copyOut(stats.tensor(), hostStats);
                PolicyLoss.Stats s = PolicyLoss.Stats.of(hostStats);
                total = total == null ? s : total.merge(s);
                b.runLogProbsBackward(cfg.logProbs(), z, t, ps, ent, g, h, z);
                gradientProducts(z, in.hidden(), in.weight(), r0, r, gradHidden, gradWeight);
            }
        }
        return total;
    }

    /** The forward over all chunks, the loss over the whole batch, the backward over all chunks. */
    private PolicyLoss.Stats twoPasses(LinearLogProbs.Config cfg, PolicyLoss.Config loss, LinearLogProbs.LossInputs in,
                                       LinearLogProbs.Dims d, Tensor logp, Tensor gradHidden, Tensor gradWeight, boolean withEntropy) {
        long n = d.rows();
        try (BackendBase.Workspace rowLogp = logp == null ? b.workspace(DType.F32, n) : null;
             BackendBase.Workspace parts = b.workspace(DType.F32, n, 2);
             BackendBase.Workspace entropy = withEntropy ? b.workspace(DType.F32, n) : null;
             BackendBase.Workspace gLogp = b.workspace(DType.F32, n);
             BackendBase.Workspace gEntropy = withEntropy ? b.workspace(DType.F32, n) : null;
             BackendBase.Workspace stats = b.workspace(DType.F64, PolicyLoss.STATS_LENGTH);
             HostTensor hostStats = HostTensor.allocate(DType.F64, PolicyLoss.STATS_LENGTH)) {
            Tensor lp = logp != null ? logp : rowLogp.tensor();
            Tensor ent = entropy == null ? null : entropy.tensor();
            Tensor h = gEntropy == null ? null : gEntropy.tensor();
            forward(cfg, in.hidden(), in.weight(), in.targets(), lp, null, ent, parts.tensor());
            b.runPolicyLoss(b.resolveSelection(loss, in.perToken(lp, ent), gLogp.tensor(), h, stats.tensor()), in.perToken(lp, ent),
                    gLogp.tensor(), h, stats.tensor());
            backward(cfg, in.hidden(), in.weight(), in.targets(), parts.tensor(), ent, gLogp.tensor(), h, gradHidden, gradWeight);
            b.copyOut(stats.tensor(), hostStats);
            return PolicyLoss.Stats.of(hostStats);
        }
    }

    /**
     * The loss with what its mode implies for the whole batch fixed — the denominator, and the
     * rollout correction's weight mean when it normalises — as the policy-loss op itself finds them
     * (its statistics carry them): one call on per-token vectors, with old logp standing in for
     * logp (they depend on the mask, the sequences, old and rollout logp only). Null in bypass mode
     * with a rejection or normalisation, where they depend on logp.
     */
    private PolicyLoss.Config fixBatchValues(PolicyLoss.Config loss, LinearLogProbs.LossInputs in, LinearLogProbs.Dims d,
                                             boolean withEntropy) {
        if (loss.selectsOnThisBatch()) {
            return null; // its selections' statistics depend on logp (and the entropy)
        }
        PolicyLoss.RolloutCorrection rc = loss.rollout();
        boolean normalizes = loss.appliesWeights() && rc.batchNormalize() && Double.isNaN(rc.normalizer());
        if (!Double.isNaN(loss.denominator()) && !normalizes) {
            return loss;
        }
        if (rc.bypass() && (normalizes || !rc.rejection().isEmpty())) {
            return null;
        }
        try (BackendBase.Workspace g = b.workspace(DType.F32, Math.max(d.rows(), 1));
             BackendBase.Workspace stats = b.workspace(DType.F64, PolicyLoss.STATS_LENGTH);
             HostTensor host = HostTensor.allocate(DType.F64, PolicyLoss.STATS_LENGTH)) {
            b.runPolicyLoss(loss, in.perToken(in.oldLogp(), withEntropy ? in.oldLogp() : null).withSequences(in.sequences()),
                    rows(g.tensor(), 0, d.rows()), null, stats.tensor());
            b.copyOut(stats.tensor(), host);
            PolicyLoss.Config fixed = loss.withDenominator(host.getDouble(PolicyLoss.STAT_DENOMINATOR));
            return normalizes ? fixed.withRollout(rc.withBatchNormalize(true, host.getDouble(PolicyLoss.STAT_RC_NORMALIZER))) : fixed;
        }
    }

    /** The sequences within rows [from, to), a layout of their own (rows relative to from). */
    private static SequenceLayout part(SequenceLayout all, long from, long to) {
        HostTensor offsets = all.offsets();
        java.util.List<Integer> lengths = new java.util.ArrayList<>();
        for (int s = 0; s < all.sequences(); s++) {
            long begin = offsets.getLong(s);
            if (begin >= from && begin < to) {
                lengths.add((int) (offsets.getLong(s + 1) - begin));
            }
        }
        return SequenceLayout.ofLengths(lengths.stream().mapToInt(Integer::intValue).toArray());
    }

    /** The chunk's logits z = H[r0, r0 + r) W^T, in the workspace's first r rows. */
    private Tensor logits(BackendBase.Workspace chunk, long r, LinearLogProbs.Dims d, Tensor hidden, Tensor weight, long r0) {
        Tensor z = rows(chunk.tensor(), 0, r);
        b.runMatmul(false, true, 1f, rows(hidden, r0, r), weight, 0f, z);
        return z;
    }

    /** dH[r0, r0 + r) = dz W and dW += dz^T H[r0, r0 + r), from the chunk's logits gradient dz. */
    private void gradientProducts(Tensor dz, Tensor hidden, Tensor weight, long r0, long r, Tensor gradHidden, Tensor gradWeight) {
        if (gradHidden != null) {
            b.runMatmul(false, false, 1f, dz, weight, 0f, rows(gradHidden, r0, r));
        }
        if (gradWeight != null) {
            b.runMatmul(true, false, 1f, dz, rows(hidden, r0, r), 1f, gradWeight);
        }
    }

    private static Tensor rows(Tensor t, long from, long count) {
        return LinearChunks.rows(t, from, count);
    }
}
