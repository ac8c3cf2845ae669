package io.rlkernels.bench;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Token log-probs forward and backward on the CPU backends. Bytes moved per op: the
 * forward reads the logits once (N*V*element size); the backward reads them once and writes an
 * f32 gradient. {@link BenchReport} turns the times into GB/s beside the read-bandwidth probe.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class LogProbsBenchmark {
    @Param({"native", "reference"})
    public String backend;

    @Param({"4096"})
    public int rows;

    @Param({"32000", "151936"})
    public int vocab;

    @Param({"f32", "bf16"})
    public String dtype;

    private Backend b;
    private final LogProbs.Config config = LogProbs.Config.defaults();
    private Tensor logits;
    private Tensor targets;
    private Tensor logp;
    private Tensor lse;
    private Tensor entropy;
    private Tensor lseParts;
    private Tensor gradLogp;
    private Tensor gradLogits;

    @Setup(Level.Trial)
    public void setUp() {
        b = Backends.open(backend);
        DType dt = DType.valueOf(dtype.toUpperCase(java.util.Locale.ROOT));
        try (HostTensor z = Fill.normal(dt, 3.0, rows, vocab); HostTensor y = Fill.targets(rows, vocab);
             HostTensor g = Fill.normal(DType.F32, 1.0, rows)) {
            logits = b.upload(z);
            targets = b.upload(y);
            gradLogp = b.upload(g);
        }
        logp = b.allocate(DType.F32, rows);
        lse = b.allocate(DType.F32, rows);
        entropy = b.allocate(DType.F32, rows);
        lseParts = b.allocate(DType.F32, rows, 2);
        gradLogits = b.allocate(DType.F32, rows, vocab);
        b.logProbs(config, logits, targets, logp, lse, entropy, lseParts);
    }

    @Benchmark
    public Tensor forward() {
        b.logProbs(config, logits, targets, logp, lse, entropy, lseParts); // what a training step writes
        return logp;
    }

    @Benchmark
    public Tensor backward() {
        b.logProbsBackward(config, logits, targets, lseParts, null, gradLogp, null, gradLogits);
        return gradLogits;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (Tensor t : new Tensor[] {logits, targets, logp, lse, entropy, gradLogp, gradLogits}) {
            t.close();
        }
        b.close();
    }

    /** Bytes an op must move at least (ARCHITECTURE §9). */
    static double bytesMoved(String op, long rows, long vocab, String dtype) {
        long element = dtype.equals("f32") ? 4 : 2;
        long logits = rows * vocab * element;
        return op.equals("forward") ? logits + rows * 12.0 : logits + rows * vocab * 4.0 + rows * 8.0;
    }
}
