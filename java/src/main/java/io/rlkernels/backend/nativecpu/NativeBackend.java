package io.rlkernels.backend.nativecpu;

import io.rlkernels.backend.internal.BackendBase;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.nativecpu.internal.NativeLibrary;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.OptimalTokenBaseline;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.internal.LinearLogProbsChecks;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * The native/ C library through FFM: SIMD (x86-64, AVX2 or AVX-512, picked from the CPU) and
 * OpenMP over rows, f32 accumulation. Host tensors only; Java arrays are read in place. Each op's
 * call is the file named after it ({@link LogProbsCalls}, {@link AdvantagesCalls},
 * {@link PolicyLossCalls}, {@link BgpoCalls}, {@link MatmulCalls}); what they share is
 * {@link NativeCalls}. This class owns the library's lifetime and the ISA choice, and dispatches.
 */
public final class NativeBackend extends BackendBase {

    /** The instruction-set variants, as numbered in rlkernels.h (enum rlk_isa). */
    public static final int ISA_AUTO = -1;
    public static final int ISA_X86_64 = 0;
    public static final int ISA_AVX2 = 1;
    public static final int ISA_AVX512 = 2;

    private final NativeLibrary lib;
    private final boolean forcedIsa;
    private final LogProbsCalls logProbs;
    private final AdvantagesCalls advantages;
    private final PolicyLossCalls policyLoss;
    private final BgpoCalls bgpo;
    private final MatmulCalls matmul;
    private final LinearLogProbsCalls linear;
    /** {@code -Drlkernels.linear=rows} keeps chunks of whole rows whatever the workspace (for tests and benchmarks). */
    private final boolean rowsOnly = "rows".equals(System.getProperty("rlkernels.linear"));

    private NativeBackend(NativeLibrary lib, boolean forcedIsa) {
        this.lib = lib;
        this.forcedIsa = forcedIsa;
        NativeCalls calls = new NativeCalls(lib);
        this.logProbs = new LogProbsCalls(calls);
        this.advantages = new AdvantagesCalls(calls);
        this.policyLoss = new PolicyLossCalls(calls);
        this.bgpo = new BgpoCalls(calls);
        this.matmul = new MatmulCalls(calls, this::accountWorkspace);
        this.linear = new LinearLogProbsCalls(calls, logProbs, matmul, this::accountWorkspace);
    }

    /** The backend; throws {@link IllegalStateException} naming the reason when the library cannot load. */
    public static NativeBackend open() {
        return new NativeBackend(loadedLibrary(), false);
    }

    /**
     * The backend on one instruction-set variant, for tests and benchmarks. The choice is
     * process-wide until this backend is closed, which restores the automatic choice.
     */
    public static NativeBackend open(int isa) {
        NativeLibrary lib = loadedLibrary();
        if (!lib.isaSelect(isa)) {
            throw new IllegalStateException("native backend: this CPU cannot run the " + lib.isaName(isa) + " variant");
        }
        return new NativeBackend(lib, isa != ISA_AUTO);
    }

    /** Whether this CPU runs a variant. */
    public static boolean supportsIsa(int isa) {
        return NativeLibrary.get().map(l -> (l.isaSupportedMask() & (1 << isa)) != 0).orElse(false);
    }

    private static NativeLibrary loadedLibrary() {
        return NativeLibrary.get().orElseThrow(
                () -> new IllegalStateException("native backend unavailable: " + NativeLibrary.unavailableReason()));
    }

    public static boolean isAvailable() {
        return NativeLibrary.get().isPresent();
    }

    /** Why the library cannot load, or null. */
    public static String unavailableReason() {
        return NativeLibrary.unavailableReason();
    }

    /** The variants this CPU runs, by name ("x86-64", "avx2", "avx512"). */
    public static java.util.List<String> supportedIsas() {
        NativeLibrary l = loadedLibrary();
        java.util.List<String> out = new java.util.ArrayList<>();
        for (int isa = ISA_X86_64; isa <= ISA_AVX512; isa++) {
            if ((l.isaSupportedMask() & (1 << isa)) != 0) {
                out.add(l.isaName(isa));
            }
        }
        return out;
    }

    /** The OpenMP threads the kernels use (process-wide). */
    public int threads() {
        return lib.maxThreads();
    }

    /** Sets the OpenMP threads the kernels use (process-wide, at least 1), for tests and benchmarks. */
    public void setThreads(int n) {
        if (n < 1) {
            throw io.rlkernels.internal.Check.fail("threads", "at least 1", n);
        }
        lib.setNumThreads(n);
        matmul.setThreads(n);
    }

    /** What multiplies matrices: "OpenBLAS 0.3.31 (Zen)", or the own kernel and why. */
    public String blas() {
        return matmul.description();
    }

    @Override
    public BackendKind kind() {
        return BackendKind.NATIVE;
    }

    @Override
    public String description() {
        return "native: " + lib.isaName(lib.isaSelected()) + ", " + lib.maxThreads() + " threads";
    }

    @Override
    protected Tensor newTensor(DType dtype, long... shape) {
        return HostTensor.allocate(dtype, shape);
    }

