package io.rlkernels.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NpyTest {
    @TempDir
    Path dir;

    @Test
    void everyDtypeRoundTrips() throws IOException {
        SplittableRandom rng = new SplittableRandom();
        for (DType dt : DType.values()) {
            long[] shape = {3, 5};
            try (HostTensor t = HostTensor.allocate(dt, shape); Arena arena = Arena.ofConfined()) {
                for (long i = 0; i < t.numel(); i++) {
                    if (dt.isFloatingPoint()) {
                        t.setFloat(i, (float) rng.nextGaussian());
                    } else {
                        t.setLong(i, rng.nextInt(100));
                    }
                }
                Path f = dir.resolve(dt.shortName() + ".npy");
                Npy.write(f, t);
                assertEquals(0, (Files.size(f) - t.byteSize()) % 64, "the data starts 64-byte aligned");
                HostTensor back = Npy.read(f, arena);
                assertEquals(dt, back.dtype());
                assertArrayEquals(shape, back.shape());
                assertArrayEquals(t.toFloatArray(), back.toFloatArray());
            }
        }
    }

    @Test
    void refusesWhatItCannotRead() throws IOException {
        Path f = dir.resolve("bad.npy");
        Files.write(f, "not numpy".getBytes());
        try (Arena arena = Arena.ofConfined()) {
            IOException e = assertThrows(IOException.class, () -> Npy.read(f, arena));
            assertTrue(e.getMessage().contains("bad magic"), e.getMessage());
        }
    }

    /** Where python3 with NumPy is installed, both directions agree with NumPy itself. */
    @Test
    void agreesWithNumpy() throws Exception {
        Path fromJava = dir.resolve("java.npy");
        try (HostTensor t = HostTensor.of(new float[] {1.5f, -2f, 3.25f, 4f, 5f, 6f}, 2, 3)) {
            Npy.write(fromJava, t);
        }
        Path fromNumpy = dir.resolve("numpy.npy");
        String script = "import numpy as np, sys\n"
                + "a = np.load(sys.argv[1]); assert a.dtype == np.float32 and a.shape == (2, 3), (a.dtype, a.shape)\n"
                + "assert a[1, 2] == 6.0 and a[0, 0] == 1.5\n"
                + "np.save(sys.argv[2], np.arange(12, dtype=np.int64).reshape(3, 4))\n";
        Process p;
        try {
            p = new ProcessBuilder("python3", "-c", script, fromJava.toString(), fromNumpy.toString())
                    .redirectErrorStream(true).start();
        } catch (IOException e) {
            assumeTrue(false, "python3 not found");
            return;
        }
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        String out = new String(p.getInputStream().readAllBytes());
        assumeTrue(!out.contains("No module named"), "NumPy not installed");
        assertEquals(0, p.exitValue(), out);
        try (Arena arena = Arena.ofConfined()) {
            HostTensor back = Npy.read(fromNumpy, arena);
            assertEquals(DType.I64, back.dtype());
            assertArrayEquals(new long[] {3, 4}, back.shape());
            assertEquals(11, back.getLong(11));
        }
    }
}
