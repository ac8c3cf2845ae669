package io.rlkernels.bench;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.cuda.CudaBackend;
import io.rlkernels.backend.nativecpu.NativeBackend;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The advantage and policy-loss kernels on a GPU for bench/gpu: group advantages
 * over S = 2^20 sequences in groups of 16 (scattered ids), GAE, discounted returns and masked
 * whitening over B = 256 rows of T = 4,096 tokens, the policy loss over N = 2^20 tokens (PPO
 * token-mean; GSPO with a k3 KL term); on the cuda backend with device tensors (input checks off,
 * as a training loop would run), beside the native backend of the same machine.
 *
 * <pre>GpuOpsBench [--out FILE.md] [--trials 10] [--repeats 20] [--backend cuda|emulated]</pre>
 *
 * ({@code --backend emulated} runs the same harness on the CPU emulator, to check it without a GPU.)
 *
 * Prints a Markdown table (and writes it to FILE.md). Exit status 3 when the cuda backend cannot
 * run here (one line on stderr says why).
 */
public final class GpuOpsBench {
    private GpuOpsBench() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            opt.put(args[i], args[i + 1]);
        }
        int trials = Integer.parseInt(opt.getOrDefault("--trials", "10"));
        int repeats = Integer.parseInt(opt.getOrDefault("--repeats", "20"));
        CudaBackend cuda;
        try {
            cuda = "emulated".equals(opt.get("--backend"))
                    ? (CudaBackend) io.rlkernels.backend.Backends.open(io.rlkernels.backend.BackendKind.EMULATED)
                    : CudaBackend.open();
        } catch (RuntimeException e) {
            System.err.println("GpuOpsBench: " + e.getMessage());
            System.exit(3);
            return;
        }
        cuda.checkDeviceInputs(false);
        StringBuilder md = new StringBuilder();
        md.append("### Advantage and policy-loss kernels (issues 4, 5)\n\n")
                .append("`GpuOpsBench`: ").append(cuda.description()).append("; median of ").append(trials)
                .append(" batches of ").append(repeats).append(" calls; native: this machine's CPU, best of 3 calls.\n\n")
                .append("| op | size | GB/s moved (cuda) | cuda ms | native ms | cuda vs native |\n|---|---|---|---|---|---|\n");
        try (NativeBackend nat = NativeBackend.open(); Data dc = new Data(cuda); Data dn = new Data(nat)) {
            add(md, "groupAdvantages (grpo)", "S = 2^20, groups of 16", AdvantagesBenchmark.bytesMoved("groupAdvantages"),
                    cuda, dc, nat, dn, (b, d) -> b.groupAdvantages(GroupAdvantages.Config.defaults(), d.rewards, d.layout, d.advantages),
                    trials, repeats);
            add(md, "gae", "B = 256, T = 4096", AdvantagesBenchmark.bytesMoved("gae"), cuda, dc, nat, dn,
                    (b, d) -> b.gae(new Gae.Config(0.99f, 0.95f), d.tokenRewards, d.values, d.mask, d.tokenAdvantages, d.returns),
                    trials, repeats);
            add(md, "discountedReturns", "B = 256, T = 4096", (double) AdvantagesBenchmark.ROWS * AdvantagesBenchmark.TOKENS * 12,
                    cuda, dc, nat, dn, (b, d) -> b.discountedReturns(0.99f, d.tokenRewards, d.mask, d.returns), trials, repeats);
            add(md, "maskedWhiten", "B = 256, T = 4096", AdvantagesBenchmark.bytesMoved("maskedWhiten"), cuda, dc, nat, dn,
                    (b, d) -> b.maskedWhiten(MaskedWhiten.Config.defaults(), d.tokenAdvantages, d.mask, d.returns), trials, repeats);
            PolicyLoss.Config ppo = PolicyLoss.Config.defaults().withDenominator(PolicyLossBenchmark.TOKENS);
            PolicyLoss.Config gspo = PolicyLoss.Config.defaults().withRatio(PolicyLoss.RatioLevel.SEQUENCE)
                    .withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_MEAN).withClip(3e-4f, 4e-4f)
                    .withKl(PolicyLoss.KlEstimator.K3, 0.01f).withDenominator(PolicyLossBenchmark.TOKENS / PolicyLossBenchmark.SEQUENCE);
            add(md, "policyLoss (ppo, token-mean)", "N = 2^20 tokens", PolicyLossBenchmark.bytesMoved("ppoTokenMean"), cuda, dc, nat,
                    dn, (b, d) -> b.policyLoss(ppo, d.policy, d.grad, null, d.stats), trials, repeats);
            add(md, "policyLoss (gspo, k3 KL)", "N = 2^20 tokens, sequences of 1024", PolicyLossBenchmark.bytesMoved("gspoWithKl"),
                    cuda, dc, nat, dn, (b, d) -> b.policyLoss(gspo, d.policy, d.grad, null, d.stats), trials, repeats);
        } finally {
            cuda.close();
        }
        System.out.print(md);
        if (opt.containsKey("--out")) {
            Files.writeString(Path.of(opt.get("--out")), md.toString());
        }
    }

    private interface DataOp {
        void run(Backend b, Data d);
    }

    private static void add(StringBuilder md, String op, String size, double bytes, CudaBackend cuda, Data dc, Backend nat,
                            Data dn, DataOp body, int trials, int repeats) {
        double[] batches = new double[trials];
        for (int w = 0; w < 3; w++) {
            body.run(cuda, dc);
        }
        cuda.synchronize();
        for (int t = 0; t < trials; t++) {
            long start = System.nanoTime();
            for (int r = 0; r < repeats; r++) {
                body.run(cuda, dc);
            }
            cuda.synchronize();
            batches[t] = (System.nanoTime() - start) / 1e6 / repeats;
        }
        Arrays.sort(batches);
        double cudaMs = batches[trials / 2];
        double nativeMs = Double.MAX_VALUE;
        for (int t = 0; t < 3; t++) {
            long start = System.nanoTime();
            body.run(nat, dn);
            nativeMs = Math.min(nativeMs, (System.nanoTime() - start) / 1e6);
        }
        md.append(String.format("| %s | %s | %.0f | %.3f | %.2f | %.0fx |%n", op, size, bytes / (cudaMs / 1e3) / 1e9, cudaMs, nativeMs,
                nativeMs / cudaMs));
        PrintStream err = System.err;
        err.printf("GpuOpsBench: %s cuda %.3f ms, native %.2f ms%n", op, cudaMs, nativeMs);
    }

    /** The inputs of AdvantagesBenchmark, on one backend. */
    private static final class Data implements AutoCloseable {
        final GroupLayout layout;
        final Tensor rewards;
        final Tensor advantages;
        final Tensor tokenRewards;
        final Tensor values;
        final Tensor mask;
        final Tensor tokenAdvantages;
        final Tensor returns;
        final SequenceLayout sequences;
        final PolicyLoss.Inputs policy;
        final Tensor grad;
        final Tensor stats;

        Data(Backend b) {
            int s = AdvantagesBenchmark.SEQUENCES;
            SplittableRandom rng = new SplittableRandom(3);
            try (HostTensor ids = HostTensor.allocate(DType.I64, s); HostTensor r = Fill.normal(DType.F32, 1.0, s);
                 HostTensor tr = Fill.normal(DType.F32, 1.0, AdvantagesBenchmark.ROWS, AdvantagesBenchmark.TOKENS);
                 HostTensor v = Fill.normal(DType.F32, 1.0, AdvantagesBenchmark.ROWS, AdvantagesBenchmark.TOKENS);
                 HostTensor m = HostTensor.allocate(DType.F32, AdvantagesBenchmark.ROWS, AdvantagesBenchmark.TOKENS)) {
                for (int i = 0; i < s; i++) {
                    ids.setLong(i, rng.nextInt(s / AdvantagesBenchmark.GROUP));
                }
                for (long i = 0; i < m.numel(); i++) {
                    m.setFloat(i, rng.nextDouble() < 0.9 ? 1f : 0f);
                }
                layout = GroupLayout.of(ids);
                rewards = b.upload(r);
                tokenRewards = b.upload(tr);
                values = b.upload(v);
                mask = b.upload(m);
            }
            int n = PolicyLossBenchmark.TOKENS;
            int[] lengths = new int[n / PolicyLossBenchmark.SEQUENCE];
            Arrays.fill(lengths, PolicyLossBenchmark.SEQUENCE);
            sequences = SequenceLayout.ofLengths(lengths);
            try (HostTensor logp = Fill.normal(DType.F32, 1.0, n); HostTensor old = Fill.normal(DType.F32, 1.0, n);
                 HostTensor adv = Fill.normal(DType.F32, 1.0, n); HostTensor m = HostTensor.allocate(DType.F32, n)) {
                for (int i = 0; i < n; i++) {
                    logp.setFloat(i, -Math.abs(logp.getFloat(i)));
                    old.setFloat(i, logp.getFloat(i) + 0.1f * old.getFloat(i));
                    m.setFloat(i, rng.nextDouble() < 0.9 ? 1f : 0f);
                }
                policy = new PolicyLoss.Inputs(b.upload(logp), b.upload(old), b.upload(adv), b.upload(m), sequences,
                        b.upload(old), null);
            }
            grad = b.allocate(DType.F32, n);
            stats = b.allocate(DType.F64, PolicyLoss.STATS_LENGTH);
            advantages = b.allocate(DType.F32, s);
            tokenAdvantages = b.allocate(DType.F32, AdvantagesBenchmark.ROWS, AdvantagesBenchmark.TOKENS);
            returns = b.allocate(DType.F32, AdvantagesBenchmark.ROWS, AdvantagesBenchmark.TOKENS);
        }

        @Override
        public void close() {
            for (Tensor t : new Tensor[] {rewards, advantages, tokenRewards, values, mask, tokenAdvantages, returns, policy.logp(),
                policy.oldLogp(), policy.advantages(), policy.mask(), policy.refLogp(), grad, stats}) {
                t.close();
            }
            layout.close();
            sequences.close();
        }
    }
}
