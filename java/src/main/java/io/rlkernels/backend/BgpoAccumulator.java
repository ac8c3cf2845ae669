package io.rlkernels.backend;

import io.rlkernels.backend.internal.BackendBase;
import io.rlkernels.backend.internal.BgpoWorkspace;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * BGPO's constant-memory accumulation (ARCHITECTURE §5.4): consumes the n_t Monte Carlo samples of a
 * batch one at a time. Between samples it keeps the running loss and statistics (ten doubles) and
 * per-row scratch sized by R and S; nothing grows with n_t ({@link #allocatedBytes}). Each
 * {@link #step} leaves the gradient of that sample's logits, scaled so that the n_t gradients sum
 * to the gradient of the BGPO loss; the caller back-propagates it and drops the logits.
 *
 * <p>With a linear head (logits = H W^T), {@link #stepLinear} takes a sample's hidden states and
 * never stores its logits: they are formed a chunk of rows at a time in a workspace the caller
 * bounds ({@link #linearWorkspaceBytes}; as {@code Backend.linearLogProbs}), recomputed for the
 * backward, which accumulates dW += dlogits^T H and writes dH = dlogits W.
 */
public final class BgpoAccumulator implements AutoCloseable {
    private final BackendBase backend;
    private final Bgpo.Config config;
    private final SequenceLayout rows;
    private final Tensor targets;
    private final Tensor advantages;
    private final BgpoWorkspace workspace;
    private final Tensor state;
    private LinearLogProbs.Config linear = LinearLogProbs.Config.defaults();
    private int consumed;

    /**
     * An accumulator for one BGPO step on {@code backend}: the response rows of each sequence, their
     * targets [R] (i32 or i64) and the sequences' advantages [S] f32; its workspace is O(R + S), the
     * same for any number of samples. Close it to free the workspace.
     */
    public BgpoAccumulator(Backend backend, Bgpo.Config config, SequenceLayout rows, Tensor targets, Tensor advantages) {
        if (backend == null || config == null || rows == null) {
            throw Check.fail(backend == null ? "backend" : config == null ? "config" : "rows",
                    backend == null ? "a Backend" : config == null ? "a Bgpo.Config" : "the sequence of each response row (a SequenceLayout)",
                    "null");
        }
        rows.requireAlive("rows");
        Check.alive("advantages", advantages);
        this.backend = BackendBase.of("backend", backend);
        this.config = config;
        this.rows = rows;
        this.targets = targets;
        this.advantages = advantages;
        Check.alive("targets", targets);
        Check.dtype("targets", targets, DType.I32, DType.I64);
        long r = rows.tokens();
        int s = rows.sequences();
        this.workspace = new BgpoWorkspace(backend.allocate(targets.dtype(), r), backend.allocate(DType.F32, r),
                backend.allocate(DType.F32, r, 2), backend.allocate(DType.F32, r), backend.allocate(DType.F32, s));
        try (HostTensor init = HostTensor.allocate(DType.F64, Bgpo.STATS_LENGTH)) {
            double[] v = Bgpo.Stats.initial();
            for (int i = 0; i < v.length; i++) {
                init.setDouble(i, v[i]);
            }
            this.state = backend.upload(init);
        }
    }

    /**
     * Consumes one sample: its logits [R, V], mask [R], weights and old values [S]; writes the
     * logits gradient of this sample into {@code gradLogits} (the logits themselves for in place).
     */
    public void step(Tensor logits, Tensor mask, Tensor weights, Tensor oldValues, Tensor gradLogits) {
        checkRemaining();
        backend.bgpoStep(config, new Bgpo.Sample(logits, targets, rows, mask, weights, oldValues, advantages), workspace,
                gradLogits, state);
        consumed++;
    }

    private void checkRemaining() {
        if (consumed >= config.samples()) {
            throw Check.fail("step", "at most n_t = " + config.samples() + " samples", "sample " + (consumed + 1));
        }
    }

    /**
     * One sample through a linear head, its logits never stored: hidden [R, d] and the head's
     * weight w [V, d] (f32, bf16 or f16); gradW += dlogits^T hidden ([V, d] f32, accumulated over
     * samples) and gradHidden = dlogits W ([R, d] f32, this sample's). Either gradient may be null.
     */
    public void stepLinear(Tensor hidden, Tensor w, Tensor mask, Tensor weights, Tensor oldValues, Tensor gradW,
                           Tensor gradHidden) {
        checkRemaining();
        backend.bgpoStepLinear(config, linear, hidden, w, targets, rows, mask, weights, oldValues, advantages, workspace, gradHidden,
                gradW, state);
        consumed++;
    }

    /** The workspace {@link #stepLinear} may take for a chunk of logits (default: LinearLogProbs.DEFAULT_WORKSPACE_BYTES). */
    public BgpoAccumulator linearWorkspaceBytes(long bytes) {
        linear = linear.withWorkspaceBytes(bytes);
        return this;
    }

    /**
     * The values l_ij = w_ij * (the sum of log p over the rows sample j masks) per sequence ([S] f32
     * into {@code out}) of these logits [R, V] on sample j's mask [R] and weights [S]: what the old
     * policy's pass gives {@link #step} as {@code oldValues}, on the same masks. Nothing is
     * accumulated and no sample is consumed; the logits are only read.
     */
    public void values(Tensor logits, Tensor mask, Tensor weights, Tensor out) {
        Check.alive("logits", logits);
        Check.rank("logits", logits, 2);
        int s = rows.sequences();
        try (HostTensor zeros = HostTensor.allocate(DType.F32, s); HostTensor init = HostTensor.allocate(DType.F64, Bgpo.STATS_LENGTH)) {
            double[] v = Bgpo.Stats.initial();
            for (int i = 0; i < v.length; i++) {
                init.setDouble(i, v[i]);
            }
            try (Tensor noOld = backend.upload(zeros); Tensor scratch = backend.upload(init)) {
                backend.maskRows(targets, mask, logits.dim(1), workspace.rowTargets());
                backend.logProbs(Bgpo.logProbsConfig(config), logits, workspace.rowTargets(), workspace.logp(), null, null,
                        workspace.lseParts());
                backend.bgpoCoefficients(config, workspace.logp(), rows, mask, weights, noOld, advantages, out, workspace.upstream(),
                        scratch);
            }
        }
    }

    /** l_ij of the last sample consumed, per sequence ([S] f32, where the backend computes). */
    public Tensor lastValues() {
        return workspace.values();
    }

    /** Samples consumed so far. */
    public int consumed() {
        return consumed;
    }

    /** The running loss and statistics (on a device backend this waits for the kernels). */
    public Bgpo.Stats stats() {
        try (HostTensor host = HostTensor.allocate(DType.F64, Bgpo.STATS_LENGTH)) {
            backend.download(state, host);
            return Bgpo.Stats.of(host);
        }
    }

    /**
     * Everything this accumulator keeps between samples: independent of n_t (and of V: a linear
     * step's chunk of logits lives for the call, counted by {@code Backend.workspacePeakBytes}).
     */
    public long allocatedBytes() {
        return workspace.bytes() + state.byteSize();
    }

    @Override
    public void close() {
        workspace.close();
        state.close();
    }
}
