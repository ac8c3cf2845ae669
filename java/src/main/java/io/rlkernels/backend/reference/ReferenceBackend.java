package io.rlkernels.backend.reference;

import io.rlkernels.backend.internal.BackendBase;
import io.rlkernels.backend.internal.BgpoWorkspace;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.OptimalTokenBaseline;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * Plain Java with f64 accumulation, written to be obviously right: the oracle every other
 * backend is tested against. Single-threaded; host tensors only. Each op is one file beside this
 * one, readable on its own next to its contract in {@code ops}: {@link LogProbsReference},
 * {@code AdvantagesReference}, {@code PolicyLossReference}, {@code BgpoReference},
 * {@code MatmulReference}, {@code LinearLogProbsReference}. This class only dispatches.
 */
public final class ReferenceBackend extends BackendBase {

    @Override
    public BackendKind kind() {
        return BackendKind.REFERENCE;
    }

    @Override
    public String description() {
        return "reference: plain Java, f64 accumulation, 1 thread";
    }

    @Override
    protected Tensor newTensor(DType dtype, long... shape) {
        return HostTensor.allocate(dtype, shape);
    }

    @Override
    protected void runLogProbs(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                               Tensor lseParts) {
        LogProbsReference.forward(config, logits, targets, logp, lse, entropy, lseParts);
    }

    @Override
    protected void runLogProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                       Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        LogProbsReference.backward(config, logits, targets, lseParts, entropy, gradLogp, gradEntropy, gradLogits);
    }

    @Override
    protected void runGroupAdvantages(GroupAdvantages.Config config, Tensor rewards, Tensor weights, GroupLayout groups,
                                      Tensor advantages) {
        AdvantagesReference.groupAdvantages(config, rewards, weights, groups, advantages);
    }

    @Override
    protected void runSequenceToTokens(Tensor perSequence, Tensor mask, Tensor perToken) {
        AdvantagesReference.sequenceToTokens(perSequence, mask, perToken);
    }

    @Override
    protected void runGae(Gae.Config config, Tensor rewards, Tensor values, Tensor mask, Tensor advantages, Tensor returns) {
        AdvantagesReference.gae(config, rewards, values, mask, advantages, returns);
    }

    @Override
    protected void runDiscountedReturns(float gamma, Tensor rewards, Tensor mask, Tensor returns) {
        AdvantagesReference.discountedReturns(gamma, rewards, mask, returns);
    }

    @Override
    protected void runOptimalTokenBaseline(OptimalTokenBaseline.Config config, OptimalTokenBaseline.Inputs in, Tensor advantages,
                                           Tensor returns) {
        AdvantagesReference.optimalTokenBaseline(config, in, advantages, returns);
    }

    @Override
    protected void runMaskedWhiten(MaskedWhiten.Config config, Tensor x, Tensor mask, Tensor out) {
        AdvantagesReference.maskedWhiten(config, x, mask, out);
    }

    @Override
    protected void runPolicyLoss(PolicyLoss.Config config, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy,
                                 Tensor stats) {
        PolicyLossReference.policyLoss(config, in, gradLogp, gradEntropy, stats);
    }

    @Override
    protected void runMaskRows(Tensor targets, Tensor mask, long vocab, Tensor out) {
        BgpoReference.maskRows(targets, mask, vocab, out);
    }

    @Override
    protected void runBgpoCoefficients(Bgpo.Config config, Tensor logp, SequenceLayout rows, Tensor mask, Tensor weights,
                                       Tensor oldValues, Tensor advantages, Tensor values, Tensor upstream, Tensor state) {
        BgpoReference.coefficients(config, logp, rows, mask, weights, oldValues, advantages, values, upstream, state);
    }

    @Override
    protected void runBgpoStep(Bgpo.Config config, Bgpo.Sample in, BgpoWorkspace ws, Tensor gradLogits, Tensor state) {
        BgpoReference.step(config, in, ws, gradLogits, state);
    }

    @Override
    protected void runLinearLogProbs(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets, Tensor logp,
                                     Tensor lse, Tensor entropy, Tensor lseParts) {
        LinearLogProbsReference.forward(config, hidden, weight, targets, logp, lse, entropy, lseParts);
    }

    @Override
    protected void runLinearLogProbsBackward(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets,
                                             Tensor lseParts, Tensor entropy, Tensor gradLogp, Tensor gradEntropy,
                                             Tensor gradHidden, Tensor gradWeight) {
        LinearLogProbsReference.backward(config, hidden, weight, targets, lseParts, entropy, gradLogp, gradEntropy, gradHidden,
                gradWeight);
    }

    @Override
    protected PolicyLoss.Stats runLinearPolicyLoss(LinearLogProbs.Config config, PolicyLoss.Config loss,
                                                   LinearLogProbs.LossInputs in, Tensor logp, Tensor gradHidden, Tensor gradWeight) {
        return LinearLogProbsReference.loss(config, loss, in, logp, gradHidden, gradWeight);
    }

    @Override
    protected void runMatmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        MatmulReference.matmul(transA, transB, alpha, a, b, beta, c);
    }

    @Override
    protected void release() {}
}
