package io.rlkernels.bench;

import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.Backends;
import io.rlkernels.backend.cuda.CudaBackend;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Log-probs from hidden states on a GPU for bench/gpu: N x d hidden states and a V x d head on the
 * cuda backend (device tensors, input checks off), a step of the materialised path (cuBLAS into
 * [N, V] f32 logits, the log-probs forward and in-place backward, the two gradient products)
 * beside the fused op (forward, backward over recomputed chunks) and the fused policy loss (one
 * pass), and one bare cuBLAS product H W^T (its rate against the device's peak is the ceiling).
 * Memory beyond the tensors both paths hold (H, W, dH, dW, per-token vectors): the bytes the path
 * allocates on the device — the materialised [N, V] logits, the fused forms' workspace as the
 * backend counts its own allocations (Backend.workspacePeakBytes).
 *
 * <pre>GpuLinearHeadBench [--rows 16384] [--hidden 4096] [--vocab 151936] [--dtype bf16] [--workspace-mb 1024]
 *                    [--trials 5] [--backend cuda|emulated] [--out FILE.md]</pre>
 *
 * Prints a Markdown table (and writes it to FILE.md). Exit status 3 when the cuda backend cannot run here.
 */
public final class GpuLinearHeadBench {
    private GpuLinearHeadBench() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            opt.put(args[i], args[i + 1]);
        }
        int n = Integer.parseInt(opt.getOrDefault("--rows", "16384"));
        int d = Integer.parseInt(opt.getOrDefault("--hidden", "4096"));
        int v = Integer.parseInt(opt.getOrDefault("--vocab", "151936"));
        DType dtype = DType.valueOf(opt.getOrDefault("--dtype", "bf16").toUpperCase(java.util.Locale.ROOT));
        long workspace = Long.parseLong(opt.getOrDefault("--workspace-mb", "1024")) << 20;
        int trials = Integer.parseInt(opt.getOrDefault("--trials", "5"));
        CudaBackend cuda;
        try {
            cuda = "emulated".equals(opt.get("--backend")) ? (CudaBackend) Backends.open(BackendKind.EMULATED) : CudaBackend.open();
        } catch (RuntimeException e) {
            System.err.println("GpuLinearHeadBench: " + e.getMessage());
            System.exit(3);
            return;
        }
        cuda.checkDeviceInputs(false);
        LinearLogProbs.Config config = LinearLogProbs.Config.defaults().withWorkspaceBytes(workspace);
        LogProbs.Config lp = LogProbs.Config.defaults();
        PolicyLoss.Config loss = PolicyLoss.Config.defaults().withDenominator(n);
        SplittableRandom rng = new SplittableRandom(5);
        try (cuda; HostTensor h0 = Fill.normal(dtype, 1.0, n, d); HostTensor w0 = Fill.normal(dtype, 1.0 / Math.sqrt(d), v, d);
             HostTensor y0 = HostTensor.allocate(DType.I64, n); HostTensor g0 = Fill.normal(DType.F32, 1.0 / n, n);
             HostTensor m0 = HostTensor.allocate(DType.U8, n); HostTensor a0 = Fill.normal(DType.F32, 1.0, n)) {
            for (int i = 0; i < n; i++) {
                y0.setLong(i, rng.nextInt(v));
                m0.setLong(i, 1);
            }
            try (Tensor h = cuda.upload(h0); Tensor w = cuda.upload(w0); Tensor y = cuda.upload(y0); Tensor g = cuda.upload(g0);
                 Tensor mask = cuda.upload(m0); Tensor adv = cuda.upload(a0); Tensor logp = cuda.allocate(DType.F32, n);
                 Tensor old = cuda.allocate(DType.F32, n); Tensor parts = cuda.allocate(DType.F32, n, 2);
                 Tensor gl = cuda.allocate(DType.F32, n); Tensor dH = cuda.allocate(DType.F32, n, d);
                 Tensor dW = cuda.allocate(DType.F32, v, d)) {
                cuda.linearLogProbs(config, h, w, y, old, null, null, parts);
                long logitsBytes = (long) n * v * 4;
                Runnable materialised = () -> {
                    try (Tensor z = cuda.allocate(DType.F32, n, v)) {
                        cuda.matmul(false, true, 1f, h, w, 0f, z);
                        cuda.logProbs(lp, z, y, logp, null, null, parts);
                        cuda.logProbsBackward(lp, z, y, parts, null, g, null, z);
                        cuda.matmul(false, false, 1f, z, w, 0f, dH);
                        cuda.matmul(true, false, 1f, z, h, 1f, dW);
                    }
                };
                Runnable fused = () -> {
                    cuda.linearLogProbs(config, h, w, y, logp, null, null, parts);
                    cuda.linearLogProbsBackward(config, h, w, y, parts, null, g, null, dH, dW);
                };
                Runnable fusedLoss = () -> cuda.linearPolicyLoss(config, loss,
                        new LinearLogProbs.LossInputs(h, w, y, old, adv, mask), logp, dH, dW);
                double gemmMs;
                try (Tensor z = cuda.allocate(DType.F32, n, v)) {
                    gemmMs = median(() -> cuda.matmul(false, true, 1f, h, w, 0f, z), cuda, trials);
                }
                double matMs = median(materialised, cuda, trials);
                cuda.resetWorkspacePeak();
                double fusedMs = median(fused, cuda, trials);
                long fusedBytes = cuda.workspacePeakBytes();
                cuda.resetWorkspacePeak();
                double lossMs = median(fusedLoss, cuda, trials);
                long lossBytes = cuda.workspacePeakBytes();
                double flop = 2.0 * n * v * d;
                StringBuilder md = new StringBuilder();
                md.append("### Log-probs from hidden states (issue 14)\n\n`GpuLinearHeadBench`: ").append(cuda.description())
                        .append("; products: ").append(cuda.blas()).append("; N = ").append(n).append(", d = ").append(d)
                        .append(", V = ").append(v).append(", ").append(dtype).append(", workspace ").append(workspace >> 20)
                        .append(" MiB; median of ").append(trials).append(" steps.\n\n")
                        .append(String.format("One product H W^T: %.2f ms, %.1f TFLOP/s.%n%n", gemmMs, flop / gemmMs / 1e9))
                        .append("| path | ms a step | vs materialised | device memory beyond the tensors both hold |\n|---|---|---|---|\n")
                        .append(String.format("| materialised (product into [N, V], log-probs, 2 products) | %.2f | 1.00 | %.1f MB |%n",
                                matMs, logitsBytes / 1e6))
                        .append(String.format("| fused (forward, backward over recomputed chunks) | %.2f | %.2f | %.1f MB |%n", fusedMs,
                                fusedMs / matMs, fusedBytes / 1e6))
                        .append(String.format("| fused policy loss (one pass) | %.2f | %.2f | %.1f MB |%n", lossMs, lossMs / matMs,
                                lossBytes / 1e6));
                System.out.print(md);
                if (opt.containsKey("--out")) {
                    Files.writeString(Path.of(opt.get("--out")), md.toString());
                }
            }
        }
    }

    private static double median(Runnable body, CudaBackend cuda, int trials) {
        body.run();
        cuda.synchronize();
        double[] t = new double[trials];
        for (int i = 0; i < trials; i++) {
            long start = System.nanoTime();
            body.run();
            cuda.synchronize();
            t[i] = (System.nanoTime() - start) / 1e6;
        }
        Arrays.sort(t);
        return t[trials / 2];
    }
}
