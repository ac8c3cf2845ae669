package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.reference.LogProbsReference;
import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Row offsets past 2^31 elements (ARCHITECTURE §4: 16,384 tokens x 151,936 vocabulary overflow an int).
 * bf16 logits [14,200, 151,936]: 2.16e9 elements, 4.3 GB; the last rows start beyond 2^31.
 * The emulated backend is left out (too slow at this size); native and cuda run it.
 */
class LogProbsLargeTest {
    private static final long V = 151_936;
    private static final long N = 14_200;

    /** The native backend on the variant this CPU picks (the offsets are the same code on every variant), and cuda. */
    static Stream<BackendUnderTest> nativeAndCuda() {
        return Stream.concat(Stream.of(BackendUnderTest.nativeAuto()),
                BackendUnderTest.fast().filter(b -> b.kind() == BackendKind.CUDA));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("nativeAndCuda")
    void rowsBeyondTwoToThe31Elements(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        long[] checkedRows = {0, N / 2, N - 2, N - 1};
        LogProbs.Config c = LogProbs.Config.defaults();
        try (Backend b = bt.open(); HostTensor logits = HostTensor.allocate(DType.BF16, N, V);
             HostTensor targets = TestData.targets(rng, DType.I64, N, V, 0.0, c.ignoreIndex());
             HostTensor logp = HostTensor.allocate(DType.F32, N); HostTensor lse = HostTensor.allocate(DType.F32, N);
             HostTensor entropy = HostTensor.allocate(DType.F32, N); HostTensor lseParts = HostTensor.allocate(DType.F32, N, 2)) {
            logits.segment().fill((byte) 0x3F); // every logit 0x3F3F = 0.746 in bf16
            double[][] rows = new double[checkedRows.length][(int) V];
            for (int r = 0; r < checkedRows.length; r++) {
                for (long j = 0; j < V; j++) {
                    logits.setFloat(checkedRows[r] * V + j, (float) (rng.nextGaussian() * 3));
                    rows[r][(int) j] = logits.getFloat(checkedRows[r] * V + j);
                }
            }
            logp.fill(Float.NaN);
            b.logProbs(c, logits, targets, logp, lse, entropy, lseParts);
            for (int r = 0; r < checkedRows.length; r++) {
                long i = checkedRows[r];
                LogProbsReference.Row want = LogProbsReference.logProbsRow(rows[r], (int) targets.getLong(i), 1.0);
                String ctx = bt + " row " + i + " (offset " + i * V + ") seed=" + seed;
                Tolerance.F32_OUTPUT.assertClose(want.logp(), logp.getFloat(i), ctx + " logp");
                Tolerance.F32_OUTPUT.assertClose(want.entropy(), entropy.getFloat(i), ctx + " entropy");
            }
            // an in-place backward over the whole buffer; the last row's gradient sums to zero when only g is given
            try (HostTensor g = HostTensor.allocate(DType.F32, N).fill(1f)) {
                b.logProbsBackward(c, logits, targets, lseParts, null, g, null, logits);
            }
            long last = N - 1;
            int y = (int) targets.getLong(last);
            double[] dz = new double[(int) V];
            LogProbsReference.logProbsGradRow(rows[rows.length - 1], y, 1.0, lseParts.getFloat(2 * last), lseParts.getFloat(2 * last + 1),
                    0, 1, 0, dz);
            for (long j = 0; j < V; j += 997) {
                assertEquals(dz[(int) j], logits.getFloat(last * V + j), Math.abs(dz[(int) j]) / 128 + 1e-7,
                        bt + " last row gradient at " + j + " seed=" + seed);
            }
            assertEquals(dz[y], logits.getFloat(last * V + y), Math.abs(dz[y]) / 128, bt + " last row target gradient");
        }
    }
}
