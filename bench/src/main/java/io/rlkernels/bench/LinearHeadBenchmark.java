package io.rlkernels.bench;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.backend.nativecpu.NativeBackend;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Log-probs from hidden states, N = 1024 tokens, d = 1024, V = 151,936, on the native backend
 * (OpenBLAS): the materialised path (the product into [N, V] f32 logits, the log-probs forward
 * and in-place backward, the two gradient products) beside the fused op (forward, then the
 * backward over recomputed chunks) and the fused policy loss (one pass), each with its loss-free
 * or loss counterpart. One shot is one step (seconds). Memory, measured: the process's peak
 * resident memory over each iteration (VmHWM, reset through /proc/self/clear_refs before it) above
 * what it held once the tensors both paths need were allocated, before any op ran — so memory an
 * op freed but the allocator kept resident still counts —, printed as "peak-rss-beyond-inputs"
 * per iteration, and the library's own
 * workspace accounting for the fused forms. Each GEMM is 2 N V d = 0.319 TFLOP.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xmx2g"})
@Warmup(iterations = 1)
@Measurement(iterations = 3)
public class LinearHeadBenchmark {
    @Param({"1024"})
    public int n;
    @Param({"1024"})
    public int d;
    @Param({"151936"})
    public int v;
    @Param({"f32", "bf16"})
    public String dtype;
    /** The fused forms' workspace, MiB: 32 holds 55 rows of V = 151,936. */
    @Param({"32"})
    public int workspaceMb;

    private Backend b;
    private HostTensor hidden;
    private HostTensor weight;
    private HostTensor targets;
    private HostTensor gradLogp;
    private HostTensor old;
    private HostTensor adv;
    private HostTensor mask;
    private HostTensor logp;
    private HostTensor lseParts;
    private HostTensor gradHidden;
    private HostTensor gradWeight;
    private LinearLogProbs.Config config;
    private final PolicyLoss.Config loss = PolicyLoss.Config.defaults();
    private long rssBefore;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        b = Backends.open("native");
        DType dt = DType.valueOf(dtype.toUpperCase(java.util.Locale.ROOT));
        hidden = Fill.normal(dt, 1.0, n, d);
        weight = Fill.normal(dt, 1.0 / Math.sqrt(d), v, d);
        targets = HostTensor.allocate(DType.I64, n);
        java.util.SplittableRandom rng = new java.util.SplittableRandom(7);
        for (int i = 0; i < n; i++) {
            targets.setLong(i, rng.nextInt(v));
        }
        gradLogp = Fill.normal(DType.F32, 1.0 / n, n);
        logp = HostTensor.allocate(DType.F32, n);
        lseParts = HostTensor.allocate(DType.F32, n, 2);
        gradHidden = HostTensor.allocate(DType.F32, n, d);
        gradWeight = HostTensor.allocate(DType.F32, v, d).fill(0f);
        config = LinearLogProbs.Config.defaults().withWorkspaceBytes((long) workspaceMb << 20);
        old = HostTensor.allocate(DType.F32, n);
        adv = Fill.normal(DType.F32, 1.0, n);
        mask = HostTensor.allocate(DType.U8, n);
        rssBefore = status("VmRSS:"); // the inputs and outputs both paths hold; what an op keeps afterwards counts
        b.linearLogProbs(config, hidden, weight, targets, logp, null, null, lseParts);
        logp.copyTo(old);
        for (int i = 0; i < n; i++) {
            mask.setLong(i, 1);
        }
        System.out.println("# blas: " + ((NativeBackend) b).blas() + "; " + b.description());
    }

    @Setup(Level.Iteration)
    public void resetPeak() throws IOException {
        Files.writeString(Path.of("/proc/self/clear_refs"), "5"); // VmHWM := VmRSS
        b.resetWorkspacePeak();
    }

    @TearDown(Level.Iteration)
    public void reportPeak() throws IOException {
        System.out.printf("# peak-rss-beyond-inputs: %.1f MB; library workspace peak: %.1f MB%n",
                (status("VmHWM:") - rssBefore) / 1e6, b.workspacePeakBytes() / 1e6);
    }

    private static long status(String key) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith(key)) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no " + key + " in /proc/self/status");
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (HostTensor t : new HostTensor[] {hidden, weight, targets, gradLogp, old, adv, mask, logp, lseParts, gradHidden,
                gradWeight}) {
            t.close();
        }
        b.close();
    }

    /** The product into [N, V], the log-probs forward and backward, the two gradient products. */
    @Benchmark
    public Tensor materialised() {
        try (Tensor logits = b.allocate(DType.F32, n, v)) {
            b.matmul(false, true, 1f, hidden, weight, 0f, logits);
            b.logProbs(LogProbs.Config.defaults(), logits, targets, logp, null, null, lseParts);
            b.logProbsBackward(LogProbs.Config.defaults(), logits, targets, lseParts, null, gradLogp, null, logits);
            b.matmul(false, false, 1f, logits, weight, 0f, gradHidden);
            b.matmul(true, false, 1f, logits, hidden, 1f, gradWeight);
        }
        return gradHidden;
    }

    /** The fused op: its forward, then its backward over recomputed chunks (four products per chunk). */
    @Benchmark
    public Tensor fused() {
        b.linearLogProbs(config, hidden, weight, targets, logp, null, null, lseParts);
        b.linearLogProbsBackward(config, hidden, weight, targets, lseParts, null, gradLogp, null, gradHidden, gradWeight);
        return gradHidden;
    }

    /** The materialised path with the policy loss between forward and backward. */
    @Benchmark
    public Tensor materialisedLoss() {
        try (Tensor logits = b.allocate(DType.F32, n, v); HostTensor g = HostTensor.allocate(DType.F32, n)) {
            b.matmul(false, true, 1f, hidden, weight, 0f, logits);
            b.logProbs(LogProbs.Config.defaults(), logits, targets, logp, null, null, lseParts);
            b.policyLoss(loss, new PolicyLoss.Inputs(logp, old, adv, mask), g, null);
            b.logProbsBackward(LogProbs.Config.defaults(), logits, targets, lseParts, null, g, null, logits);
            b.matmul(false, false, 1f, logits, weight, 0f, gradHidden);
            b.matmul(true, false, 1f, logits, hidden, 1f, gradWeight);
        }
        return gradHidden;
    }

    /** The fused policy loss: one pass over W, three products per chunk. */
    @Benchmark
    public PolicyLoss.Stats fusedLoss() {
        return b.linearPolicyLoss(config, loss, new LinearLogProbs.LossInputs(hidden, weight, targets, old, adv, mask), logp,
                gradHidden, gradWeight);
    }
}
