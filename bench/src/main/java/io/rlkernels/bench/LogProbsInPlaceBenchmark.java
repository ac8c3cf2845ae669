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
 * The log-probs backward into the 16-bit logits themselves (the in-place gradient a trainer uses
 * to save the [N, V] f32 buffer), beside LogProbsBenchmark.backward, which writes a separate f32
 * gradient from the same logits. Bytes: in place reads 2 and writes 2 per element (the store hits
 * the line the load brought in); separate reads 2 and streams 4. The logits are restored before
 * every call, untimed (the call overwrote them).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class LogProbsInPlaceBenchmark {
    @Param({"native"})
    public String backend;

    @Param({"4096"})
    public int rows;

    @Param({"32000", "151936"})
    public int vocab;

    @Param({"bf16"})
    public String dtype;

    private Backend b;
    private final LogProbs.Config config = LogProbs.Config.defaults();
    private HostTensor pristine;
    private Tensor logits;
    private Tensor targets;
    private Tensor lseParts;
    private Tensor gradLogp;

    @Setup(Level.Trial)
    public void setUp() {
        b = Backends.open(backend);
        DType dt = DType.valueOf(dtype.toUpperCase(java.util.Locale.ROOT));
        pristine = Fill.normal(dt, 3.0, rows, vocab);
        try (HostTensor y = Fill.targets(rows, vocab); HostTensor g = Fill.normal(DType.F32, 1.0, rows)) {
            logits = b.upload(pristine);
            if (logits == pristine) { // a host backend uses the tensor itself: keep a copy to restore from
                logits = HostTensor.allocate(dt, rows, vocab);
                pristine.copyTo((HostTensor) logits);
            }
            targets = b.upload(y);
            gradLogp = b.upload(g);
        }
        lseParts = b.allocate(DType.F32, rows, 2);
        try (Tensor logp = b.allocate(DType.F32, rows)) {
            b.logProbs(config, logits, targets, logp, null, null, lseParts);
        }
    }

    @Setup(Level.Invocation)
    public void restore() {
        if (logits instanceof HostTensor h) {
            pristine.copyTo(h);
        }
    }

    @Benchmark
    public Tensor backwardInPlace() {
        b.logProbsBackward(config, logits, targets, lseParts, null, gradLogp, null, logits);
        return logits;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (Tensor t : new Tensor[] {logits, targets, lseParts, gradLogp, pristine}) {
            t.close();
        }
        b.close();
    }
}
