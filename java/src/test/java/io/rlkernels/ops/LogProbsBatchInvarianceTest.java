package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.fail;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.nativecpu.NativeBackend;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Batch invariance: a row's log-prob, lse, entropy, lseParts and gradient are bitwise the same
 * whatever the batch it comes in — alone, at another position (so, on a GPU, at another alignment:
 * V = 1001 makes rows start on every residue of 16 bytes), on one thread or two (native), with one
 * block or many (CUDA). The mismatch trainers chase between their rollout engine and their trainer
 * cannot come from here.
 */
class LogProbsBatchInvarianceTest {
    private static final long V = 1001;
    private static final int N = 23;
    private static final int[] ROWS = {0, 1, 11, 22};

    static Stream<BackendUnderTest> fast() {
        return BackendUnderTest.fast();
    }

    /** Everything the forward and backward write for a batch, on the host. */
    record Outputs(HostTensor logp, HostTensor lse, HostTensor entropy, HostTensor parts, HostTensor grad) implements AutoCloseable {
        @Override
        public void close() {
            for (HostTensor t : new HostTensor[] {logp, lse, entropy, parts, grad}) {
                t.close();
            }
        }
    }

    private static Outputs run(Backend b, HostTensor z, HostTensor y, HostTensor g, HostTensor h) {
        long n = z.dim(0);
        LogProbs.Config c = LogProbs.Config.defaults().withTemperature(0.8f);
        try (Tensor dz = b.upload(z); Tensor dy = b.upload(y); Tensor dg = b.upload(g); Tensor dh = b.upload(h);
             LogProbs.Result r = b.logProbs(c, dz, dy, true);
             Tensor grad = b.logProbsBackward(c, dz, dy, r.lseParts(), r.entropy(), dg, dh)) {
            Outputs out = new Outputs(HostTensor.allocate(DType.F32, n), HostTensor.allocate(DType.F32, n),
                    HostTensor.allocate(DType.F32, n), HostTensor.allocate(DType.F32, n, 2), HostTensor.allocate(DType.F32, n, V));
            b.download(r.logp(), out.logp());
            b.download(r.lse(), out.lse());
            b.download(r.entropy(), out.entropy());
            b.download(r.lseParts(), out.parts());
            b.download(grad, out.grad());
            return out;
        }
    }

    /** Rows {@code from .. from + count) of a [n, ...] tensor, copied. */
    private static HostTensor rows(HostTensor t, long from, long count) {
        long[] shape = t.shape();
        long width = t.numel() / shape[0];
        shape[0] = count;
        HostTensor out = HostTensor.allocate(t.dtype(), shape);
        java.lang.foreign.MemorySegment.copy(t.segment(), from * width * t.dtype().byteSize(), out.segment(), 0,
                count * width * t.dtype().byteSize());
        return out;
    }

    /** {@code a} rows then {@code b} rows. */
    private static HostTensor concat(HostTensor a, HostTensor b) {
        long[] shape = a.shape();
        shape[0] += b.dim(0);
        HostTensor out = HostTensor.allocate(a.dtype(), shape);
        java.lang.foreign.MemorySegment.copy(a.segment(), 0, out.segment(), 0, a.byteSize());
        java.lang.foreign.MemorySegment.copy(b.segment(), 0, out.segment(), a.byteSize(), b.byteSize());
        return out;
    }

    private static void assertSameRow(String ctx, Outputs want, int wantRow, Outputs got, int gotRow) {
        same(ctx + " logp", want.logp(), wantRow, got.logp(), gotRow, 1);
        same(ctx + " lse", want.lse(), wantRow, got.lse(), gotRow, 1);
        same(ctx + " entropy", want.entropy(), wantRow, got.entropy(), gotRow, 1);
        same(ctx + " lseParts", want.parts(), wantRow, got.parts(), gotRow, 2);
        same(ctx + " gradient", want.grad(), wantRow, got.grad(), gotRow, V);
    }

    private static void same(String what, HostTensor a, int ra, HostTensor b, int rb, long width) {
        for (long j = 0; j < width; j++) {
            float x = a.getFloat(ra * width + j);
            float y = b.getFloat(rb * width + j);
            if (Float.floatToRawIntBits(x) != Float.floatToRawIntBits(y)) {
                fail(what + "[" + j + "]: " + x + " in the batch, " + y + " here: not bitwise the same");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fast")
    void aRowIsBitwiseTheSameWhateverTheBatch(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
            SplittableRandom rng = new SplittableRandom(seed);
            String ctx = bt + " " + dtype + " seed=" + seed;
            try (Backend b = bt.open(); HostTensor z = TestData.logits(rng, dtype, N, V, 3.0);
                 HostTensor y = TestData.targets(rng, DType.I32, N, V, 0, -100); HostTensor g = TestData.normal(rng, N, 1.0);
                 HostTensor h = TestData.normal(rng, N, 1.0); HostTensor pz = TestData.logits(rng, dtype, 5, V, 3.0);
                 HostTensor py = TestData.targets(rng, DType.I32, 5, V, 0, -100); HostTensor pg = TestData.normal(rng, 5, 1.0);
                 HostTensor ph = TestData.normal(rng, 5, 1.0); Outputs batch = run(b, z, y, g, h)) {
                for (int r : ROWS) {
                    try (HostTensor z1 = rows(z, r, 1); HostTensor y1 = rows(y, r, 1); HostTensor g1 = rows(g, r, 1);
                         HostTensor h1 = rows(h, r, 1); Outputs alone = run(b, z1, y1, g1, h1)) {
                        assertSameRow(ctx + " row " + r + " alone", batch, r, alone, 0);
                    }
                    // five other rows first: row r is then at r + 5 (another alignment of its start)
                    try (HostTensor z2 = concat(pz, z); HostTensor y2 = concat(py, y); HostTensor g2 = concat(pg, g);
                         HostTensor h2 = concat(ph, h); Outputs shifted = run(b, z2, y2, g2, h2)) {
                        assertSameRow(ctx + " row " + r + " at " + (r + 5), batch, r, shifted, r + 5);
                    }
                }
                if (bt.kind() == BackendKind.NATIVE) { // one thread instead of every core
                    NativeBackend nb = (NativeBackend) b;
                    int threads = nb.threads();
                    nb.setThreads(1);
                    try (Outputs single = run(b, z, y, g, h)) {
                        for (int r : ROWS) {
                            assertSameRow(ctx + " row " + r + " on 1 thread", batch, r, single, r);
                        }
                    } finally {
                        nb.setThreads(threads);
                    }
                } else { // one block for every row (grid-stride) instead of a block a row
                    String saved = System.setProperty("rlk.cuda.maxGrid", "1");
                    try (Outputs oneBlock = run(b, z, y, g, h)) {
                        for (int r : ROWS) {
                            assertSameRow(ctx + " row " + r + " with one block", batch, r, oneBlock, r);
                        }
                    } finally {
                        if (saved == null) {
                            System.clearProperty("rlk.cuda.maxGrid");
                        } else {
                            System.setProperty("rlk.cuda.maxGrid", saved);
                        }
                    }
                }
            }
        }
    }
}
