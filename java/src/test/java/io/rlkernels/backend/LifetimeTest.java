package io.rlkernels.backend;

import static io.rlkernels.testing.Refusals.assertRefused;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Lease;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Lifetimes under concurrency: a tensor or layout closed while an op uses it is freed when the op
 * ends (or refused by name if the close came first), never freed under the kernel and never
 * leaked; a closed backend refuses ops.
 */
class LifetimeTest {
    static Stream<BackendUnderTest> all() {
        return BackendUnderTest.all();
    }

    @Test
    void aCloseDuringALeaseTakesEffectWhenTheLeaseEnds() {
        HostTensor t = HostTensor.allocate(DType.F32, 8).fill(1f);
        Lease lease = t.lease();
        t.close();
        assertFalse(t.isAlive(), "closed: new uses are refused");
        assertThrows(IllegalStateException.class, t::lease);
        assertEquals(1f, t.getFloat(7), "the memory stays valid for the lease holder");
        lease.close();
        lease.close(); // twice is harmless
        assertThrows(IllegalStateException.class, t::segment, "freed after the last lease");
        t.close();
    }

    @Test
    void aClosedLayoutIsNamedAsSuch() {
        GroupLayout g = GroupLayout.of(HostTensor.of(new int[] {0, 0, 1}));
        g.close();
        try (Backend b = Backends.open(BackendKind.REFERENCE); HostTensor r = HostTensor.of(new float[] {1, 2, 3});
             HostTensor a = HostTensor.allocate(DType.F32, 3)) {
            assertRefused("groups", "a closed GroupLayout of 3 sequences in 2 groups",
                    () -> b.groupAdvantages(GroupAdvantages.Config.defaults(), r, g, a));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void aClosedBackendRefusesOps(BackendUnderTest bt) {
        Backend b = bt.open();
        try (HostTensor z = HostTensor.allocate(DType.F32, 2, 3).fill(0.5f); HostTensor y = HostTensor.of(new int[] {0, 1});
             HostTensor logp = HostTensor.allocate(DType.F32, 2); HostTensor lse = HostTensor.allocate(DType.F32, 2)) {
            b.close();
            b.close();
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> b.logProbs(LogProbs.Config.defaults(), z, y, logp, lse, null));
            assertTrue(e.getMessage().startsWith("backend: expected an open backend"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> b.allocate(DType.F32, 2));
        }
    }

    /**
     * 10^4 races on the native backend (2,000 on the emulator): one thread runs the log-probs on a
     * fresh 256 KiB tensor while another closes that tensor at a random moment. Each op either
     * completes or is refused naming the logits; the resident set does not grow with the races
     * (every one of the 2.5 GB allocated in all was freed).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void closingWhileAnOpRunsNeverFaultsOrLeaks(BackendUnderTest bt) throws Exception {
        int races = switch (bt.kind()) {
            case NATIVE -> 10_000;
            case REFERENCE -> 300;
            default -> 2_000;
        };
        if (!bt.label().equals("reference") && !bt.label().equals("emulated") && !bt.label().equals("cuda")
                && !bt.label().equals("native-" + nativeLabel())) {
            races = 500; // the other instruction-set variants: the same path, fewer repetitions
        }
        SplittableRandom rng = new SplittableRandom(TestData.newSeed());
        int n = 64;
        int v = 1024;
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try (Backend b = bt.open(); HostTensor hz = TestData.logits(rng, DType.F32, n, v, 1.0);
             HostTensor y = TestData.targets(rng, DType.I32, n, v, 0, -100);
             Tensor logp = b.allocate(DType.F32, n); Tensor lse = b.allocate(DType.F32, n)) {
            LogProbs.Config c = LogProbs.Config.defaults();
            race(b, pool, hz, y, logp, lse, c, 50, rng); // warm-up: the allocator's and the JIT's steady state
            long before = residentBytes();
            int[] outcome = race(b, pool, hz, y, logp, lse, c, races, rng);
            long grown = residentBytes() - before;
            assertEquals(races, outcome[0] + outcome[1]);
            assertTrue(grown < 200L << 20, bt + ": resident set grew " + (grown >> 20) + " MiB over " + races
                    + " races (completed " + outcome[0] + ", refused " + outcome[1] + ")");
        } finally {
            pool.shutdownNow();
            assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));
        }
    }

    /**
     * The same race with a layout: group advantages over a fresh GroupLayout (whose copy on a device
     * backend is uploaded by the op) while another thread closes the layout. The op completes or is
     * refused naming the groups, and once both are done the layout's memory is freed — checked
     * directly on its tensors, since the Java arrays a layout is built from blur the resident set.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void closingALayoutWhileAnOpRunsNeverFaultsOrLeaks(BackendUnderTest bt) throws Exception {
        int races = bt.kind() == BackendKind.REFERENCE || bt.label().startsWith("native-x86") ? 300 : 2_000;
        SplittableRandom rng = new SplittableRandom(TestData.newSeed());
        int s = 4096;
        int[] ids = new int[s];
        for (int i = 0; i < s; i++) {
            ids[i] = rng.nextInt(512);
        }
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try (Backend b = bt.open(); HostTensor rewards = TestData.normal(rng, s, 1.0); HostTensor groupIds = HostTensor.of(ids);
             Tensor advantages = b.allocate(DType.F32, s)) {
            int completed = 0;
            for (int k = 0; k < races; k++) {
                GroupLayout layout = GroupLayout.of(groupIds);
                completed += raceOnce(pool, () -> b.groupAdvantages(GroupAdvantages.Config.defaults(), rewards, layout, advantages),
                        "groups: expected a live GroupLayout, found a closed GroupLayout", layout, rng.nextLong(50_000)) ? 1 : 0;
                assertFalse(layout.isAlive());
                assertThrows(IllegalStateException.class, () -> layout.order().segment(), "the layout's memory was freed");
                assertThrows(IllegalStateException.class, () -> layout.offsets().segment(), "the layout's memory was freed");
            }
        } finally {
            pool.shutdownNow();
            assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));
        }
    }

    private static String nativeLabel() {
        try (Backend b = Backends.open(BackendKind.NATIVE)) {
            return b.description().replaceFirst("native: ([^,]*),.*", "$1");
        } catch (IllegalStateException e) {
            return "";
        }
    }

    /** {completed, refused} over {@code races} runs. */
    private static int[] race(Backend b, ExecutorService pool, HostTensor hz, HostTensor y, Tensor logp, Tensor lse,
                              LogProbs.Config c, int races, SplittableRandom rng) throws Exception {
        int completed = 0;
        int refused = 0;
        for (int k = 0; k < races; k++) {
            Tensor z = b.upload(hz);
            if (raceOnce(pool, () -> b.logProbs(c, z, y, logp, lse, null), "logits: expected a live tensor, found a closed tensor", z,
                    rng.nextLong(20_000))) {
                completed++;
            } else {
                refused++;
            }
            assertFalse(z.isAlive());
        }
        return new int[] {completed, refused};
    }

    /**
     * One race: {@code op} on one thread, {@code victim.close()} on another after {@code delayNanos}.
     * True when the op completed, false when it was refused with a message starting {@code refusal}.
     */
    private static boolean raceOnce(ExecutorService pool, Runnable op, String refusal, AutoCloseable victim, long delayNanos)
            throws Exception {
        CountDownLatch go = new CountDownLatch(1);
        Future<Boolean> ran = pool.submit(() -> {
            go.await();
            try {
                op.run();
                return true;
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage().startsWith(refusal), e.getMessage());
                return false;
            }
        });
        Future<?> closer = pool.submit(() -> {
            go.await();
            long until = System.nanoTime() + delayNanos;
            while (System.nanoTime() < until) {
                Thread.onSpinWait();
            }
            victim.close();
            return null;
        });
        go.countDown();
        closer.get(30, TimeUnit.SECONDS);
        return ran.get(30, TimeUnit.SECONDS);
    }

    private static long residentBytes() throws IOException {
        System.gc();
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("\\D+", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }
}
