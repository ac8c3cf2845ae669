package io.rlkernels.backend.nativecpu;

import static io.rlkernels.backend.nativecpu.NativeCalls.check;
import static io.rlkernels.backend.nativecpu.NativeCalls.host;

import io.rlkernels.backend.nativecpu.internal.NativeLibrary;
import io.rlkernels.backend.nativecpu.internal.OpenBlas;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.internal.MatmulChecks;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Optional;
import java.util.function.LongConsumer;

/**
 * The matrix product of the native backend (contract: {@code Backend.matmul}): OpenBLAS's
 * {@code cblas_sgemm} when it loads ({@link OpenBlas}), else librlkernels' own kernel
 * (rlk_matmul, a tenth of the speed). A 16-bit (bf16, f16) operand is widened to f32 a tile of
 * its stored rows at a time (rlk_widen, exact) — at most {@link #TILE_BYTES} of f32 scratch per
 * operand, so a bf16 LM head is never copied whole — and each tile is one BLAS call: tiles of
 * op(B)'s columns or op(A)'s rows write their own block of C; tiles along k add into C.
 */
final class MatmulCalls {
    /** The f32 scratch one widened operand tile may take. */
    static final long TILE_BYTES = 8L << 20;

    private final NativeLibrary lib;
    private final Optional<OpenBlas> blas;
    private final LongConsumer workspace;

    /**
     * {@code workspace} counts the widened tiles (bytes taken, then given back); OpenBLAS is used
     * unless the system property {@code rlkernels.blas} is {@code own} (for tests and benchmarks).
     */
    MatmulCalls(NativeCalls calls, LongConsumer workspace) {
        this.lib = calls.lib();
        this.blas = "own".equals(System.getProperty("rlkernels.blas")) ? Optional.empty() : OpenBlas.get();
        this.workspace = workspace;
        blas.ifPresent(b -> b.setThreads(lib.maxThreads()));
    }

    /** "OpenBLAS 0.3.31 (Zen)", or the fallback and why OpenBLAS is not used. */
    String description() {
        return blas.map(b -> b.config().split(" ")[0] + " " + b.config().split(" ")[1] + " (" + b.core() + ")")
                .orElse("own kernel (" + (OpenBlas.get().isPresent() ? "rlkernels.blas=own" : OpenBlas.unavailableReason()) + ")");
    }

    void setThreads(int n) {
        blas.ifPresent(b -> b.setThreads(n));
    }