    @Override
    protected void runLogProbs(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                               Tensor lseParts) {
        logProbs.forward(config, logits, targets, logp, lse, entropy, lseParts);
    }

    @Override
    protected void runLogProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                       Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        logProbs.backward(config, logits, targets, lseParts, entropy, gradLogp, gradEntropy, gradLogits);
    }

    @Override
    protected void runGroupAdvantages(GroupAdvantages.Config config, Tensor rewards, Tensor weights, GroupLayout groups, Tensor out) {
        advantages.groupAdvantages(config, rewards, weights, groups, out);
    }

    @Override
    protected void runSequenceToTokens(Tensor perSequence, Tensor mask, Tensor perToken) {
        advantages.sequenceToTokens(perSequence, mask, perToken);
    }

    @Override
    protected void runGae(Gae.Config config, Tensor rewards, Tensor values, Tensor mask, Tensor out, Tensor returns) {
        advantages.gae(config, rewards, values, mask, out, returns);
    }

    @Override
    protected void runDiscountedReturns(float gamma, Tensor rewards, Tensor mask, Tensor returns) {
        advantages.discountedReturns(gamma, rewards, mask, returns);
    }

    @Override
    protected void runOptimalTokenBaseline(OptimalTokenBaseline.Config config, OptimalTokenBaseline.Inputs in, Tensor out,
                                           Tensor returns) {
        advantages.optimalTokenBaseline(config, in, out, returns);
    }

    @Override
    protected void runMaskedWhiten(MaskedWhiten.Config config, Tensor x, Tensor mask, Tensor out) {
        advantages.maskedWhiten(config, x, mask, out);
    }

    @Override
    protected void runPolicyLoss(PolicyLoss.Config config, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy,
                                 Tensor stats) {
        policyLoss.policyLoss(config, in, gradLogp, gradEntropy, stats);
    }

    @Override
    protected void runMaskRows(Tensor targets, Tensor mask, long vocab, Tensor out) {
        bgpo.maskRows(targets, mask, vocab, out);
    }

    @Override
    protected void runBgpoCoefficients(Bgpo.Config config, Tensor logp, SequenceLayout rows, Tensor mask, Tensor weights,
                                       Tensor oldValues, Tensor advantages, Tensor values, Tensor upstream, Tensor state) {
        bgpo.coefficients(config, logp, rows, mask, weights, oldValues, advantages, values, upstream, state);
    }

    @Override
    protected void runMatmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        matmul.matmul(transA, transB, alpha, a, b, beta, c);
    }

    @Override
    protected void release() {
        if (forcedIsa) {
            lib.isaSelect(ISA_AUTO);
        }
    }

    /** Whether a log-probs call from hidden states tiles the vocabulary here (LinearLogProbsCalls), after checking its inputs. */
    private boolean tiled(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets) {
        LinearLogProbs.Dims d = LinearLogProbsChecks.checkInputs(config, hidden, weight, targets);
        return !rowsOnly && LinearLogProbsCalls.tiles(config, d.rows(), d.vocab());
    }

    @Override
    protected void runLinearLogProbs(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets, Tensor logp,
                                     Tensor lse, Tensor entropy, Tensor lseParts) {
        if (tiled(config, hidden, weight, targets)) {
            linear.forward(config, hidden, weight, targets, logp, lse, entropy, lseParts);
        } else {
            super.runLinearLogProbs(config, hidden, weight, targets, logp, lse, entropy, lseParts);
        }
    }

    @Override
    protected void runLinearLogProbsBackward(LinearLogProbs.Config config, Tensor hidden, Tensor weight, Tensor targets,
                                             Tensor lseParts, Tensor entropy, Tensor gradLogp, Tensor gradEntropy,
                                             Tensor gradHidden, Tensor gradWeight) {
        if (tiled(config, hidden, weight, targets)) {
            linear.backward(config, hidden, weight, targets, lseParts, entropy, gradLogp, gradEntropy, gradHidden, gradWeight);
        } else {
            super.runLinearLogProbsBackward(config, hidden, weight, targets, lseParts, entropy, gradLogp, gradEntropy, gradHidden,
                    gradWeight);
        }
    }

    @Override
    protected PolicyLoss.Stats runLinearPolicyLoss(LinearLogProbs.Config config, PolicyLoss.Config loss,
                                                   LinearLogProbs.LossInputs in, Tensor logp, Tensor gradHidden, Tensor gradWeight) {
        if (in != null) {
            LinearLogProbs.Dims d = LinearLogProbsChecks.checkInputs(config, in.hidden(), in.weight(), in.targets());
            if (in.sequences() != null) {
                in.sequences().requireAlive("sequences");
            }
            if (!rowsOnly && LinearLogProbsCalls.tilesLoss(config, in.sequences(), d.rows(), d.vocab())) {
                return linear.loss(config, loss, in, logp, gradHidden, gradWeight, policyLoss);
            }
        }
        return super.runLinearPolicyLoss(config, loss, in, logp, gradHidden, gradWeight);
    }
}
