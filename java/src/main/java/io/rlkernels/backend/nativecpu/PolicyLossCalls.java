package io.rlkernels.backend.nativecpu;

import io.rlkernels.ops.internal.PolicyLossChecks;
import static io.rlkernels.backend.nativecpu.NativeCalls.check;
import static io.rlkernels.backend.nativecpu.NativeCalls.host;
import static io.rlkernels.backend.nativecpu.NativeCalls.optional;
import static io.rlkernels.backend.nativecpu.NativeCalls.segment;

import io.rlkernels.backend.nativecpu.internal.NativeLibrary;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/** The policy loss on librlkernels (rlk_policy_loss; contract {@link io.rlkernels.ops.PolicyLoss}). */
final class PolicyLossCalls {
    private final NativeLibrary lib;
    private final NativeCalls calls;

    PolicyLossCalls(NativeCalls calls) {
        this.lib = calls.lib();
        this.calls = calls;
    }

    void policyLoss(PolicyLoss.Config c, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy, Tensor stats) {
        PolicyLossChecks.check(c, in, gradLogp, gradEntropy, stats);
        calls.requireFinite("logp", host("logp", in.logp()));
        calls.requireFinite("oldLogp", host("oldLogp", in.oldLogp()));
        calls.requireFinite("advantages", host("advantages", in.advantages()));
        if (in.refLogp() != null) {
            calls.requireFinite("refLogp", host("refLogp", in.refLogp()));
        }
        if (in.entropy() != null) {
            calls.requireFinite("entropy", host("entropy", in.entropy()));
        }
        if (in.rolloutLogp() != null) {
            calls.requireFinite("rolloutLogp", host("rolloutLogp", in.rolloutLogp()));
        }
        SequenceLayout seqs = in.sequences(); // when given, also for the token modes: it counts the sequences
        int rc = lib.policyLoss(segment("logp", in.logp()), segment("oldLogp", in.oldLogp()), segment("advantages", in.advantages()),
                segment("mask", in.mask()), in.mask().dtype() == DType.U8, optional("refLogp", in.refLogp()),
                optional("entropy", in.entropy()), optional("rolloutLogp", in.rolloutLogp()),
                seqs == null ? MemorySegment.NULL : seqs.offsets().segment(), seqs == null ? 0 : seqs.sequences(), in.tokens(),
                PolicyLossChecks.params(c, seqs), segment("gradLogp", gradLogp), optional("gradEntropy", gradEntropy),
                segment("stats", stats));
        if (rc == NativeCalls.RLK_OVERFLOW) { // the kernel saw a gradient float32 cannot hold: find and name it
            calls.refuseOverflow(host("gradLogp", gradLogp), (i, v) -> PolicyLossChecks.overflow("gradLogp", i, v));
            if (gradEntropy != null) {
                calls.refuseOverflow(host("gradEntropy", gradEntropy), (i, v) -> PolicyLossChecks.overflow("gradEntropy", i, v));
            }
        }
        check(rc, "rlk_policy_loss");
    }
}
