package io.rlkernels.backend.cuda;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.cuda.internal.CudaProbe;
import io.rlkernels.backend.cuda.internal.JCudaLauncher;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.DeviceTensor;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * The cuda-kernels/ sources on a device, through a {@link KernelLauncher}: the JCuda driver API
 * on a GPU, or the CPU emulator. This class owns everything between the API and the kernels:
 * argument checks, staging of host tensors, launch shapes and kernel names.
 *
 * <p>Device tensors (allocated here, or wrapping another framework's memory with
 * {@link DeviceTensor#wrap}) are used in place and the launch is asynchronous on the launcher's
 * stream; host tensors are copied in, computed on, copied back, and the call waits.
 */
public final class CudaBackend implements Backend {
    /**
     * Blocks per grid at most; kernels loop over further rows (grid-stride). Tests lower it with
     * {@code -Drlk.cuda.maxGrid=N} so that small inputs take the grid-stride path too.
     */
    static final int MAX_GRID = 1 << 20;
    /** Alignment that enables the 16-byte vector path. */
    private static final int VECTOR_BYTES = 16;

    private final KernelLauncher launcher;
    private final BackendKind kind;

    public CudaBackend(KernelLauncher launcher, BackendKind kind) {
        this.launcher = launcher;
        this.kind = kind;
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

    public KernelLauncher launcher() {
        return launcher;
    }

    @Override
    public BackendKind kind() {
        return kind;
    }

    @Override
    public String description() {
        return kind.id() + ": " + launcher.describe();
    }

    @Override
    public DeviceTensor allocate(DType dtype, long... shape) {
        long bytes = io.rlkernels.tensor.Shapes.numel(shape) * dtype.byteSize();
        long address = launcher.allocate(bytes);
        return DeviceTensor.owned(address, dtype, shape, launcher, launcher::free);
    }

    @Override
    public DeviceTensor upload(HostTensor src) {
        DeviceTensor d = allocate(src.dtype(), src.shape());
        launcher.copyToDevice(d.address(), src.segment(), src.byteSize());
        return d;
    }

    @Override
    public void download(Tensor src, HostTensor dst) {
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

    /** Waits for every kernel launched on device tensors so far. */
    public void synchronize() {
        launcher.synchronize();
    }

    /** One block per row; wider rows get more threads (up to 512), narrow ones a single warp. */
    static LaunchShape rowLaunch(long rows, long vocab, DType dtype) {
        long vectors = (vocab * dtype.byteSize() + VECTOR_BYTES - 1) / VECTOR_BYTES;
        int threads = 32;
        while (threads < 512 && threads * 4L < vectors) {
            threads *= 2;
        }
        return new LaunchShape((int) Math.min(rows, Integer.getInteger("rlk.cuda.maxGrid", MAX_GRID)), threads, 0);
    }

    @Override
    public void logProbs(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy) {
        LogProbs.Dims d = LogProbs.checkForward(config, logits, targets, logp, lse, entropy);
        checkTargets(targets, d, config);
        if (d.rows() == 0) {
            return;
        }
        try (Staging s = new Staging(launcher, this)) {
            long z = s.in("logits", logits);
            long y = s.in("targets", targets);
            long outLogp = s.out("logp", logp);
            long outLse = s.out("lse", lse);
            long outEntropy = entropy == null ? 0 : s.out("entropy", entropy);
            KernelArgs args = new KernelArgs().ptr(z).ptr(y).i32(targets.dtype() == DType.I64 ? 1 : 0)
                    .i64(d.rows()).i64(d.vocab()).f32(1.0f / config.temperature()).i64(config.ignoreIndex())
                    .ptr(outLogp).ptr(outLse).ptr(outEntropy).i32(vectorizable(z) ? 1 : 0);
            launcher.launch("rlk_logprobs_fwd_" + logits.dtype().shortName(), rowLaunch(d.rows(), d.vocab(), logits.dtype()), args);
            s.finish();
        }
    }

    @Override
    public void logProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lse, Tensor entropy,
                                 Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        LogProbs.Dims d = LogProbs.checkBackward(config, logits, targets, lse, entropy, gradLogp, gradEntropy, gradLogits);
        checkTargets(targets, d, config);
        if (d.rows() == 0) {
            return;
        }
        try (Staging s = new Staging(launcher, this)) {
            boolean inPlace = gradLogits == logits;
            long z = inPlace ? s.inOut("logits", logits) : s.in("logits", logits);
            long y = s.in("targets", targets);
            long lseIn = s.in("lse", lse);
            long entropyIn = gradEntropy == null ? 0 : s.in("entropy", entropy);
            long g = gradLogp == null ? 0 : s.in("gradLogp", gradLogp);
            long h = gradEntropy == null ? 0 : s.in("gradEntropy", gradEntropy);
            long out = inPlace ? z : s.out("gradLogits", gradLogits);
            KernelArgs args = new KernelArgs().ptr(z).ptr(y).i32(targets.dtype() == DType.I64 ? 1 : 0)
                    .i64(d.rows()).i64(d.vocab()).f32(config.temperature()).f32(1.0f / config.temperature())
                    .i64(config.ignoreIndex()).ptr(lseIn).ptr(entropyIn).ptr(g).ptr(h).ptr(out)
                    .i32(vectorizable(z) && vectorizable(out) ? 1 : 0);
            String kernel = "rlk_logprobs_bwd_" + logits.dtype().shortName() + "_" + gradLogits.dtype().shortName();
            DType wider = logits.dtype().byteSize() >= gradLogits.dtype().byteSize() ? logits.dtype() : gradLogits.dtype();
            launcher.launch(kernel, rowLaunch(d.rows(), d.vocab(), wider), args);
            s.finish();
        }
    }

    private static boolean vectorizable(long address) {
        return address % VECTOR_BYTES == 0;
    }

    /** Target ids are checked on the host before any kernel runs; device ids are copied back for it. */
    private void checkTargets(Tensor targets, LogProbs.Dims d, LogProbs.Config config) {
        if (targets instanceof HostTensor h) {
            LogProbs.checkTargets(h, d.vocab(), config.ignoreIndex());
            return;
        }
        DeviceTensor dt = device("targets", targets);
        try (HostTensor h = HostTensor.allocate(dt.dtype(), dt.shape())) {
            download(dt, h);
            LogProbs.checkTargets(h, d.vocab(), config.ignoreIndex());
        }
    }

    /** A device tensor this backend may use: its own, or wrapped memory. */
    DeviceTensor device(String arg, Tensor t) {
        DeviceTensor dt = (DeviceTensor) t;
        if (dt.owner() != null && dt.owner() != launcher) {
            throw Check.fail(arg, "a device tensor of this backend (" + launcher.describe() + ")",
                    "one allocated by another backend");
        }
        return dt;
    }

    @Override
    public void close() {
        launcher.close();
    }
}
