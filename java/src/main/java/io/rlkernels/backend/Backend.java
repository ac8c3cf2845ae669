package io.rlkernels.backend;

import io.rlkernels.ops.internal.LogProbsChecks;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.OptimalTokenBaseline;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * One implementation of every op. All backends compute the same functions (ARCHITECTURE §5) to the
 * tolerances of ARCHITECTURE §8. Each op has an allocation-free form writing into tensors the caller
 * provides, and a convenience form that allocates its outputs with {@link #allocate}.
 * Arguments are checked before any kernel runs; bad ones throw {@link IllegalArgumentException}
 * naming the argument, the expected and the found value. Read-only memory (a mapped file) is
 * never written: it is refused as an output. Every implementation extends the internal {@code BackendBase},
 * which holds each argument for the duration of the call: a tensor closed from another thread
 * meanwhile is freed when the call ends, and a closed backend refuses further calls.
 */
public interface Backend extends AutoCloseable {

    /** Which backend this is (reference, native, cuda, emulated). */
    BackendKind kind();

    /** One line: the backend and what it runs on ("native: avx512, 2 threads"). */
    String description();

    /** A new tensor where this backend computes fastest (host memory, or device memory for cuda). */
    Tensor allocate(DType dtype, long... shape);

    /** A copy of {@code src} where this backend computes: new host memory, or device memory. */
    Tensor upload(HostTensor src);

    /** Copies {@code src}, a tensor of this backend, into {@code dst} (same dtype and size, writable); waits for it. */
    void download(Tensor src, HostTensor dst);

    /**
     * A host copy of {@code src}, a tensor of this backend (an output of an allocating form, say),
     * of its dtype and shape, owned by the caller: the typed way to read results whatever the backend.
     */
    default HostTensor toHost(Tensor src) {
        Check.alive("src", src);
        HostTensor h = HostTensor.allocate(src.dtype(), src.shape());
        try {
            download(src, h);
        } catch (RuntimeException e) {
            h.close();
            throw e;
        }
        return h;
    }

    /**
     * Whether inputs that live on the device are checked like host ones (target ids in range,
     * rewards finite, upstream gradients bounded) before the kernels run: on by default. The
     * checks copy a few bytes back and wait, so a call on device tensors is not asynchronous; a
     * training loop that checked its data once may turn them off (the kernels still never read out
     * of bounds: a bad target id gives NaN for its row). Host inputs are always checked, and a
     * backend without device memory has nothing to turn off. Returns this backend.
     */
    default Backend checkDeviceInputs(boolean check) {
        return this;
    }

    /** Waits for every kernel launched on device tensors so far (nothing to wait for on a host backend). */
    default void synchronize() {}

    /**
     * Token log-probs forward: writes logp and, when not null, lse, the entropy and lseParts (the
     * row's max m and ln s, [N, 2] f32: what the backward takes). See {@link LogProbs}.
     */
    void logProbs(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                  Tensor lseParts);

    /** The forward without lseParts: logp and lse, and the entropy when it is not null. */
    default void logProbs(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy) {
        logProbs(config, logits, targets, logp, lse, entropy, null);
    }

    /**
     * Token log-probs backward: writes dL/dlogits into {@code gradLogits} (f32, or the logits'
     * own buffer for an in-place backward) from the forward's {@code lseParts}. See
     * {@code LogProbsChecks.checkBackward}.
     */
    void logProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                          Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits);

    /** Allocating forward (lseParts included); {@code withEntropy} chooses whether the entropy is computed. */
    default LogProbs.Result logProbs(LogProbs.Config config, Tensor logits, Tensor targets, boolean withEntropy) {
        LogProbs.Dims d = LogProbsChecks.checkInputs(logits, targets);
        Tensor logp = allocate(DType.F32, d.rows());
        Tensor lse = allocate(DType.F32, d.rows());
        Tensor entropy = withEntropy ? allocate(DType.F32, d.rows()) : null;
        Tensor parts = allocate(DType.F32, d.rows(), 2);
        LogProbs.Result result = new LogProbs.Result(logp, lse, entropy, parts);
        try {
            logProbs(config, logits, targets, logp, lse, entropy, parts);
        } catch (RuntimeException e) {
            result.close();
            throw e;
        }
        return result;
    }

    /** Allocating backward: a new f32 gradient of the logits' shape. */
    default Tensor logProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                    Tensor gradLogp, Tensor gradEntropy) {
        LogProbs.Dims d = LogProbsChecks.checkInputs(logits, targets);
        Tensor grad = allocate(DType.F32, d.rows(), d.vocab());
        try {
            logProbsBackward(config, logits, targets, lseParts, entropy, gradLogp, gradEntropy, grad);
        } catch (RuntimeException e) {
            grad.close();
            throw e;
        }
        return grad;
    }

    /**
     * Group-normalised advantages of rewards [S] f32 into advantages [S] f32; see
     * {@link GroupAdvantages}. Throws {@link IllegalArgumentException} on a non-finite reward.
     */
    default void groupAdvantages(GroupAdvantages.Config config, Tensor rewards, GroupLayout groups, Tensor advantages) {
        groupAdvantages(config, rewards, null, groups, advantages);
    }

    /**
     * The same with per-sequence weights [S] f32 (opo's response lengths, finite and &gt;= 0; null
     * for the other modes, which do not read them).
     */
    void groupAdvantages(GroupAdvantages.Config config, Tensor rewards, Tensor weights, GroupLayout groups, Tensor advantages);

    /** The same, grouping by ids [S] (i32 or i64, non-negative); builds the layout for this call. */
    default void groupAdvantages(GroupAdvantages.Config config, Tensor rewards, Tensor groupIds, Tensor advantages) {
        Check.alive("groupIds", groupIds);
        HostTensor ids = groupIds instanceof HostTensor h ? h : HostTensor.allocate(groupIds.dtype(), groupIds.shape());
        try {
            if (ids != groupIds) {
                download(groupIds, ids);
            }
            try (GroupLayout layout = GroupLayout.of(ids)) {
                groupAdvantages(config, rewards, layout, advantages);
            }
        } finally {
            if (ids != groupIds) {
                ids.close();
            }
        }
    }

    /** perToken[s, t] = perSequence[s] where mask[s, t] is set, else 0: [S] f32 to [S, T] f32. */
    void sequenceToTokens(Tensor perSequence, Tensor mask, Tensor perToken);

    /** GAE over [B, T] token rows into advantages and returns; see {@link Gae}. */
    void gae(Gae.Config config, Tensor rewards, Tensor values, Tensor mask, Tensor advantages, Tensor returns);

    /** Discounted returns-to-go over [B, T] token rows; see {@link Gae}. */
    void discountedReturns(float gamma, Tensor rewards, Tensor mask, Tensor returns);

    /**
     * verl's optimal token baseline over [S, T] token rows into advantages and returns [S, T] f32;
     * see {@link OptimalTokenBaseline}.
     */
    void optimalTokenBaseline(OptimalTokenBaseline.Config config, OptimalTokenBaseline.Inputs inputs, Tensor advantages,
                              Tensor returns);

    /** Whitening under a mask; {@code out} may be {@code x} itself. See {@link MaskedWhiten}. */
    void maskedWhiten(MaskedWhiten.Config config, Tensor x, Tensor mask, Tensor out);

    /**
     * Clipped importance-ratio policy loss, fused forward and dL/dlogp: writes gradLogp [N] f32,
     * gradEntropy [N] f32 (when not null) and the statistics into stats f64 [STATS_LENGTH]
     * (loss first). See {@link PolicyLoss}.
     */
    void policyLoss(PolicyLoss.Config config, PolicyLoss.Inputs inputs, Tensor gradLogp, Tensor gradEntropy, Tensor stats);

    /** The same, returning the statistics (on a device backend this waits for the kernels). */
    default PolicyLoss.Stats policyLoss(PolicyLoss.Config config, PolicyLoss.Inputs inputs, Tensor gradLogp, Tensor gradEntropy) {
        try (Tensor stats = allocate(DType.F64, PolicyLoss.STATS_LENGTH);
             HostTensor host = HostTensor.allocate(DType.F64, PolicyLoss.STATS_LENGTH)) {
            policyLoss(config, inputs, gradLogp, gradEntropy, stats);
            download(stats, host);
            return PolicyLoss.Stats.of(host);
        }
    }

    /**
     * C = alpha op(A) op(B) + beta C, row-major, op(X) = X or its transpose; A and B f32, bf16 or
     * f16 (multiplied as their exact f32 values), C f32, accumulation f32 (f64 in the reference).
     * The native backend calls OpenBLAS when it is on the class path, the cuda backend its own
     * kernel. A call repeated on the same shapes with the same thread count gives bitwise the same
     * C; across thread counts, or for a row computed in a different batch, OpenBLAS may round
     * differently (its blocking depends on both: measured, up to 5 % of elements differ by an ulp),
     * where the own kernel and the reference sum each element over k in order. With beta = 0, C is
     * only written.
     */
    void matmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c);

    /**
     * Token log-probs from hidden states [N, d] and the LM head weight [V, d], the logits never
     * stored whole: writes logp [N] and, when not null, lse, the entropy [N] and lseParts [N, 2]
     * (the backward's input). See {@link LinearLogProbs}.
     */
    void linearLogProbs(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets, Tensor logp, Tensor lse,
                        Tensor entropy, Tensor lseParts);

    /**
     * Its backward from the upstream gradients of logp and of the entropy (either may be null):
     * writes gradHidden [N, d] and adds into gradWeight [V, d] (either may be null: not computed),
     * f32. The logits are recomputed a chunk at a time. See {@link LinearLogProbs}.
     */
    void linearLogProbsBackward(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets, Tensor lseParts,
                                Tensor entropy, Tensor gradLogp, Tensor gradEntropy, Tensor gradHidden, Tensor gradWeight);

    /**
     * The policy loss straight from hidden states, fused: log-probs (and the entropy when the
     * loss has an entropy bonus), the loss of {@link #policyLoss} with its statistics, and its
     * gradient through the LM head — gradHidden written, gradWeight accumulated (either may be
     * null) — in one call, no [N, V] tensor and no per-token round trip. Writes the log-probs into
     * {@code logp} when it is not null. Exact under micro-batch and data-parallel splits as the
     * policy-loss op is (pass the global denominator). See {@link LinearLogProbs}.
     */
    PolicyLoss.Stats linearPolicyLoss(LinearLogProbs.Config config, PolicyLoss.Config loss, LinearLogProbs.LossInputs in,
                                      Tensor logp, Tensor gradHidden, Tensor gradWeight);

    /** Allocating forward of {@link #linearLogProbs} (lseParts included). */
    default LogProbs.Result linearLogProbs(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets,
                                           boolean withEntropy) {
        io.rlkernels.ops.internal.LinearLogProbsChecks.checkInputs(config, hidden, weight, targets);
        long n = hidden.dim(0);
        Tensor logp = allocate(DType.F32, n);
        Tensor lse = allocate(DType.F32, n);
        Tensor entropy = withEntropy ? allocate(DType.F32, n) : null;
        Tensor parts = allocate(DType.F32, n, 2);
        LogProbs.Result result = new LogProbs.Result(logp, lse, entropy, parts);
        try {
            linearLogProbs(config, hidden, weight, targets, logp, lse, entropy, parts);
        } catch (RuntimeException e) {
            result.close();
            throw e;
        }
        return result;
    }

    /**
     * The most memory this backend's ops took for their own work (chunks, scratch, widened BLAS
     * tiles) at once since it opened or since {@link #resetWorkspacePeak}: the library's own
     * accounting, in bytes, of what is allocated beyond the caller's tensors.
     */
    long workspacePeakBytes();

    /** Starts a new peak for {@link #workspacePeakBytes} from what is in use now. */
    void resetWorkspacePeak();

    /**
     * Releases what the backend holds (device context references, staging buffers), when no call is
     * running; later calls are refused. Idempotent.
     */
    @Override
    void close();
}
