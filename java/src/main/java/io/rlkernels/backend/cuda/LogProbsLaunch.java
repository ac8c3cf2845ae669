package io.rlkernels.backend.cuda;

import io.rlkernels.ops.internal.LogProbsChecks;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * The log-probs kernels (rlk_logprobs_fwd_*, rlk_logprobs_bwd_*; contract {@link io.rlkernels.ops.LogProbs}):
 * arguments, launch shape (a block per row) and the forward's overflow cell.
 */
final class LogProbsLaunch {
    private final CudaBackend backend;
    private final KernelLauncher launcher;
    private final DeviceChecks checks;

    LogProbsLaunch(CudaBackend backend, KernelLauncher launcher, DeviceChecks checks) {
        this.backend = backend;
        this.launcher = launcher;
        this.checks = checks;
    }

    /** Alignment that enables the vector path (RLK_VECTOR_BYTES: the kernels' vector loads). */
    static final int VECTOR_BYTES = 16;

    /** One block per row; wider rows get more threads (up to 512), narrow ones a single warp. */
    static LaunchShape rowLaunch(long rows, long vocab, DType dtype) {
        long vectors = (vocab * dtype.byteSize() + VECTOR_BYTES - 1) / VECTOR_BYTES;
        int threads = CudaBackend.WARP;
        while (threads < 512 && threads * 4L < vectors) {
            threads *= 2;
        }
        return new LaunchShape(CudaBackend.grid(rows, CudaBackend.MAX_GRID), threads, 0);
    }

    void forward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                               Tensor lseParts) {
        LogProbs.Dims d = LogProbsChecks.checkForward(config, logits, targets, logp, lse, entropy, lseParts);
        checks.checkTargets(targets, d.vocab(), config.ignoreIndex());
        if (d.rows() == 0) {
            return;
        }
        try (Staging s = new Staging(launcher, backend)) {
            long z = s.in("logits", logits);
            long y = s.in("targets", targets);
            long outLogp = s.out("logp", logp);
            long outLse = lse == null ? 0 : s.out("lse", lse);
            long outEntropy = entropy == null ? 0 : s.out("entropy", entropy);
            long outParts = lseParts == null ? 0 : s.out("lseParts", lseParts);
            // the first row whose lse or logp overflows float32: checked when the call waits anyway
            boolean checked = logp instanceof HostTensor || lse instanceof HostTensor || backend.checksDeviceInputs();
            long overflow = checked ? checks.deviceCell(s, d.rows()) : 0;
            KernelArgs args = new KernelArgs().ptr(z).ptr(y).i32(targets.dtype() == DType.I64 ? 1 : 0)
                    .i64(d.rows()).i64(d.vocab()).f32(1.0f / config.temperature()).i64(config.ignoreIndex())
                    .ptr(outLogp).ptr(outLse).ptr(outEntropy).ptr(outParts).i32(vectorizable(z) ? 1 : 0).ptr(overflow);
            launcher.launch("rlk_logprobs_fwd_" + logits.dtype().shortName(), rowLaunch(d.rows(), d.vocab(), logits.dtype()), args);
            long firstOverflow = checked ? checks.readCell(overflow) : d.rows();
            if (firstOverflow < d.rows()) {
                throw LogProbsChecks.overflow(firstOverflow, config);
            }
            s.finish();
        }
    }

    void backward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                 Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        LogProbs.Dims d = LogProbsChecks.checkBackward(config, logits, targets, lseParts, entropy, gradLogp, gradEntropy, gradLogits);
        checks.checkTargets(targets, d.vocab(), config.ignoreIndex());
        if (d.rows() == 0) {
            return;
        }
        try (Staging s = new Staging(launcher, backend)) {
            boolean inPlace = gradLogits == logits;
            long z = inPlace ? s.inOut("logits", logits) : s.in("logits", logits);
            long y = s.in("targets", targets);
            long partsIn = s.in("lseParts", lseParts);
            long entropyIn = gradEntropy == null ? 0 : s.in("entropy", entropy);
            float[] limits = LogProbsChecks.upstreamLimits(config.temperature(), d.vocab());
            String why = LogProbsChecks.upstreamReason(config.temperature());
            long g = gradLogp == null ? 0 : checks.boundedInput(s, "gradLogp", gradLogp, limits[0], why);
            long h = gradEntropy == null ? 0 : checks.boundedInput(s, "gradEntropy", gradEntropy, limits[1], why);
            long out = inPlace ? z : s.out("gradLogits", gradLogits);
            KernelArgs args = new KernelArgs().ptr(z).ptr(y).i32(targets.dtype() == DType.I64 ? 1 : 0)
                    .i64(d.rows()).i64(d.vocab()).f32(config.temperature()).f32(1.0f / config.temperature())
                    .i64(config.ignoreIndex()).ptr(partsIn).ptr(entropyIn).ptr(g).ptr(h).ptr(out)
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
}
