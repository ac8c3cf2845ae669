package io.rlkernels.backend;

import io.rlkernels.backend.internal.BackendBase;
import io.rlkernels.backend.internal.BgpoWorkspace;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.Bgpo;
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
 * <p>With a linear head (logits = H W^T), {@link #stepLinear} also forms the logits of the sample
 * in a buffer of its own (again [R, V], reused), accumulates dW += dlogits^T H and returns
 * dH = dlogits W, so no sample's logits outlive its step.
 */
public final class BgpoAccumulator implements AutoCloseable {
    private final BackendBase backend;
    private final Bgpo.Config config;
    private final SequenceLayout rows;
    private final Tensor targets;
    private final Tensor advantages;
    private final BgpoWorkspace workspace;
    private final Tensor state;
    private Tensor headLogits; // [R, V] for stepLinear, made on first use
    private int consumed;

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
        if (consumed >= config.samples()) {
            throw Check.fail("step", "at most n_t = " + config.samples() + " samples", "sample " + (consumed + 1));
        }
        backend.bgpoStep(config, new Bgpo.Sample(logits, targets, rows, mask, weights, oldValues, advantages), workspace,
                gradLogits, state);
        consumed++;
    }

    /**
     * One sample through a linear head: logits = hidden W^T ([R, d] x [V, d]^T), the step in place,
     * then gradW += dlogits^T hidden ([V, d], accumulated over samples) and gradHidden = dlogits W
     * ([R, d], this sample's).
     */
    public void stepLinear(Tensor hidden, Tensor w, Tensor mask, Tensor weights, Tensor oldValues, Tensor gradW,
                           Tensor gradHidden) {
        if (headLogits == null) {
            headLogits = backend.allocate(DType.F32, rows.tokens(), w.dim(0));
        }
        backend.matmul(false, true, 1f, hidden, w, 0f, headLogits);
        step(headLogits, mask, weights, oldValues, headLogits);
        backend.matmul(true, false, 1f, headLogits, hidden, 1f, gradW);
        backend.matmul(false, false, 1f, headLogits, w, 0f, gradHidden);
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

    /** Everything this accumulator allocated: independent of n_t. */
    public long allocatedBytes() {
        return workspace.bytes() + state.byteSize() + (headLogits == null ? 0 : headLogits.byteSize());
    }

    @Override
    public void close() {
        workspace.close();
        state.close();
        if (headLogits != null) {
            headLogits.close();
        }
    }
}
