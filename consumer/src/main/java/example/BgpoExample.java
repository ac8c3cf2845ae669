package example;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.backend.BgpoAccumulator;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.util.SplittableRandom;

/**
 * The README's BGPO snippet: 8 responses of 64 tokens, V = 1000, n_t = 4 Monte Carlo samples. A
 * model would give the logits of each sample (its masked rows hidden); random logits stand in.
 */
public final class BgpoExample {
    private static final SplittableRandom RNG = new SplittableRandom(5);
    private static final int ROWS = 8 * 64;
    private static final int VOCAB = 1000;

    private BgpoExample() {}

    /** The stand-in model's logits [R, V] of Monte Carlo sample j (here: random, near those of the old policy). */
    private static HostTensor logitsOf(int j) {
        return Data.normal(RNG, 1 + 0.01 * j, ROWS, VOCAB);
    }

    public static void main(String[] args) {
        int nT = 4;
        long seed = 42;
        int[] ids = new int[ROWS];
        for (int i = 0; i < ROWS; i++) {
            ids[i] = i / 64;
        }
        try (Backend backend = Backends.auto(); HostTensor rowSeqIds = HostTensor.of(ids);
             HostTensor targets = HostTensor.of(RNG.ints(ROWS, 0, VOCAB).toArray()); HostTensor advantages = Data.normal(RNG, 1, 8)) {
            HostTensor[] oldValues = new HostTensor[nT];
            for (int j = 0; j < nT; j++) {
                oldValues[j] = HostTensor.allocate(DType.F32, 8);
            }
            // README: bgpo
            try (SequenceLayout rows = SequenceLayout.ofSeqIds(rowSeqIds);            // response rows -> sequences
                 Bgpo.Samples masks = Bgpo.sample(seed, nT, rows, Bgpo.Weighting.PER_MASKED_TOKEN);
                 BgpoAccumulator acc = new BgpoAccumulator(backend, Bgpo.Config.defaults(nT), rows, targets, advantages)) {
                for (int j = 0; j < nT; j++) { // first the old policy's values, on the same masks (its logits only read)
                    try (HostTensor oldLogits = logitsOf(j)) {
                        acc.values(oldLogits, masks.mask(j), masks.weights(j), oldValues[j]);
                    }
                }
                for (int j = 0; j < nT; j++) {
                    try (HostTensor logits = logitsOf(j)) {                          // the model on sample j's masks
                        acc.step(logits, masks.mask(j), masks.weights(j), oldValues[j], logits);   // gradient in place
                        // back-propagate logits' gradient through the model now; the logits can go
                    }
                }
                Bgpo.Stats stats = acc.stats();                                      // loss, clip fraction, d
            // README end
                System.out.printf("bgpo on %s: loss %.5f, clip fraction %.3f, %d bytes held%n", backend, stats.loss(),
                        stats.clipFraction(), acc.allocatedBytes());
            // README: bgpo
            }
            // README end
            for (HostTensor o : oldValues) {
                o.close();
            }
        }
    }
}
