package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.Map;

/**
 * Where each sequence's tokens are in a flat batch of N tokens: every sequence is one contiguous
 * run (the packed layout trainers use, or a padded [B, T] batch flattened), runs in any order.
 * Built on the host from per-token sequence ids — which must be exactly 0 .. S-1, one run each —
 * or from run lengths; reusable across calls, copied once to a device that uses it.
 */
public final class SequenceLayout extends Layout {
    private final long tokens;
    private final int longest;
    private final HostTensor offsets; // i32 [S + 1]: run k is tokens offsets[k] .. offsets[k + 1]

    private SequenceLayout(long tokens, int[] offsets) {
        this.tokens = tokens;
        int max = 0;
        for (int k = 0; k + 1 < offsets.length; k++) {
            max = Math.max(max, offsets[k + 1] - offsets[k]);
        }
        this.longest = max;
        this.offsets = HostTensor.allocate(DType.I32, offsets.length);
        MemorySegment.copy(offsets, 0, this.offsets.segment(), ValueLayout.JAVA_INT, 0, offsets.length);
    }

    /** From per-token sequence ids [N] (i32 or i64, host): each id of 0 .. S-1 must be one contiguous run. */
    public static SequenceLayout ofSeqIds(Tensor seqIds) {
        Check.alive("seqIds", seqIds);
        Check.dtype("seqIds", seqIds, DType.I32, DType.I64);
        Check.rank("seqIds", seqIds, 1);
        HostTensor ids = Check.host("seqIds", seqIds, "layout");
        long n = ids.numel();
        if (n >= Integer.MAX_VALUE) {
            throw Check.fail("seqIds", "fewer than 2^31 tokens", n);
        }
        int runs = 0;
        for (long i = 0; i < n; i++) {
            if (i == 0 || ids.getLong(i) != ids.getLong(i - 1)) {
                runs++;
            }
        }
        int[] offsets = new int[runs + 1];
        boolean[] seen = new boolean[runs];
        int k = 0;
        for (long i = 0; i < n; i++) {
            long id = ids.getLong(i);
            if (i == 0 || id != ids.getLong(i - 1)) {
                if (id < 0 || id >= runs) {
                    throw Check.fail("seqIds[" + i + "]", "a sequence id in [0, " + runs + ") (ids are 0 .. S-1, one run each)", id);
                }
                if (seen[(int) id]) {
                    throw Check.fail("seqIds[" + i + "]", "the tokens of each sequence in one contiguous run", "sequence " + id
                            + " again after another sequence");
                }
                seen[(int) id] = true;
                offsets[k++] = (int) i;
            }
        }
        offsets[runs] = (int) n;
        return new SequenceLayout(n, offsets);
    }

    /** From the token counts of consecutive sequences. */
    public static SequenceLayout ofLengths(int... lengths) {
        int[] offsets = new int[lengths.length + 1];
        for (int k = 0; k < lengths.length; k++) {
            if (lengths[k] < 0) {
                throw Check.fail("lengths[" + k + "]", "a length >= 0", lengths[k]);
            }
            offsets[k + 1] = Math.addExact(offsets[k], lengths[k]);
        }
        return new SequenceLayout(offsets[lengths.length], offsets);
    }

    /** The number of token rows laid out (N). */
    public long tokens() {
        return tokens;
    }

    /** The number of sequences (S). */
    public int sequences() {
        return (int) offsets.numel() - 1;
    }

    /** The longest sequence, in tokens (kept or not). */
    public int longest() {
        return longest;
    }

    /** i32 [S + 1]. */
    public HostTensor offsets() {
        return offsets;
    }


    @Override
    public String toString() {
        return "SequenceLayout of " + tokens + " tokens in " + sequences() + " sequences";
    }

    @Override
    HostTensor[] tensors() {
        return new HostTensor[] {offsets};
    }
}
