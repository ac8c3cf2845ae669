package io.rlkernels.backend.emulated;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.cuda.CudaException;
import io.rlkernels.backend.cuda.KernelArgs;
import io.rlkernels.backend.cuda.LaunchShape;
import io.rlkernels.backend.emulated.internal.EmulatorLibrary;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The emulator catches what it claims: kernels of cuda-kernels/emu/selftest.cu, run
 * through the same launcher the emulated backend uses, on the x86-64 context switch;
 * {@link EmulatorSelfTestUcontext} runs the same on the portable ucontext fallback.
 */
class EmulatorSelfTest {
    /** The self-test module under test. */
    String module() {
        return "/io/rlkernels/emu/libemu_selftest.so";
    }

    private EmulatedLauncher launcher;
    private Arena arena;

    @BeforeEach
    void open() {
        EmulatorLibrary lib = EmulatorLibrary.get(module()).orElseThrow(
                () -> new AssertionError("self-test module missing: " + EmulatorLibrary.unavailableReason(module())));
        launcher = new EmulatedLauncher(lib);
        arena = Arena.ofConfined();
    }

    @AfterEach
    void close() {
        arena.close();
        launcher.close();
    }

    /** Device memory of {@code bytes}, viewed as a segment. */
    private MemorySegment device(long bytes) {
        long address = launcher.allocate(bytes);
        arena.allocate(1); // keep the arena non-empty; the memory itself is freed below
        MemorySegment s = MemorySegment.ofAddress(address).reinterpret(bytes, arena, x -> launcher.free(address));
        return s;
    }

    private static LaunchShape shape(int grid, int block) {
        return new LaunchShape(grid, block, 0);
    }

    @Test
    void aMissingSyncthreadsChangesTheResultUnderTheRandomisedSchedule() {
        int blocks = 16;
        int threads = 256;
        MemorySegment in = device(4L * blocks * threads);
        SplittableRandom rng = new SplittableRandom();
        float[] expected = new float[blocks];
        for (int i = 0; i < blocks * threads; i++) {
            float x = 1 + rng.nextInt(100);
            in.setAtIndex(ValueLayout.JAVA_FLOAT, i, x);
            expected[i / threads] += x;
        }
        MemorySegment out = device(4L * blocks);
        launcher.launch("selftest_block_sum", shape(blocks, threads), new KernelArgs().ptr(in.address()).ptr(out.address()));
        assertArrayEquals(expected, out.toArray(ValueLayout.JAVA_FLOAT), "with the barrier every block sums right");

        launcher.launch("selftest_block_sum_missing_sync", shape(blocks, threads),
                new KernelArgs().ptr(in.address()).ptr(out.address()));
        float[] racy = out.toArray(ValueLayout.JAVA_FLOAT);
        int wrong = 0;
        for (int b = 0; b < blocks; b++) {
            wrong += racy[b] == expected[b] ? 0 : 1;
        }
        assertTrue(wrong > 0, "without the barrier some block must read unwritten (poisoned) slots: " + Arrays.toString(racy));
    }

    @Test
    void aPartialWarpMaskIsRejected() {
        MemorySegment out = device(4 * 32);
        CudaException e = assertThrows(CudaException.class,
                () -> launcher.launch("selftest_partial_mask", shape(1, 32), new KernelArgs().ptr(out.address())));
        assertTrue(e.getMessage().contains("__shfl_xor_sync with mask 0x0000ffff"), e.getMessage());
        assertTrue(e.getMessage().contains("-Drlk.emu.seed=0x"), "a failure names its seed: " + e.getMessage());
    }

    @Test
    void aDivergentBarrierIsReported() {
        MemorySegment out = device(4 * 64);
        CudaException e = assertThrows(CudaException.class,
                () -> launcher.launch("selftest_divergent_barrier", shape(2, 64), new KernelArgs().ptr(out.address())));
        assertTrue(e.getMessage().contains("divergent __syncthreads"), e.getMessage());
        assertTrue(e.getMessage().contains("exited without reaching"), e.getMessage());
    }

    @Test
    void warpOperationsComputeWhatCudaDefines() {
        int threads = 96;
        MemorySegment out = device(4L * 7 * threads);
        launcher.launch("selftest_warp_ops", shape(1, threads), new KernelArgs().ptr(out.address()));
        for (int t = 0; t < threads; t++) {
            int lane = t % 32;
            int warp = t - lane;
            int[] got = new int[7];
            for (int k = 0; k < 7; k++) {
                got[k] = out.getAtIndex(ValueLayout.JAVA_INT, 7L * t + k);
            }
            int ballot = 0;
            for (int l = 0; l < 32; l += 3) {
                ballot |= 1 << l;
            }
            int[] want = {
                warp + (lane ^ 5),                              // xor
                lane + 3 < 32 ? t + 3 : t,                      // down: the last lanes keep their own
                lane % 8 < 2 ? t : t - 2,                       // up within groups of 8
                warp + 7,                                       // broadcast of lane 7
                ballot,                                         // lanes 0, 3, 6, ...
                1 + 2,                                          // all true, any true
                warp + (lane ^ 1),                              // a 64-bit value through xor
            };
            assertArrayEquals(want, got, "thread " + t);
        }
    }

