package io.rlkernels.backend.internal;

import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DeviceTensor;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/** How the log-probs from hidden states split a batch into chunks of rows (not API; tests check it). */
public final class LinearChunks {
    private LinearChunks() {}

    /**
     * Chunk boundaries of at most {@code step} rows: fixed steps without sequences; whole
     * sequences packed greedily with them; null when a sequence is longer than a chunk.
     */
    public static long[] bounds(SequenceLayout sequences, long n, long step) {
        java.util.List<Long> out = new java.util.ArrayList<>();
        out.add(0L);
        if (sequences == null) {
            for (long r = step; r < n; r += step) {
                out.add(r);
            }
            if (n > 0) {
                out.add(n);
            }
        } else {
            HostTensor offsets = sequences.offsets();
            long start = 0;
            for (int s = 0; s < sequences.sequences(); s++) {
                long end = offsets.getLong(s + 1);
                if (end - offsets.getLong(s) > step) {
                    return null;
                }
                if (end - start > step) {
                    start = offsets.getLong(s);
                    out.add(start);
                }
            }
            if (n > start) {
                out.add(n);
            }
        }
        if (out.size() == 1) {
            out.add(0L); // no rows: one empty chunk, so the loss op still reports its statistics
        }
        return out.stream().mapToLong(Long::longValue).toArray();
    }


    /** Rows [from, from + count) of a rank-1 or rank-2 tensor as a view of its memory (null stays null). */
    public static Tensor rows(Tensor t, long from, long count) {
        if (t == null) {
            return null;
        }
        if (from == 0 && count == t.dim(0)) {
            return t;
        }
        long width = t.rank() == 1 ? 1 : t.dim(1);
        long[] shape = t.rank() == 1 ? new long[] {count} : new long[] {count, width};
        long bytes = t.dtype().byteSize();
        return switch (t) {
            case HostTensor h -> HostTensor.wrap(h.segment().asSlice(from * width * bytes, count * width * bytes), t.dtype(), shape);
            case DeviceTensor dt -> DeviceTensor.wrap(dt.address() + from * width * bytes, t.dtype(), shape);
        };
    }
}
