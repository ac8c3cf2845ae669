package example;

import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.util.SplittableRandom;

/** Random inputs of the shapes a trainer has, for the examples. */
final class Data {
    private Data() {}

    static HostTensor normal(SplittableRandom rng, double scale, long... shape) {
        HostTensor t = HostTensor.allocate(DType.F32, shape);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, (float) (rng.nextGaussian() * scale));
        }
        return t;
    }

    /** Log-probs of sampled tokens: negative, most near 0. */
    static HostTensor logProbs(SplittableRandom rng, long n) {
        HostTensor t = HostTensor.allocate(DType.F32, n);
        for (long i = 0; i < n; i++) {
            t.setFloat(i, (float) (-Math.abs(rng.nextGaussian()) - 0.01));
        }
        return t;
    }

    /** The same shifted by noise of the given scale (another policy's log-probs of the same tokens). */
    static HostTensor near(SplittableRandom rng, HostTensor logp, double scale) {
        HostTensor t = HostTensor.allocate(DType.F32, logp.numel());
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, (float) (logp.getFloat(i) + rng.nextGaussian() * scale));
        }
        return t;
    }

    /** [S, T] response masks: each row a prefix of random length (at least 1). */
    static HostTensor prefixMask(SplittableRandom rng, int s, int t) {
        HostTensor m = HostTensor.allocate(DType.F32, s, t);
        for (int i = 0; i < s; i++) {
            int len = 1 + rng.nextInt(t);
            for (int j = 0; j < t; j++) {
                m.setFloat((long) i * t + j, j < len ? 1 : 0);
            }
        }
        return m;
    }
}
