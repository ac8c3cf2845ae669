package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Which sequences form each group: the sequence indices ordered by group (groups in order of
 * first appearance, members in index order) and each group's offset into that order. Built in
 * O(S) on the host from group ids of any values (not contiguous, unequal sizes); reusable for
 * every step with the same grouping, and the kernels walk it in a fixed order (determinism).
 */
public final class GroupLayout extends Layout {
    private final int sequences;
    private final int maxGroupSize;
    private final HostTensor order;   // i32 [S]
    private final HostTensor offsets; // i32 [G + 1]

    private GroupLayout(int sequences, int[] order, int[] offsets) {
        this.sequences = sequences;
        int max = 0;
        for (int g = 0; g + 1 < offsets.length; g++) {
            max = Math.max(max, offsets[g + 1] - offsets[g]);
        }
        this.maxGroupSize = max;
        this.order = HostTensor.allocate(DType.I32, order.length);
        this.offsets = HostTensor.allocate(DType.I32, offsets.length);
        java.lang.foreign.MemorySegment.copy(order, 0, this.order.segment(), java.lang.foreign.ValueLayout.JAVA_INT, 0, order.length);
        java.lang.foreign.MemorySegment.copy(offsets, 0, this.offsets.segment(), java.lang.foreign.ValueLayout.JAVA_INT, 0,
                offsets.length);
    }

    /** Groups by id; ids are non-negative integers of any size (i32 or i64, host memory). */
    public static GroupLayout of(Tensor groupIds) {
        Check.alive("groupIds", groupIds);
        Check.dtype("groupIds", groupIds, DType.I32, DType.I64);
        Check.rank("groupIds", groupIds, 1);
        HostTensor ids = Check.host("groupIds", groupIds, "layout");
        if (ids.numel() > Integer.MAX_VALUE - 8) {
            throw Check.fail("groupIds", "fewer than 2^31 sequences", ids.numel());
        }
        int n = (int) ids.numel();
        long[] raw = new long[n];
        long max = -1;
        for (int i = 0; i < n; i++) {
            long id = ids.getLong(i);
            if (id < 0) {
                throw Check.fail("groupIds[" + i + "]", "a group id >= 0", id);
            }
            raw[i] = id;
            max = Math.max(max, id);
        }
        // dense labels 0..G-1 in order of first appearance: a table when ids are small, else a map
        int[] label = new int[n];
        int groups = 0;
        if (max < 4L * n + 1024) {
            int[] table = new int[(int) max + 1];
            Arrays.fill(table, -1);
            for (int i = 0; i < n; i++) {
                int id = (int) raw[i];
                if (table[id] < 0) {
                    table[id] = groups++;
                }
                label[i] = table[id];
            }
        } else {
            Map<Long, Integer> table = new HashMap<>();
            for (int i = 0; i < n; i++) {
                Integer l = table.get(raw[i]);
                if (l == null) {
                    l = groups++;
                    table.put(raw[i], l);
                }
                label[i] = l;
            }
        }
        return fromLabels(label, groups);
    }

    /** One group holding every sequence (batch whitening). */
    public static GroupLayout single(int sequences) {
        int[] order = new int[sequences];
        Arrays.setAll(order, i -> i);
        return new GroupLayout(sequences, order, new int[] {0, sequences});
    }

    /** Counting sort by label: stable, so members stay in index order. */
    private static GroupLayout fromLabels(int[] label, int groups) {
        int[] offsets = new int[groups + 1];
        for (int l : label) {
            offsets[l + 1]++;
        }
        for (int g = 0; g < groups; g++) {
            offsets[g + 1] += offsets[g];
        }
        int[] cursor = Arrays.copyOf(offsets, groups);
        int[] order = new int[label.length];
        for (int i = 0; i < label.length; i++) {
            order[cursor[label[i]]++] = i;
        }
        return new GroupLayout(label.length, order, offsets);
    }

    /** The number of sequences laid out (S). */
    public int sequences() {
        return sequences;
    }

    /** The number of groups. */
    public int groups() {
        return (int) offsets.numel() - 1;
    }

    /** The largest group's size. */
    public int maxGroupSize() {
        return maxGroupSize;
    }

    /** Sequence indices ordered by group: i32 [S]. */
    public HostTensor order() {
        return order;
    }

    /** Group g's members are order[offsets[g] .. offsets[g + 1]): i32 [G + 1]. */
    public HostTensor offsets() {
        return offsets;
    }

    @Override
    public String toString() {
        return "GroupLayout of " + sequences + " sequences in " + groups() + " groups";
    }

    @Override
    HostTensor[] tensors() {
        return new HostTensor[] {order, offsets};
    }
}