    @Test
    void atomicsAreAtomicAcrossConcurrentBlocks() {
        int blocks = 64;
        int threads = 128;
        MemorySegment count = device(8);
        MemorySegment sum = device(4);
        MemorySegment max = device(4);
        count.set(ValueLayout.JAVA_LONG, 0, 0);
        sum.set(ValueLayout.JAVA_FLOAT, 0, 0);
        max.set(ValueLayout.JAVA_INT, 0, -1);
        launcher.launch("selftest_atomics", shape(blocks, threads),
                new KernelArgs().ptr(count.address()).ptr(sum.address()).ptr(max.address()));
        assertEquals((long) blocks * threads, count.get(ValueLayout.JAVA_LONG, 0));
        assertEquals(blocks * threads, sum.get(ValueLayout.JAVA_FLOAT, 0));
        assertEquals(blocks * threads - 1, max.get(ValueLayout.JAVA_INT, 0));
        assertTrue(launcher.library().workers() >= 1);
    }

    @Test
    void sharedMemoryStartsPoisoned() {
        MemorySegment out = device(4L * 3 * 256);
        launcher.launch("selftest_unwritten_shared", shape(3, 256), new KernelArgs().ptr(out.address()).i32(1));
        for (float x : out.toArray(ValueLayout.JAVA_FLOAT)) {
            assertEquals(1.0f, x, "written shared memory reads back");
        }
        // the next launch's blocks start from poison again, not from what the last one left
        launcher.launch("selftest_unwritten_shared", shape(3, 256), new KernelArgs().ptr(out.address()).i32(0));
        for (float x : out.toArray(ValueLayout.JAVA_FLOAT)) {
            assertTrue(Float.isNaN(x), "unwritten shared memory reads as NaN, found " + x);
        }
    }

    @Test
    void dynamicSharedMemoryIsTheLaunchesBuffer() {
        int threads = 160;
        MemorySegment out = device(4L * 2 * threads);
        launcher.launch("selftest_dynamic_shared", new LaunchShape(2, threads, 4 * threads), new KernelArgs().ptr(out.address()));
        for (int b = 0; b < 2; b++) {
            for (int t = 0; t < threads; t++) {
                assertEquals(threads - 1 - t, out.getAtIndex(ValueLayout.JAVA_FLOAT, (long) b * threads + t), "block " + b + " thread " + t);
            }
        }
    }

    @Test
    void aSeedFixesTheScheduleAndDifferentSeedsVaryIt() {
        int threads = 128;
        int[][] orders = new int[3][];
        long[] bases = {0x1234L, 0x1234L, 0x9876L};
        for (int run = 0; run < 3; run++) {
            EmulatedLauncher.startSequence(bases[run]);
            MemorySegment counter = device(4);
            counter.set(ValueLayout.JAVA_INT, 0, 0);
            MemorySegment order = device(8L * threads);
            launcher.launch("selftest_arrival_order", shape(1, threads), new KernelArgs().ptr(counter.address()).ptr(order.address()));
            orders[run] = order.toArray(ValueLayout.JAVA_INT);
        }
        assertArrayEquals(orders[0], orders[1], "the same seed, the same schedule");
        assertNotEquals(Arrays.toString(orders[0]), Arrays.toString(orders[2]), "another seed, another schedule");
    }

    @Test
    void launchesWithTheWrongParametersAreRefused() {
        MemorySegment out = device(4 * 32);
        CudaException e = assertThrows(CudaException.class,
                () -> launcher.launch("selftest_partial_mask", shape(1, 32), new KernelArgs().ptr(out.address()).i32(1)));
        assertTrue(e.getMessage().contains("takes 1 parameters, 2 given"), e.getMessage());
        e = assertThrows(CudaException.class,
                () -> launcher.launch("selftest_partial_mask", shape(1, 32), new KernelArgs().i32(1)));
        assertTrue(e.getMessage().contains("parameter 0 is 8 bytes, 4 given"), e.getMessage());
        e = assertThrows(CudaException.class, () -> launcher.launch("no_such_kernel", shape(1, 32), new KernelArgs()));
        assertTrue(e.getMessage().contains("no kernel named no_such_kernel"), e.getMessage());
    }
}
