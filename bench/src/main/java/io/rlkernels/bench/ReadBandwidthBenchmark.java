package io.rlkernels.bench;

import io.rlkernels.backend.nativecpu.internal.NativeLibrary;
import io.rlkernels.tensor.DType;
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
 * This machine's read bandwidth: a plain sum over a buffer far larger than the caches, with every
 * core and the widest vectors (native/src/probe.c). The ceiling the CPU kernels are measured against.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class ReadBandwidthBenchmark {
    @Param({"536870912"}) // 2 GiB of f32
    public long elements;

    private HostTensor buffer;
    private NativeLibrary lib;

    @Setup(Level.Trial)
    public void setUp() {
        lib = NativeLibrary.get().orElseThrow(() -> new IllegalStateException(NativeLibrary.unavailableReason()));
        buffer = Fill.normal(DType.F32, 1.0, elements);
    }

    @Benchmark
    public double sum() {
        return lib.sumF32(buffer.segment(), elements);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        buffer.close();
    }
}
