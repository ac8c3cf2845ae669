package io.rlkernels.backend.nativecpu;

import io.rlkernels.ops.internal.LogProbsChecks;
import static io.rlkernels.backend.nativecpu.NativeCalls.check;
import static io.rlkernels.backend.nativecpu.NativeCalls.host;
import static io.rlkernels.backend.nativecpu.NativeCalls.optional;
import static io.rlkernels.backend.nativecpu.NativeCalls.segment;

import io.rlkernels.backend.nativecpu.internal.NativeLibrary;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The log-probs op on librlkernels (rlk_logprobs_fwd, rlk_logprobs_bwd; contract {@link io.rlkernels.ops.LogProbs}). */
final class LogProbsCalls {
    private final NativeLibrary lib;
    private final NativeCalls calls;

    LogProbsCalls(NativeCalls calls) {
        this.lib = calls.lib();
        this.calls = calls;
    }

    void forward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                               Tensor lseParts) {
        LogProbs.Dims d = LogProbsChecks.checkForward(config, logits, targets, logp, lse, entropy, lseParts);
        HostTensor y = host("targets", targets);
        LogProbsChecks.checkTargets(y, d.vocab(), config.ignoreIndex());
        try (Arena call = Arena.ofConfined()) {
            MemorySegment overflow = call.allocate(ValueLayout.JAVA_LONG);
            int rc = lib.logprobsFwd(segment("logits", logits), logits.dtype().code(), y.segment(), targets.dtype().code(),
                    d.rows(), d.vocab(), config.temperature(), config.ignoreIndex(),
                    segment("logp", logp), optional("lse", lse), optional("entropy", entropy), optional("lseParts", lseParts),
                    overflow);
            check(rc, "rlk_logprobs_fwd");
            long row = overflow.get(ValueLayout.JAVA_LONG, 0);
            if (row >= 0) {
                throw LogProbsChecks.overflow(row, config);
            }
        }
    }

    void backward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                 Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        LogProbs.Dims d = LogProbsChecks.checkBackward(config, logits, targets, lseParts, entropy, gradLogp, gradEntropy, gradLogits);
        HostTensor y = host("targets", targets);
        LogProbsChecks.checkTargets(y, d.vocab(), config.ignoreIndex());
        float[] limits = LogProbsChecks.upstreamLimits(config.temperature(), d.vocab());
        if (gradLogp != null) {
            calls.requireWithin("gradLogp", host("gradLogp", gradLogp), limits[0], LogProbsChecks.upstreamReason(config.temperature()));
        }
        if (gradEntropy != null) {
            calls.requireWithin("gradEntropy", host("gradEntropy", gradEntropy), limits[1], LogProbsChecks.upstreamReason(config.temperature()));
        }
        int rc = lib.logprobsBwd(segment("logits", logits), logits.dtype().code(), y.segment(), targets.dtype().code(),
                d.rows(), d.vocab(), config.temperature(), config.ignoreIndex(),
                segment("lseParts", lseParts),
                gradEntropy == null ? MemorySegment.NULL : segment("entropy", entropy),
                gradLogp == null ? MemorySegment.NULL : segment("gradLogp", gradLogp),
                gradEntropy == null ? MemorySegment.NULL : segment("gradEntropy", gradEntropy),
                segment("gradLogits", gradLogits), gradLogits.dtype().code(), -1L);
        check(rc, "rlk_logprobs_bwd");
    }

    /**
     * The backward on a vocabulary tile, in place: {@code tile} [n, vt] f32 holds columns [col0,
     * col0 + vt) of the rows' logits; lseParts, entropy and the targets (ids of the whole row) are
     * the whole rows'. The caller has checked every argument against the whole rows.
     */
    void backwardTile(LogProbs.Config config, HostTensor tile, HostTensor targets, HostTensor lseParts, HostTensor entropy,
                      HostTensor gradLogp, HostTensor gradEntropy, long col0) {
        int rc = lib.logprobsBwd(tile.segment(), tile.dtype().code(), targets.segment(), targets.dtype().code(), tile.dim(0),
                tile.dim(1), config.temperature(), config.ignoreIndex(), lseParts.segment(),
                gradEntropy == null ? MemorySegment.NULL : entropy.segment(),
                gradLogp == null ? MemorySegment.NULL : gradLogp.segment(),
                gradEntropy == null ? MemorySegment.NULL : gradEntropy.segment(), tile.segment(), tile.dtype().code(), col0);
        check(rc, "rlk_logprobs_bwd");
    }
}
