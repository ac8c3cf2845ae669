package io.rlkernels.backend.cuda;

import io.rlkernels.ops.internal.PolicyLossChecks;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.Tensor;

/**
 * The policy-loss kernels (rlk_policy_prepass, rlk_policy_loss, rlk_policy_finish; contract
 * {@link io.rlkernels.ops.PolicyLoss}): arguments (the parameter array on the device), the segments
 * and their partial sums.
 */
final class PolicyLossLaunch {
    private final CudaBackend backend;
    private final KernelLauncher launcher;
    private final DeviceChecks checks;

    PolicyLossLaunch(CudaBackend backend, KernelLauncher launcher, DeviceChecks checks) {
        this.backend = backend;
        this.launcher = launcher;
        this.checks = checks;
    }

    /** Tokens per policy-loss segment when there are no sequences: RLK_PL_CHUNK in rlk_contract.h. */
    static final int POLICY_CHUNK = 4096;
    /** Threads of rlk_policy_loss: its __launch_bounds__ (RLK_PL_THREADS). */
    static final int THREADS = 256;
    /** Doubles in a policy-loss block's partial: the stats slots before the values used (RLK_PLS_FIRST_SET). */
    static final int POLICY_PARTIAL = PolicyLoss.STATS_FIRST_SET;

    /** Blocks of the policy loss: one per segment up to 4,096 (each writes a partial of POLICY_PARTIAL doubles). */
    static int policyBlocks(long segments) {
        return CudaBackend.grid(segments, 4096);
    }

    void policyLoss(PolicyLoss.Config c, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy, Tensor stats) {
        PolicyLossChecks.check(c, in, gradLogp, gradEntropy, stats);
        SequenceLayout seqs = in.sequences(); // when given, also for the token modes: it counts the sequences
        long n = in.tokens();
        try (Staging s = new Staging(launcher, backend)) {
            long logp = checks.finiteInput(s, "logp", in.logp());
            long old = checks.finiteInput(s, "oldLogp", in.oldLogp());
            long adv = checks.finiteInput(s, "advantages", in.advantages());
            long ref = in.refLogp() == null ? 0 : checks.finiteInput(s, "refLogp", in.refLogp());
            long entropy = in.entropy() == null ? 0 : checks.finiteInput(s, "entropy", in.entropy());
            long rollout = in.rolloutLogp() == null ? 0 : checks.finiteInput(s, "rolloutLogp", in.rolloutLogp());
            long mask = s.in("mask", in.mask());
            long offsets = seqs == null ? 0 : seqs.deviceCopy(launcher, () -> backend.copyIn(seqs.offsets())).address();
            long sequences = seqs == null ? 0 : seqs.sequences();
            long segments = seqs != null ? sequences : (n + POLICY_CHUNK - 1) / POLICY_CHUNK;
            long grad = s.out("gradLogp", gradLogp);
            long gradH = gradEntropy == null ? 0 : s.out("gradEntropy", gradEntropy);
            long out = s.out("stats", stats);
            int u8 = in.mask().dtype() == DType.U8 ? 1 : 0;
            double[] values = PolicyLossChecks.params(c, seqs);
            long params = s.values(values);
            // what the batch implies (denominator, the weights' mean), on the device, where the caller left it open
            boolean normalizes = c.appliesWeights() && c.rollout().batchNormalize() && Double.isNaN(c.rollout().normalizer());
            long implied = 0;
            if (Double.isNaN(c.denominator()) || normalizes) {
                implied = s.scratch(16);
                launcher.launch("rlk_policy_prepass", new LaunchShape(1, CudaBackend.THREADS, 0), new KernelArgs().ptr(logp).ptr(old)
                        .ptr(rollout).ptr(adv).ptr(mask).i32(u8).ptr(offsets).i64(sequences).i64(n).ptr(params).ptr(implied));
            }
            int blocks = policyBlocks(segments);
            long partial = s.scratch(8L * POLICY_PARTIAL * blocks);
            launcher.launch("rlk_policy_loss", new LaunchShape(blocks, THREADS, 0), new KernelArgs().ptr(logp).ptr(old).ptr(adv)
                    .ptr(mask).i32(u8).ptr(ref).ptr(entropy).ptr(rollout).ptr(offsets).i64(sequences).i64(n).ptr(params)
                    .ptr(implied).ptr(grad).ptr(gradH).ptr(partial));
            launcher.launch("rlk_policy_finish", new LaunchShape(1, 32, 0), new KernelArgs().ptr(partial).i32(blocks).ptr(params)
                    .ptr(implied).ptr(out));
            checks.requireRepresentable(s, gradLogp, grad, Float.MAX_VALUE, (i, v) -> PolicyLossChecks.overflow("gradLogp", i, v));
            if (gradEntropy != null) {
                checks.requireRepresentable(s, gradEntropy, gradH, Float.MAX_VALUE, (i, v) -> PolicyLossChecks.overflow("gradEntropy", i, v));
            }
            s.finish();
        }
    }
}
