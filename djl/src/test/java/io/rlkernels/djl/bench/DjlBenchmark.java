package io.rlkernels.djl.bench;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.djl.DjlAutograd;
import io.rlkernels.djl.DjlTensors;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.HostTensor;
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
 * Token log-probs on DJL arrays [N, V] f32: DJL alone (log_softmax and a gather, and its autograd for
 * the gradient of sum(logp) with respect to the logits) against DJL + this library (the native
 * backend over views of the same arrays: the forward, and the backward into an f32 NDArray).
 * bf16 is not measured: DJL 0.36's PyTorch engine aborts the JVM on creating a bf16 array.
 * Run by bin/bench-djl (with and without THP_MEM_ALLOC_ENABLE=1 for libtorch).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class DjlBenchmark {
    @Param({"4096"})
    public int rows;

    @Param({"32000", "151936"})
    public int vocab;

    private NDManager manager;
    private Backend backend;
    private NDArray logits;
    private NDArray targets;
    private NDArray targets64;
    private NDArray leaf;
    private final LogProbs.Config config = LogProbs.Config.defaults();

    @Setup(Level.Trial)
    public void setUp() {
        System.setProperty("ai.djl.offline", "true");
        manager = NDManager.newBaseManager();
        backend = Backends.open("native");
        logits = manager.randomNormal(new Shape(rows, vocab)).mul(3f);
        int[] ids = new int[rows];
        for (int i = 0; i < rows; i++) {
            ids[i] = (int) ((i * 2654435761L) % vocab);
        }
        targets = manager.create(ids);
        targets64 = targets.toType(DataType.INT64, false).reshape(rows, 1);
        leaf = logits.duplicate();
        leaf.setRequiresGradient(true);
    }

    @Benchmark
    public float djlForward() {
        try (NDArray ls = logits.logSoftmax(1); NDArray lp = ls.gather(targets64, 1)) { // [N, V] freed each call, as a step would
            return lp.getFloat(0, 0);
        }
    }

    @Benchmark
    public float libraryForward() {
        try (LogProbs.Result r = DjlAutograd.logProbs(backend, config, logits, targets)) {
            return ((HostTensor) r.logp()).getFloat(0);
        }
    }

    /** d sum(logp) / d logits by DJL's autograd (into the leaf's gradient buffer, which DJL accumulates into). */
    @Benchmark
    public float djlForwardBackward() {
        try (GradientCollector gc = Engine.getInstance().newGradientCollector();
             NDArray ls = leaf.logSoftmax(1); NDArray lp = ls.gather(targets64, 1); NDArray sum = lp.sum()) {
            gc.backward(sum);
            return leaf.getGradient().getFloat(0, 0);
        }
    }

    /** The same gradient by the library: the forward, then the backward into DJL's own f32 array. */
    @Benchmark
    public float libraryForwardBackward() {
        try (NDManager step = manager.newSubManager(); HostTensor g = HostTensor.allocate(io.rlkernels.tensor.DType.F32, rows).fill(1f);
             LogProbs.Result r = DjlAutograd.logProbs(backend, config, logits, targets)) {
            NDArray dlogits = step.zeros(logits.getShape(), DataType.FLOAT32);
            try (HostTensor z = DjlTensors.input("logits", logits); HostTensor y = DjlTensors.input("targets", targets);
                 HostTensor out = DjlTensors.output("dlogits", dlogits)) {
                backend.logProbsBackward(config, z, y, r.lseParts(), null, g, null, out);
            }
            return dlogits.getFloat(0, 0);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        manager.close();
    }
}
