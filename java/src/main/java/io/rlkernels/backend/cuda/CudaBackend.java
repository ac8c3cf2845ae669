package io.rlkernels.backend.cuda;

import io.rlkernels.backend.internal.BackendBase;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.cuda.internal.CudaProbe;
import io.rlkernels.backend.cuda.internal.JCudaLauncher;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.OptimalTokenBaseline;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.DeviceTensor;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * The cuda-kernels/ sources on a device, through a {@link KernelLauncher}: the JCuda driver API
 * on a GPU, or the CPU emulator. This class owns the device's tensors and copies and dispatches
 * each op to the file named after it ({@link LogProbsLaunch}, {@link AdvantagesLaunch},
 * {@link PolicyLossLaunch}, {@link BgpoLaunch}, {@link MatmulLaunch}: arguments, launch shape,
 * kernel names), with the input-check policy in {@link DeviceChecks} and host tensors staged by
 * {@link Staging}.
 *
 * <p>Device tensors (allocated here, or wrapping another framework's memory with
 * {@link DeviceTensor#wrap}) are used in place and the launch is asynchronous on the launcher's
 * stream; host tensors are copied in, computed on, copied back, and the call waits.
 */
public final class CudaBackend extends BackendBase {
    /**
     * Blocks per grid at most; every kernel loops over what its grid does not cover (grid-stride).
     * Tests lower it with {@code -Drlk.cuda.maxGrid=N} so that small inputs take that path too:
     * every launch shape below goes through {@link #grid}.
     */
    static final int MAX_GRID = 1 << 20;

    /** The blocks of a launch: {@code wanted}, at most {@code cap} and the grid limit, at least 1. */
    static int grid(long wanted, long cap) {
        long limit = Math.min(cap, Integer.getInteger("rlk.cuda.maxGrid", MAX_GRID));
        return (int) Math.max(1, Math.min(wanted, limit));
    }

    /** Threads of a warp (RLK_WARP in rlk_contract.h): warp-per-item kernels take threads / WARP items a block. */
    static final int WARP = 32;
    /** The generic kernels' __launch_bounds__ (RLK_MAX_THREADS): no launch shape exceeds it. */
    static final int MAX_THREADS = 1024;
    /** Threads of the element-wise and most reduction kernels (any multiple of WARP up to MAX_THREADS works). */
    static final int THREADS = 256;

    /** Grid-stride element-wise kernels: THREADS threads, at most 65,535 blocks. */
    static LaunchShape elementwiseLaunch(long n) {
        return new LaunchShape(grid((n + THREADS - 1) / THREADS, 65_535), THREADS, 0);
    }

    private final KernelLauncher launcher;
    private final BackendKind kind;
    private volatile boolean checkDeviceInputs = true;
    private final LogProbsLaunch logProbs;
    private final AdvantagesLaunch advantages;
    private final PolicyLossLaunch policyLoss;
    private final BgpoLaunch bgpo;
    private final MatmulLaunch matmul;

    public CudaBackend(KernelLauncher launcher, BackendKind kind) {
        this.launcher = launcher;
        this.kind = kind;
        DeviceChecks checks = new DeviceChecks(this, launcher);
        this.logProbs = new LogProbsLaunch(this, launcher, checks);
        this.advantages = new AdvantagesLaunch(this, launcher, checks);
        this.policyLoss = new PolicyLossLaunch(this, launcher, checks);
        this.bgpo = new BgpoLaunch(this, launcher, checks);
        this.matmul = new MatmulLaunch(this, launcher, checks);
    }
    /** The first GPU through JCuda; throws {@link IllegalStateException} naming why CUDA cannot run here. */
    public static CudaBackend open() {
        CudaProbe.Result probe = CudaProbe.result();
        if (!probe.available()) {
            throw new IllegalStateException("cuda backend unavailable: " + probe.reason());
        }
        return new CudaBackend(new JCudaLauncher(0, probe.fatbin()), BackendKind.CUDA);
    }

    public static boolean isAvailable() {
        return CudaProbe.result().available();
    }

    /** Why CUDA cannot run here, or null. */
    public static String unavailableReason() {
        return CudaProbe.result().reason();
    }

    @Override
    public BackendKind kind() {
        return kind;
    }

    @Override
    public String description() {
        return kind.id() + ": " + launcher.describe();
    }

    /** What multiplies matrices: cuBLAS ("libcublas.so.13"), or the own kernel and why. */
    public String blas() {
        String b = launcher.blas();
        return b != null ? "cuBLAS (" + b + ")" : "own kernel (" + (io.rlkernels.backend.cuda.internal.Cublas.get().isPresent()
                ? "rlkernels.blas=own, or the emulated backend" : io.rlkernels.backend.cuda.internal.Cublas.unavailableReason()) + ")";
    }

    @Override
    protected DeviceTensor newTensor(DType dtype, long... shape) {
        long bytes = io.rlkernels.tensor.Shapes.byteSize("shape", dtype, shape); // refused before anything is allocated
        long address = launcher.allocate(bytes);
        return DeviceTensor.owned(address, dtype, shape, launcher, launcher::free);
    }

    @Override
    protected DeviceTensor copyIn(HostTensor src) {
        DeviceTensor d = newTensor(src.dtype(), src.shape());
        launcher.copyToDevice(d.address(), src.segment(), src.byteSize());
        return d;
    }

    @Override
    protected void copyOut(Tensor src, HostTensor dst) {
        if (src instanceof HostTensor h) {
            h.copyTo(dst);
            return;
        }
        DeviceTensor d = device("src", src);
        if (dst.dtype() != d.dtype() || dst.numel() != d.numel()) {
            throw Check.fail("dst", d.dtype().shortName() + " with " + d.numel() + " elements", dst.describe());
        }
        launcher.copyToHost(dst.segment(), d.address(), d.byteSize());
    }

    /**
     * Whether inputs that live on the device are checked like host ones (target ids in range,
     * rewards finite) before the kernels run: that copies them back and waits, so a call on device
     * tensors is not asynchronous. A training loop that checked its data once may turn it off; the
     * kernels still never read out of bounds (a bad target id gives NaN for its row). Host inputs
     * are always checked.
     */
    @Override
    public CudaBackend checkDeviceInputs(boolean check) {
        this.checkDeviceInputs = check;
        return this;
    }

    boolean checksDeviceInputs() {
        return checkDeviceInputs;
    }

    /** A device mask is copied to the host and scanned (4 bytes an element of [N] or [S, T]) while device checks are on. */
    @Override
    protected void requireDeviceMask(String arg, Tensor mask) {
        if (!checkDeviceInputs) {
            return;
        }
        try (HostTensor h = HostTensor.allocate(mask.dtype(), mask.shape())) {
            download(mask, h);
            Check.binaryMask(arg, h);
        }
    }

    @Override
    public void synchronize() {
        launcher.synchronize();
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

    /**
     * A device tensor this backend may use: its own, or wrapped memory, which must lie inside one
     * allocation of this device (checked before every use, so a bad address is an exception).
     */
    DeviceTensor device(String arg, Tensor t) {
        DeviceTensor dt = (DeviceTensor) t;
        if (dt.owner() != null && dt.owner() != launcher) {
            throw Check.fail(arg, "a device tensor of this backend (" + launcher.describe() + ")",
                    "one allocated by another backend");
        }
        if (!dt.isOwned() && dt.byteSize() > 0) {
            launcher.checkForeign(arg, dt.address(), dt.byteSize());
        }
        return dt;
    }

    @Override
    protected void release() {
        launcher.close();
    }
}
