package io.rlkernels.backend.emulated;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.cuda.CudaException;
import io.rlkernels.backend.cuda.KernelArgs;
import io.rlkernels.backend.cuda.LaunchShape;
import io.rlkernels.backend.emulated.internal.EmulatorLibrary;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a sanitizer would catch, the emulator's device memory catches: a write past the size asked
 * for (inside the 256-byte rounding) is reported when the allocation is freed; one past the
 * rounding, or into freed memory, faults on a guard page, and the process stops after saying which
 * kernel touched which allocation. The faults are provoked in a child JVM ({@link #main}).
 */
class EmulatorFaultTest {
    private static final String MODULE = "/io/rlkernels/emu/libemu_selftest.so";

    private static EmulatedLauncher launcher() {
        return new EmulatedLauncher(EmulatorLibrary.get(MODULE).orElseThrow(
                () -> new AssertionError("self-test module missing: " + EmulatorLibrary.unavailableReason(MODULE))));
    }

    private static void writeAt(EmulatedLauncher l, long address, long index) {
        l.launch("selftest_write_at", new LaunchShape(1, 32, 0), new KernelArgs().ptr(address).i64(index).f32(1f));
    }

    @Test
    void aWritePastTheSizeInsideTheRoundingIsReportedAtFree() {
        try (EmulatedLauncher l = launcher()) {
            long ok = l.allocate(40);
            writeAt(l, ok, 9); // the last element: fine
            l.free(ok);
            long p = l.allocate(40); // 10 floats; the rounding to 256 bytes keeps its poison
            writeAt(l, p, 10);
            CudaException e = assertThrows(CudaException.class, () -> l.free(p));
            assertTrue(e.getMessage().contains("past the end"), e.getMessage());
            CudaException twice = assertThrows(CudaException.class, () -> l.free(p));
            assertTrue(twice.getMessage().contains("not a live allocation"), "a double free: " + twice.getMessage());
        }
    }

    @Test
    void aWritePastTheRoundingFaultsNamingTheKernelAndTheAllocation(@TempDir Path dir) throws Exception {
        String out = child(dir, "past-end");
        assertTrue(out.contains("selftest_write_at touched") && out.contains("byte 256 of allocation")
                && out.contains("(256 bytes): out of bounds"), out);
    }

    @Test
    void aUseAfterFreeFaults(@TempDir Path dir) throws Exception {
        String out = child(dir, "after-free");
        assertTrue(out.contains("selftest_write_at touched") && out.contains("which was freed: use after free"), out);
    }

    /** Runs {@link #main} with {@code what} in a child JVM, which must die; returns what it said. */
    private static String child(Path dir, String what) throws IOException, InterruptedException {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process p = new ProcessBuilder(List.of(java.toString(), "--enable-native-access=ALL-UNNAMED",
                "-XX:ErrorFile=" + dir.resolve("hs_err_%p.log"), "-XX:-CreateCoredumpOnCrash",
                "-cp", System.getProperty("java.class.path"), EmulatorFaultTest.class.getName(), what))
                .redirectErrorStream(true).redirectOutput(dir.resolve("out.txt").toFile()).start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the child finished");
        String out = Files.readString(dir.resolve("out.txt"), StandardCharsets.UTF_8);
        assertTrue(p.exitValue() != 0, "the child must not survive the fault: " + out);
        assertEquals(-1, out.indexOf("SURVIVED"), out);
        return out;
    }

    /** The child: provokes one fault, which must end the process. */
    public static void main(String[] args) {
        EmulatedLauncher l = launcher();
        long p = l.allocate(256); // exactly its rounding: p[64] is on the guard page
        switch (args[0]) {
            case "past-end" -> writeAt(l, p, 64);
            case "after-free" -> {
                l.free(p);
                writeAt(l, p, 3);
            }
            default -> throw new IllegalArgumentException(args[0]);
        }
        System.out.println("SURVIVED");
    }
}