    void matmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        MatmulChecks.Dims d = MatmulChecks.check(transA, transB, alpha, a, b, beta, c);
        HostTensor ha = host("a", a);
        HostTensor hb = host("b", b);
        HostTensor hc = host("c", c);
        if (ha.isHeap() || hb.isHeap() || hc.isHeap()) {
            throw Check.fail("a, b, c", "native memory (HostTensor.allocate): a matrix product is too long a call to pin Java arrays",
                    "a Java array");
        }
        if (d.m() == 0 || d.n() == 0) {
            return;
        }
        for (long dim : new long[] {d.m(), d.n(), d.k()}) {
            if (dim > Integer.MAX_VALUE) {
                throw Check.fail("a, b", "dimensions below 2^31 (the BLAS's int)", d.m() + " x " + d.n() + " x " + d.k());
            }
        }
        Operand opA = new Operand(ha.segment(), a.dtype(), transA ? d.m() : d.k());
        Operand opB = new Operand(hb.segment(), b.dtype(), transB ? d.k() : d.n());
        try (Scratch scratch = new Scratch()) {
            gemm(scratch, transA, transB, d.m(), d.n(), d.k(), alpha, opA, opB, beta, hc.segment(), d.n());
        }
    }

    /** An operand as stored: its memory from its first element, dtype and leading dimension. */
    private record Operand(MemorySegment segment, DType dtype, long ld) {
        boolean wide() {
            return dtype == DType.F32;
        }

        /** The operand from stored row r (columns from col): the segment sliced there. */
        Operand from(long row, long col) {
            return new Operand(segment.asSlice((row * ld + col) * dtype.byteSize()), dtype, ld);
        }
    }

    /**
     * C = alpha op(A) op(B) + beta C, C [m, n] with leading dimension ldc: a 16-bit operand too
     * large for one tile is split along its stored rows, each piece one call; a piece that fits
     * is widened into scratch and the BLAS (or the own kernel) multiplies.
     */
    private void gemm(Scratch scratch, boolean ta, boolean tb, long m, long n, long k, float alpha, Operand a, Operand b, float beta,
                      MemorySegment c, long ldc) {
        long rowsA = ta ? k : m;
        long colsA = ta ? m : k;
        if (!a.wide() && rowsA * colsA * 4 > TILE_BYTES && rowsA > 1) {
            long step = Math.max(1, TILE_BYTES / (4 * colsA));
            for (long r0 = 0; r0 < rowsA; r0 += step) {
                long r = Math.min(step, rowsA - r0);
                if (!ta) { // rows of A are rows of C
                    gemm(scratch, false, tb, r, n, k, alpha, a.from(r0, 0), b, beta, c.asSlice(r0 * ldc * 4), ldc);
                } else { // rows of A are k: a slice of the sum
                    gemm(scratch, true, tb, m, n, r, alpha, a.from(r0, 0), tb ? b.from(0, r0) : b.from(r0, 0), r0 == 0 ? beta : 1f,
                            c, ldc);
                }
            }
            return;
        }
        long rowsB = tb ? n : k;
        long colsB = tb ? k : n;
        if (!b.wide() && rowsB * colsB * 4 > TILE_BYTES && rowsB > 1) {
            long step = Math.max(1, TILE_BYTES / (4 * colsB));
            for (long r0 = 0; r0 < rowsB; r0 += step) {
                long r = Math.min(step, rowsB - r0);
                if (tb) { // rows of B are columns of C
                    gemm(scratch, ta, true, m, r, k, alpha, a, b.from(r0, 0), beta, c.asSlice(r0 * 4), ldc);
                } else { // rows of B are k
                    gemm(scratch, ta, false, m, n, r, alpha, ta ? a.from(r0, 0) : a.from(0, r0), b.from(r0, 0), r0 == 0 ? beta : 1f,
                            c, ldc);
                }
            }
            return;
        }
        MemorySegment wa = widened(scratch, 0, a, rowsA, colsA);
        long lda = Math.max(1, a.wide() ? a.ld() : colsA); // the BLAS wants ld >= 1 even for an empty operand
        MemorySegment wb = widened(scratch, 1, b, rowsB, colsB);
        long ldb = Math.max(1, b.wide() ? b.ld() : colsB);
        if (blas.isPresent()) {
            blas.get().sgemm(ta, tb, (int) m, (int) n, (int) k, alpha, wa, (int) lda, wb, (int) ldb, beta, c, (int) ldc);
        } else {
            own(ta, tb, m, n, k, alpha, wa, lda, wb, ldb, beta, c, ldc);
        }
    }

    /**
     * One call's f32 tiles: a buffer per operand, grown to the largest tile and reused for every
     * tile of the call (no allocation, no page faults per tile), counted as workspace while it lives.
     */
    private final class Scratch implements AutoCloseable {
        private final Arena arena = Arena.ofConfined();
        private final MemorySegment[] buffers = new MemorySegment[2];
        private long bytes;

        MemorySegment get(int operand, long size) {
            MemorySegment buf = buffers[operand];
            if (buf == null || buf.byteSize() < size) {
                buf = arena.allocate(size, 64);
                workspace.accept(size);
                bytes += size;
                buffers[operand] = buf;
            }
            return buf;
        }

        @Override
        public void close() {
            arena.close();
            workspace.accept(-bytes);
        }
    }

    /** The operand's rows x cols block as tight f32: itself when already f32, else widened into its scratch buffer. */
    private MemorySegment widened(Scratch scratch, int operand, Operand x, long rows, long cols) {
        if (x.wide()) {
            return x.segment();
        }
        MemorySegment out = scratch.get(operand, Math.max(4, rows * cols * 4));
        if (x.ld() == cols) {
            check(lib.widen(x.dtype().code(), x.segment(), rows * cols, out), "rlk_widen");
            return out;
        }
        for (long r = 0; r < rows; r++) {
            check(lib.widen(x.dtype().code(), x.from(r, 0).segment(), cols, out.asSlice(r * cols * 4)), "rlk_widen");
        }
        return out;
    }

    /** The own kernel takes tight operands: a strided one (a tile's view of a larger matrix) is copied tight first. */
    private void own(boolean ta, boolean tb, long m, long n, long k, float alpha, MemorySegment a, long lda, MemorySegment b,
                     long ldb, float beta, MemorySegment c, long ldc) {
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment ta0 = tight(tmp, a, ta ? k : m, ta ? m : k, lda);
            MemorySegment tb0 = tight(tmp, b, tb ? n : k, tb ? k : n, ldb);
            MemorySegment tc = tight(tmp, c, m, n, ldc);
            check(lib.matmul(ta, tb, m, n, k, alpha, ta0, tb0, beta, tc), "rlk_matmul");
            if (tc != c) {
                for (long r = 0; r < m; r++) {
                    MemorySegment.copy(tc, r * n * 4, c, r * ldc * 4, n * 4);
                }
            }
        }
    }

    private static MemorySegment tight(Arena tmp, MemorySegment x, long rows, long cols, long ld) {
        if (ld == cols) {
            return x;
        }
        MemorySegment out = tmp.allocate(Math.max(4, rows * cols * 4), 64);
        for (long r = 0; r < rows; r++) {
            MemorySegment.copy(x, r * ld * 4, out, r * cols * 4, cols * 4);
        }
        return out;
    }
}
