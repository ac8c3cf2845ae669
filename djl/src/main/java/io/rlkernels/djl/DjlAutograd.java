package io.rlkernels.djl;

import ai.djl.ndarray.NDArray;
import io.rlkernels.backend.Backend;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * The library's log-probs inside DJL's autograd. The forward runs on the library's backend over
 * views of DJL's arrays (no copy); the backward gives DJL the surrogate scalar
 * {@code sum(logits * stopGradient(dlogits))}, whose gradient with respect to everything upstream
 * of the logits is what the library's dlogits says: {@code GradientCollector.backward(surrogate)}
 * then propagates it through the user's model. dlogits comes from the library's backward (one pass,
 * no [N, V] temporaries of DJL's), into an f32 NDArray of DJL's own.
 */
public final class DjlAutograd {
    private DjlAutograd() {}

    /** Token log-probs of DJL logits [N, V] (f32 or f16) and targets [N] (i32 or i64) on {@code backend}; entropy too. */
    public static LogProbs.Result logProbs(Backend backend, LogProbs.Config config, NDArray logits, NDArray targets) {
        try (HostTensor z = DjlTensors.input("logits", logits); HostTensor y = DjlTensors.input("targets", targets)) {
            return backend.logProbs(config, z, y, true);
        }
    }

    /**
     * The surrogate whose DJL gradient is the library's: gradLogp = dL/dlogp [N] f32 (and
     * gradEntropy = dL/dentropy, or null) from whatever the loss is (the library's policy loss, for
     * one), through the log-probs' backward into dlogits, then {@code sum(logits * sg(dlogits))}.
     * {@code forward} is {@link #logProbs}' result on the same logits.
     */
    public static NDArray surrogate(Backend backend, LogProbs.Config config, NDArray logits, NDArray targets, LogProbs.Result forward,
                                    Tensor gradLogp, Tensor gradEntropy) {
        NDArray dlogits = logits.getManager().zeros(logits.getShape(), ai.djl.ndarray.types.DataType.FLOAT32);
        try (HostTensor z = DjlTensors.input("logits", logits); HostTensor y = DjlTensors.input("targets", targets);
             HostTensor g = DjlTensors.output("dlogits", dlogits)) {
            backend.logProbsBackward(config, z, y, forward.lseParts(), forward.entropy(), gradLogp, gradEntropy, g);
        } catch (RuntimeException e) {
            dlogits.close();
            throw e;
        }
        return logits.toType(ai.djl.ndarray.types.DataType.FLOAT32, false).mul(dlogits.stopGradient()).sum();
    }

    /** A policy-gradient step's statistics and the surrogate to hand to {@code GradientCollector.backward}. */
    public record Step(PolicyLoss.Stats stats, NDArray surrogate) {}

    /**
     * One policy-gradient step on DJL arrays: the log-probs of the logits [N, V] (f32 or f16) at
     * the targets [N], the policy loss of {@code loss} against the old log-probs, advantages and
     * mask [N] (f32; the mask f32 or u8, 0 or 1) — sequences as given (null: token-level only) —
     * and its gradient through the log-probs into the surrogate. The loss's value and statistics
     * are in {@code stats()}; {@code backward(surrogate())} gives every parameter upstream of the
     * logits dL/dθ.
     */
    public static Step policyLoss(Backend backend, LogProbs.Config config, PolicyLoss.Config loss, NDArray logits, NDArray targets,
                                  NDArray oldLogp, NDArray advantages, NDArray mask, SequenceLayout sequences) {
        long n = logits.getShape().get(0);
        try (LogProbs.Result r = logProbs(backend, config, logits, targets); HostTensor old = DjlTensors.input("oldLogp", oldLogp);
             HostTensor adv = DjlTensors.input("advantages", advantages); HostTensor m = DjlTensors.input("mask", mask);
             HostTensor gradLogp = HostTensor.allocate(DType.F32, n)) {
            PolicyLoss.Stats stats = backend.policyLoss(loss, new PolicyLoss.Inputs(r.logp(), old, adv, m).withSequences(sequences),
                    gradLogp, null);
            return new Step(stats, surrogate(backend, config, logits, targets, r, gradLogp, null));
        }
    }
}
