package io.rlkernels.bench;

import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

/** Benchmark inputs: random values, filled fast (a random block repeated) since gigabytes are needed. */
final class Fill {
    private static final int BLOCK = 1 << 20; // elements of fresh randomness, then repeated (not a cache-sized pattern)

    private Fill() {}

    static HostTensor normal(DType dtype, double scale, long... shape) {
        HostTensor t = HostTensor.allocate(dtype, shape);
        SplittableRandom rng = new SplittableRandom(42);
        long n = t.numel();
        long first = Math.min(n, BLOCK + 7); // odd length, so rows do not all start on the same values
        for (long i = 0; i < first; i++) {
            t.setFloat(i, (float) (rng.nextGaussian() * scale));
        }
        MemorySegment s = t.segment();
        long blockBytes = first * dtype.byteSize();
        for (long off = blockBytes; off < t.byteSize(); off += blockBytes) {
            MemorySegment.copy(s, 0, s, off, Math.min(blockBytes, t.byteSize() - off));
        }
        return t;
    }

    static HostTensor targets(long rows, long vocab) {
        HostTensor t = HostTensor.allocate(DType.I64, rows);
        SplittableRandom rng = new SplittableRandom(7);
        for (long i = 0; i < rows; i++) {
            t.setLong(i, rng.nextLong(vocab));
        }
        return t;
    }
}
