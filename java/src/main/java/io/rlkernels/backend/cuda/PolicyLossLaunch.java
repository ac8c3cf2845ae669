package io.rlkernels.backend.cuda;

import io.rlkernels.ops.internal.PolicyLossChecks;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.Tensor;

/**
 * The policy-loss kernels (rlk_policy_denominator, rlk_policy_loss, rlk_policy_finish; contract
 * {@link io.rlkernels.ops.PolicyLoss}): arguments, the segments and their partial sums.
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
    /** Doubles in a policy-loss block's partial: the stats slots before the denominator (RLK_PL_DENOMINATOR). */
    static final int POLICY_PARTIAL = PolicyLoss.STATS_LENGTH - 1;

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
            long mask = s.in("mask", in.mask());
            long offsets = seqs == null ? 0 : seqs.deviceCopy(launcher, () -> backend.copyIn(seqs.offsets())).address();
            long segments = seqs != null ? seqs.sequences() : (n + POLICY_CHUNK - 1) / POLICY_CHUNK;
            long grad = s.out("gradLogp", gradLogp);
            long gradH = gradEntropy == null ? 0 : s.out("gradEntropy", gradEntropy);
            long out = s.out("stats", stats);
            int u8 = in.mask().dtype() == DType.U8 ? 1 : 0;
            long denominator = 0; // a device scalar when the batch implies it, else the value goes as an argument
            if (Double.isNaN(c.denominator())) {
                denominator = s.scratch(8);
                launcher.launch("rlk_policy_denominator", new LaunchShape(1, CudaBackend.THREADS, 0), new KernelArgs().ptr(mask).i32(u8)
                        .ptr(offsets).i64(seqs == null ? 0 : seqs.sequences()).i64(n).i32(c.aggregation().ordinal())
                        .i64(seqs == null ? 0 : seqs.longest()).ptr(denominator));
            }
            int blocks = policyBlocks(segments);
            long partial = s.scratch(8L * POLICY_PARTIAL * blocks);
            int[] codes = PolicyLossChecks.codes(c);
            launcher.launch("rlk_policy_loss", new LaunchShape(blocks, THREADS, 0), new KernelArgs().ptr(logp).ptr(old).ptr(adv)
                    .ptr(mask).i32(u8).ptr(ref).ptr(entropy).ptr(offsets).i64(seqs == null ? 0 : seqs.sequences()).i64(n)
                    .i32(codes[0]).i32(codes[1]).i32(codes[2]).i32(codes[3]).f32(c.clipLow()).f32(c.clipHigh())
                    .f32(c.dualClip()).f64(c.denominator()).ptr(denominator).f32(c.klCoef()).f32(c.entropyCoef()).ptr(grad)
                    .ptr(gradH).ptr(partial));
            launcher.launch("rlk_policy_finish", new LaunchShape(1, 32, 0), new KernelArgs().ptr(partial).i32(blocks)
                    .f64(c.denominator()).ptr(denominator).ptr(out));
            checks.requireRepresentable(s, gradLogp, grad, Float.MAX_VALUE, (i, v) -> PolicyLossChecks.overflow("gradLogp", i, v));
            if (gradEntropy != null) {
                checks.requireRepresentable(s, gradEntropy, gradH, Float.MAX_VALUE, (i, v) -> PolicyLossChecks.overflow("gradEntropy", i, v));
            }
            s.finish();
        }
    }
}
