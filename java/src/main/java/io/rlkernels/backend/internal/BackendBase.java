package io.rlkernels.backend.internal;

import io.rlkernels.ops.internal.BgpoChecks;
import io.rlkernels.backend.Backend;
import io.rlkernels.internal.Check;
import io.rlkernels.internal.Lifetime;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.OptimalTokenBaseline;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.Layout;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Lease;
import io.rlkernels.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * What every backend shares, in one place: each public op leases the backend and every tensor
 * and layout it is given for the duration of the call, then runs the backend's implementation.
 * So a tensor or layout closed from another thread while an op uses it is freed when the op ends
 * (or, if closed first, refused by name), a closed backend refuses further ops, and a backend
 * closed while an op runs is released when the op ends. Nothing leaks either way.
 *
 * <p>Not API (the module does not export this package): it also carries BGPO's building blocks
 * ({@link #maskRows}, {@link #bgpoCoefficients}, {@link #bgpoStep} with its {@link BgpoWorkspace}),
 * which {@link io.rlkernels.backend.BgpoAccumulator} composes and tests check one by one.
 */
public abstract class BackendBase implements Backend {
    private final Lifetime lifetime = new Lifetime(this::release);
    private final java.util.concurrent.atomic.AtomicLong workspaceNow = new java.util.concurrent.atomic.AtomicLong();
    private final java.util.concurrent.atomic.AtomicLong workspacePeak = new java.util.concurrent.atomic.AtomicLong();
    private final LinearHead linearHead = new LinearHead(this);

    /** Frees what the backend holds; runs once, after close and when no op is running. */
    protected abstract void release();

    @Override
    public final void close() {
        lifetime.close();
    }

    /** Whether the backend was closed. */
    public final boolean isClosed() {
        return !lifetime.isOpen();
    }

    // ---- the ops, leased: the implementations below may assume their arguments stay alive ----

    @Override
    public final Tensor allocate(DType dtype, long... shape) {
        try (Leases l = enter()) {
            if (dtype == null) {
                throw Check.fail("dtype", "an element type", "null");
            }
            return newTensor(dtype, shape);
        }
    }

    @Override
    public final Tensor upload(HostTensor src) {
        try (Leases l = enter().hold("src", src)) {
            Check.alive("src", src);
            return copyIn(src);
        }
    }

    @Override
    public final void download(Tensor src, HostTensor dst) {
        try (Leases l = enter().hold("src", src).hold("dst", dst)) {
            Check.alive("src", src);
            Check.output("dst", dst);
            copyOut(src, dst);
        }
    }

    @Override
    public final void logProbs(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                               Tensor lseParts) {
        try (Leases l = enter().hold("logits", logits).hold("targets", targets).hold("logp", logp).hold("lse", lse)
                .hold("entropy", entropy).hold("lseParts", lseParts)) {
            runLogProbs(config, logits, targets, logp, lse, entropy, lseParts);
        }
    }

    @Override
    public final void logProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                       Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        try (Leases l = enter().hold("logits", logits).hold("targets", targets).hold("lseParts", lseParts)
                .hold("entropy", entropy).hold("gradLogp", gradLogp).hold("gradEntropy", gradEntropy)
                .hold("gradLogits", gradLogits)) {
            runLogProbsBackward(config, logits, targets, lseParts, entropy, gradLogp, gradEntropy, gradLogits);
        }
    }

    @Override
    public final void groupAdvantages(GroupAdvantages.Config config, Tensor rewards, Tensor weights, GroupLayout groups,
                                      Tensor advantages) {
        try (Leases l = enter().hold("rewards", rewards).hold("weights", weights).hold("groups", groups)
                .hold("advantages", advantages)) {
            runGroupAdvantages(config, rewards, weights, groups, advantages);
        }
    }

    @Override
    public final void sequenceToTokens(Tensor perSequence, Tensor mask, Tensor perToken) {
        try (Leases l = enter().hold("perSequence", perSequence).hold("mask", mask).hold("perToken", perToken)) {
            requireMask("mask", mask);
            runSequenceToTokens(perSequence, mask, perToken);
        }
    }

    @Override
    public final void gae(Gae.Config config, Tensor rewards, Tensor values, Tensor mask, Tensor advantages, Tensor returns) {
        try (Leases l = enter().hold("rewards", rewards).hold("values", values).hold("mask", mask)
                .hold("advantages", advantages).hold("returns", returns)) {
            requireMask("mask", mask);
            runGae(config, rewards, values, mask, advantages, returns);
        }
    }

    @Override
    public final void discountedReturns(float gamma, Tensor rewards, Tensor mask, Tensor returns) {
        try (Leases l = enter().hold("rewards", rewards).hold("mask", mask).hold("returns", returns)) {
            requireMask("mask", mask);
            runDiscountedReturns(gamma, rewards, mask, returns);
        }
    }

    @Override
    public final void optimalTokenBaseline(OptimalTokenBaseline.Config config, OptimalTokenBaseline.Inputs in, Tensor advantages,
                                           Tensor returns) {
        if (in == null) {
            throw Check.fail("inputs", "not null", "null");
        }
        try (Leases l = enter().hold("tokenRewards", in.tokenRewards()).hold("mask", in.mask()).hold("oldLogp", in.oldLogp())
                .hold("sumPiSquared", in.sumPiSquared()).hold("isWeights", in.isWeights()).hold("groups", in.groups())
                .hold("advantages", advantages).hold("returns", returns)) {
            requireMask("mask", in.mask());
            runOptimalTokenBaseline(config, in, advantages, returns);
        }
    }

    @Override
    public final void maskedWhiten(MaskedWhiten.Config config, Tensor x, Tensor mask, Tensor out) {
        try (Leases l = enter().hold("x", x).hold("mask", mask).hold("out", out)) {
            requireMask("mask", mask);
            runMaskedWhiten(config, x, mask, out);
        }
    }

    @Override
    public final void policyLoss(PolicyLoss.Config config, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy,
                                 Tensor stats) {
        try (Leases l = enter().hold("gradLogp", gradLogp).hold("gradEntropy", gradEntropy).hold("stats", stats)) {
            if (in != null) {
                l.hold("logp", in.logp()).hold("oldLogp", in.oldLogp()).hold("advantages", in.advantages())
                        .hold("mask", in.mask()).hold("sequences", in.sequences()).hold("refLogp", in.refLogp())
                        .hold("entropy", in.entropy()).hold("rolloutLogp", in.rolloutLogp());
            }
            requireMask("mask", in == null ? null : in.mask());
            runPolicyLoss(resolveSelection(config, in, gradLogp, gradEntropy, stats), in, gradLogp, gradEntropy, stats);
        }
    }

    /**
     * The loss with the batch statistics of its token selections found on these inputs where it
     * leaves them NaN (PolicyLossSelection, on the host: device inputs are downloaded for it);
     * the arguments are checked first, so that bad ones are refused by name.
     */
    public PolicyLoss.Config resolveSelection(PolicyLoss.Config config, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy,
                                              Tensor stats) {
        if (config == null || in == null || !config.selectsOnThisBatch()) {
            return config;
        }
        io.rlkernels.ops.internal.PolicyLossChecks.check(config, in, gradLogp, gradEntropy, stats);
        List<HostTensor> copies = new ArrayList<>();
        try {
            PolicyLoss.Inputs host = new PolicyLoss.Inputs(onHost(in.logp(), copies), onHost(in.oldLogp(), copies),
                    onHost(in.advantages(), copies), onHost(in.mask(), copies), in.sequences(), null, onHost(in.entropy(), copies));
            return io.rlkernels.ops.PolicyLossSelection.resolve(config, host);
        } finally {
            copies.forEach(HostTensor::close);
        }
    }

    private HostTensor onHost(Tensor t, List<HostTensor> copies) {
        if (t == null || t instanceof HostTensor) {
            return (HostTensor) t;
        }
        HostTensor h = HostTensor.allocate(t.dtype(), t.shape());
        copies.add(h);
        download(t, h);
        return h;
    }

    @Override
    public final void linearLogProbs(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets, Tensor logp,
                                     Tensor lse, Tensor entropy, Tensor lseParts) {
        try (Leases l = enter().hold("hidden", hidden).hold("weight", weight).hold("targets", targets).hold("logp", logp)
                .hold("lse", lse).hold("entropy", entropy).hold("lseParts", lseParts)) {
            runLinearLogProbs(config, hidden, weight, targets, logp, lse, entropy, lseParts);
        }
    }

    @Override
    public final void linearLogProbsBackward(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets,
                                             Tensor lseParts, Tensor entropy, Tensor gradLogp, Tensor gradEntropy,
                                             Tensor gradHidden, Tensor gradWeight) {
        try (Leases l = enter().hold("hidden", hidden).hold("weight", weight).hold("targets", targets).hold("lseParts", lseParts)
                .hold("entropy", entropy).hold("gradLogp", gradLogp).hold("gradEntropy", gradEntropy)
                .hold("gradHidden", gradHidden).hold("gradWeight", gradWeight)) {
            runLinearLogProbsBackward(config, hidden, weight, targets, lseParts, entropy, gradLogp, gradEntropy, gradHidden,
                    gradWeight);
        }
    }

    @Override
    public final PolicyLoss.Stats linearPolicyLoss(LinearLogProbs.Config config, PolicyLoss.Config loss,
                                                   LinearLogProbs.LossInputs in, Tensor logp, Tensor gradHidden, Tensor gradWeight) {
        try (Leases l = enter().hold("logp", logp).hold("gradHidden", gradHidden).hold("gradWeight", gradWeight)) {
            if (in != null) {
                l.hold("hidden", in.hidden()).hold("weight", in.weight()).hold("targets", in.targets())
                        .hold("oldLogp", in.oldLogp()).hold("advantages", in.advantages()).hold("mask", in.mask())
                        .hold("sequences", in.sequences()).hold("refLogp", in.refLogp());
            }
            requireMask("mask", in == null ? null : in.mask());
            return runLinearPolicyLoss(config, loss, in, logp, gradHidden, gradWeight);
        }
    }

    @Override
    public final long workspacePeakBytes() {
        return workspacePeak.get();
    }

    @Override
    public final void resetWorkspacePeak() {
        workspacePeak.set(workspaceNow.get());
    }

    /** Counts workspace bytes taken (positive) or given back (negative) by an op of this backend. */
    protected final void accountWorkspace(long delta) {
        long now = workspaceNow.addAndGet(delta);
        workspacePeak.accumulateAndGet(now, Math::max);
    }

    /** A tensor of this backend an op uses for its own work, counted while it lives ({@link #workspacePeakBytes}). */
    final Workspace workspace(DType dtype, long... shape) {
        Tensor t = newTensor(dtype, shape);
        accountWorkspace(t.byteSize());
        return new Workspace(this, t);
    }

    /** An op's own tensor: closing it frees it and takes it off the count. */
    record Workspace(BackendBase owner, Tensor tensor) implements AutoCloseable {
        @Override
        public void close() {
            long bytes = tensor.byteSize();
            tensor.close();
            owner.accountWorkspace(-bytes);
        }
    }

    /** The library's implementation behind a {@link Backend}; refuses any other implementation by name. */
    public static BackendBase of(String arg, Backend backend) {
        if (backend instanceof BackendBase b) {
            return b;
        }
        throw Check.fail(arg, "a backend of this library (Backends.open)", backend == null ? "null" : backend.getClass().getName());
    }

    /**
     * out[i] = mask[i] ? targets[i] : {@link Bgpo#UNMASKED} (same integer dtype as targets; mask u8
     * or f32). Every target, masked or not, must be a token id in [0, vocab).
     */
    public final void maskRows(Tensor targets, Tensor mask, long vocab, Tensor out) {
        try (Leases l = enter().hold("targets", targets).hold("mask", mask).hold("out", out)) {
            requireMask("mask", mask);
            runMaskRows(targets, mask, vocab, out);
        }
    }

    /**
     * BGPO's per-sequence step of one sample: from the masked rows' logp [R], each sequence's value
     * l = w * sum logp (into values [S]), its bound f and the upstream gradient dL/dlogp of its
     * masked rows (into upstream [R], 0 elsewhere); the loss and statistics are added into state.
     */
    public final void bgpoCoefficients(Bgpo.Config config, Tensor logp, SequenceLayout rows, Tensor mask, Tensor weights,
                                       Tensor oldValues, Tensor advantages, Tensor values, Tensor upstream, Tensor state) {
        try (Leases l = enter().hold("logp", logp).hold("rows", rows).hold("mask", mask).hold("weights", weights)
                .hold("oldValues", oldValues).hold("advantages", advantages).hold("values", values)
                .hold("upstream", upstream).hold("state", state)) {
            requireMask("mask", mask);
            runBgpoCoefficients(config, logp, rows, mask, weights, oldValues, advantages, values, upstream, state);
        }
    }

    /**
     * One BGPO Monte Carlo sample, fused: log-probs of the masked rows, the sequences' values and
     * bound coefficients, and the logits gradient of this sample (into gradLogits, which may be
     * the logits themselves). Adds the loss and statistics into state (f64 [Bgpo.STATS_LENGTH]).
     */
    public final void bgpoStep(Bgpo.Config config, Bgpo.Sample in, BgpoWorkspace ws, Tensor gradLogits, Tensor state) {
        try (Leases l = enter().hold("gradLogits", gradLogits).hold("state", state)) {
            if (in != null) {
                l.hold("logits", in.logits()).hold("targets", in.targets()).hold("rows", in.rows()).hold("mask", in.mask())
                        .hold("weights", in.weights()).hold("oldValues", in.oldValues()).hold("advantages", in.advantages());
            }
            if (ws != null) {
                l.hold("workspace", ws.rowTargets()).hold("workspace", ws.logp()).hold("workspace", ws.lseParts())
                        .hold("workspace", ws.upstream()).hold("workspace", ws.values());
            }
            requireMask("mask", in == null ? null : in.mask());
            runBgpoStep(config, in, ws, gradLogits, state);
        }
    }

    /**
     * One BGPO Monte Carlo sample through a linear head, its logits never stored: the masked rows'
     * log-probs from hidden [R, d] and weight [V, d] (chunks of rows, as {@link LinearLogProbs}),
     * the sequences' values and bound coefficients (into the workspace and state, as
     * {@link #bgpoStep}), then the backward over recomputed chunks: gradHidden [R, d] written,
     * gradWeight [V, d] accumulated. The log-probs options are BGPO's; {@code linear} gives the workspace.
     */
    public final void bgpoStepLinear(Bgpo.Config config, LinearLogProbs.Config linear, Tensor hidden, Tensor weight,
                                     Tensor targets, SequenceLayout rows, Tensor mask, Tensor weights, Tensor oldValues,
                                     Tensor advantages, BgpoWorkspace ws, Tensor gradHidden, Tensor gradWeight, Tensor state) {
        try (Leases l = enter().hold("hidden", hidden).hold("weight", weight).hold("targets", targets).hold("rows", rows)
                .hold("mask", mask).hold("weights", weights).hold("oldValues", oldValues).hold("advantages", advantages)
                .hold("gradHidden", gradHidden).hold("gradWeight", gradWeight).hold("state", state)) {
            if (ws == null || config == null || linear == null) {
                throw Check.fail(ws == null ? "workspace" : config == null ? "config" : "linear",
                        ws == null ? "a BgpoWorkspace" : config == null ? "a Bgpo.Config" : "a LinearLogProbs.Config", "null");
            }
            l.hold("workspace", ws.rowTargets()).hold("workspace", ws.logp()).hold("workspace", ws.lseParts())
                    .hold("workspace", ws.upstream()).hold("workspace", ws.values());
            Check.alive("weight", weight);
            Check.rank("weight", weight, 2);
            LinearLogProbs.Config lc = linear.withLogProbs(Bgpo.logProbsConfig(config));
            requireMask("mask", mask);
            runMaskRows(targets, mask, weight.dim(0), ws.rowTargets());
            runLinearLogProbs(lc, hidden, weight, ws.rowTargets(), ws.logp(), null, null, ws.lseParts());
            runBgpoCoefficients(config, ws.logp(), rows, mask, weights, oldValues, advantages, ws.values(), ws.upstream(), state);
            runLinearLogProbsBackward(lc, hidden, weight, ws.rowTargets(), ws.lseParts(), null, ws.upstream(), null, gradHidden,
                    gradWeight);
        }
    }

    @Override
    public final void matmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        try (Leases l = enter().hold("a", a).hold("b", b).hold("c", c)) {
            runMatmul(transA, transB, alpha, a, b, beta, c);
        }
    }

    // ---- what a backend implements ----

    /** A new tensor of this backend (dtype checked non-null; the shape is the tensor's to check). */
    protected abstract Tensor newTensor(DType dtype, long... shape);

    /** A copy of a live host tensor where this backend computes. */
    protected Tensor copyIn(HostTensor src) {
        Tensor t = newTensor(src.dtype(), src.shape());
        src.copyTo((HostTensor) t);
        return t;
    }

    /** Copies a tensor of this backend into a live, writable host tensor; waits for it. */
    protected void copyOut(Tensor src, HostTensor dst) {
        if (!(src instanceof HostTensor h)) {
            throw Check.fail("src", "a host tensor", src.describe());
        }
        h.copyTo(dst);
    }

    /** The backend's {@link #description()}: what it is and what it runs on. */
    @Override
    public String toString() {
        return description();
    }

    /**
     * A mask holds 0 or 1 (f32: 0, -0 or 1; u8: 0 or 1): 0.5 is refused naming the element, not
     * read as "kept" — weights belong in the op's weight inputs. Host masks are scanned here; a
     * device backend checks its own ({@link #requireDeviceMask}). Other dtypes are left to the op's
     * checks, which name them.
     */
    protected final void requireMask(String arg, Tensor mask) {
        if (mask == null || !mask.isAlive() || (mask.dtype() != DType.F32 && mask.dtype() != DType.U8)) {
            return;
        }
        if (mask instanceof HostTensor h) {
            Check.binaryMask(arg, h);
        } else {
            requireDeviceMask(arg, mask);
        }
    }

    /** A device mask's values (see {@link #requireMask}); nothing here: host backends hold no device tensors. */
    protected void requireDeviceMask(String arg, Tensor mask) {}

    protected abstract void runLogProbs(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse,
                                        Tensor entropy, Tensor lseParts);

    protected abstract void runLogProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts,
                                                Tensor entropy, Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits);

    protected abstract void runGroupAdvantages(GroupAdvantages.Config config, Tensor rewards, Tensor weights, GroupLayout groups,
                                               Tensor advantages);

    protected abstract void runSequenceToTokens(Tensor perSequence, Tensor mask, Tensor perToken);

    protected abstract void runGae(Gae.Config config, Tensor rewards, Tensor values, Tensor mask, Tensor advantages,
                                   Tensor returns);

    protected abstract void runDiscountedReturns(float gamma, Tensor rewards, Tensor mask, Tensor returns);

    protected abstract void runOptimalTokenBaseline(OptimalTokenBaseline.Config config, OptimalTokenBaseline.Inputs in,
                                                    Tensor advantages, Tensor returns);

    protected abstract void runMaskedWhiten(MaskedWhiten.Config config, Tensor x, Tensor mask, Tensor out);

    protected abstract void runPolicyLoss(PolicyLoss.Config config, PolicyLoss.Inputs in, Tensor gradLogp,
                                          Tensor gradEntropy, Tensor stats);

    protected abstract void runMaskRows(Tensor targets, Tensor mask, long vocab, Tensor out);

    protected abstract void runBgpoCoefficients(Bgpo.Config config, Tensor logp, SequenceLayout rows, Tensor mask,
                                                Tensor weights, Tensor oldValues, Tensor advantages, Tensor values,
                                                Tensor upstream, Tensor state);

    /**
     * One BGPO sample from the primitives: the masked rows' targets (every target checked in
     * [0, V)), their log-probs, the sequences' coefficients, and the log-probs backward.
     */
    protected void runBgpoStep(Bgpo.Config config, Bgpo.Sample in, BgpoWorkspace ws, Tensor gradLogits, Tensor state) {
        if (in == null || ws == null) {
            throw Check.fail(in == null ? "sample" : "workspace", "a " + (in == null ? "Bgpo.Sample" : "BgpoWorkspace"), "null");
        }
        BgpoChecks.checkStep(config, in.logits(), in.targets(), in.rows(), in.mask(), in.weights(), in.oldValues(), in.advantages(),
                gradLogits, ws.values(), state);
        LogProbs.Config lp = Bgpo.logProbsConfig(config);
        runMaskRows(in.targets(), in.mask(), in.logits().dim(1), ws.rowTargets());
        runLogProbs(lp, in.logits(), ws.rowTargets(), ws.logp(), null, null, ws.lseParts());
        runBgpoCoefficients(config, ws.logp(), in.rows(), in.mask(), in.weights(), in.oldValues(), in.advantages(), ws.values(),
                ws.upstream(), state);
        runLogProbsBackward(lp, in.logits(), ws.rowTargets(), ws.lseParts(), null, ws.upstream(), null, gradLogits);
    }

    protected abstract void runMatmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c);

    /** Log-probs from hidden states: chunks of rows through this backend's matrix product and log-probs kernels. */
    protected void runLinearLogProbs(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets, Tensor logp,
                                     Tensor lse, Tensor entropy, Tensor lseParts) {
        linearHead.forward(config, hidden, weight, targets, logp, lse, entropy, lseParts);
    }

    protected void runLinearLogProbsBackward(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets,
                                             Tensor lseParts, Tensor entropy, Tensor gradLogp, Tensor gradEntropy,
                                             Tensor gradHidden, Tensor gradWeight) {
        linearHead.backward(config, hidden, weight, targets, lseParts, entropy, gradLogp, gradEntropy, gradHidden, gradWeight);
    }

    protected PolicyLoss.Stats runLinearPolicyLoss(LinearLogProbs.Config config, PolicyLoss.Config loss,
                                                   LinearLogProbs.LossInputs in, Tensor logp, Tensor gradHidden, Tensor gradWeight) {
        return linearHead.loss(config, loss, in, logp, gradHidden, gradWeight);
    }

    // ---- leases ----

    /** Leases the backend itself: a closed backend refuses the op. */
    private Leases enter() {
        Lease self = lifetime.tryLease();
        if (self == null) {
            throw new IllegalStateException("backend: expected an open backend, found " + description() + " (closed)");
        }
        Leases l = new Leases();
        l.held.add(self);
        return l;
    }

    /** The leases of one call; a closed argument is refused by name, releasing what was taken. */
    private static final class Leases implements AutoCloseable {
        private final List<Lease> held = new ArrayList<>(12);

        Leases hold(String arg, Object resource) {
            if (resource == null) {
                return this; // the op's own checks name a missing argument
            }
            try {
                held.add(switch (resource) {
                    case Tensor t -> t.lease();
                    case Layout layout -> layout.lease();
                    default -> throw new IllegalStateException("cannot lease " + resource.getClass().getName());
                });
            } catch (IllegalStateException closed) {
                close();
                throw Check.fail(arg, "a live " + (resource instanceof Tensor ? "tensor" : resource.getClass().getSimpleName()),
                        "a closed " + (resource instanceof Tensor t ? "tensor " + t.describe() : resource));
            }
            return this;
        }

        @Override
        public void close() {
            for (int i = held.size() - 1; i >= 0; i--) {
                held.get(i).close();
            }
            held.clear();
        }
    }
}
