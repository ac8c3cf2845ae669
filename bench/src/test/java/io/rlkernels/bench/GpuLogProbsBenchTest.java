package io.rlkernels.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.cuda.KernelArgs;
import io.rlkernels.backend.cuda.KernelLauncher;
import io.rlkernels.backend.cuda.LaunchShape;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * GpuLogProbsBench without a GPU: its .npy reading and writing, and its measurement loop on a
 * launcher that keeps "device" memory on the host and launches nothing (the kernels themselves are
 * measured by bench/gpu on a GPU).
 */
class GpuLogProbsBenchTest {
    @TempDir
    Path dir;

    /** Host memory as device memory; launches are only counted. */
    static final class HostLauncher implements KernelLauncher {
        final Arena arena = Arena.ofShared();
        final List<String> launches = new ArrayList<>();

        private static MemorySegment at(long address, long bytes) {
            return MemorySegment.ofAddress(address).reinterpret(bytes);
        }

        @Override
        public String describe() {
            return "host memory";
        }

        @Override
        public long allocate(long bytes) {
            return arena.allocate(Math.max(1, bytes), 256).address();
        }

        @Override
        public void free(long address) {}

        @Override
        public void checkForeign(String arg, long address, long bytes) {
            throw new IllegalArgumentException(arg + ": expected memory this launcher allocated, found 0x" + Long.toHexString(address));
        }

        @Override
        public void copyToDevice(long dst, MemorySegment src, long bytes) {
            MemorySegment.copy(src, 0, at(dst, bytes), 0, bytes);
        }

        @Override
        public void copyToHost(MemorySegment dst, long src, long bytes) {
            MemorySegment.copy(at(src, bytes), 0, dst, 0, bytes);
        }

        @Override
        public void launch(String kernel, LaunchShape shape, KernelArgs args) {
            launches.add(kernel);
        }

        @Override
        public void synchronize() {}

        @Override
        public void close() {
            arena.close();
        }
    }

    /** A version-1 .npy file as numpy writes it. */
    static void npy(Path file, String descr, byte[] data, long... shape) throws IOException {
        StringBuilder s = new StringBuilder();
        for (long d : shape) {
            s.append(d).append(", ");
        }
        String dims = shape.length == 1 ? shape[0] + "," : s.substring(0, s.length() - 2);
        StringBuilder header = new StringBuilder("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }");
        while ((10 + header.length() + 1) % 64 != 0) {
            header.append(' ');
        }
        header.append('\n');
        ByteBuffer b = ByteBuffer.allocate(10 + header.length() + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put((byte) 0x93).put("NUMPY".getBytes(StandardCharsets.ISO_8859_1)).put((byte) 1).put((byte) 0)
                .putShort((short) header.length()).put(header.toString().getBytes(StandardCharsets.ISO_8859_1)).put(data);
        Files.write(file, b.array());
    }

    static byte[] le(int bytesPer, long n, java.util.function.LongToIntFunction intValue, boolean isLong) {
        ByteBuffer b = ByteBuffer.allocate((int) (n * bytesPer)).order(ByteOrder.LITTLE_ENDIAN);
        for (long i = 0; i < n; i++) {
            switch (bytesPer) {
                case 2 -> b.putShort((short) intValue.applyAsInt(i));
                case 4 -> b.putInt(intValue.applyAsInt(i));
                default -> b.putLong(isLong ? intValue.applyAsInt(i) : 0);
            }
        }
        return b.array();
    }

    @Test
    void writesAndMapsNpyFiles() throws IOException {
        float[] values = {1.5f, -2f, 3.25f, 0f, 7f, 8f};
        ByteBuffer b = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            b.putFloat(v);
        }
        GpuLogProbsBench.writeNpy(dir.resolve("a.npy"), b.array(), 2, 3);
        GpuLogProbsBench.writeNpy(dir.resolve("b.npy"), b.array(), 6);
        npy(dir.resolve("bf16.npy"), "<u2", le(2, 6, i -> Float.floatToIntBits(values[(int) i]) >>> 16, false), 2, 3);
        npy(dir.resolve("ids.npy"), "<i8", le(8, 3, i -> (int) i * 7, true), 3);
        try (Arena arena = Arena.ofConfined()) {
            HostTensor a = GpuLogProbsBench.readNpy(dir.resolve("a.npy"), arena, DType.F32, 2, 3);
            assertArrayEquals(values, a.toFloatArray());
            assertArrayEquals(values, GpuLogProbsBench.readNpy(dir.resolve("b.npy"), arena, DType.F32, 6).toFloatArray());
            assertArrayEquals(values, GpuLogProbsBench.readNpy(dir.resolve("bf16.npy"), arena, DType.BF16, 2, 3).toFloatArray());
            HostTensor ids = GpuLogProbsBench.readNpy(dir.resolve("ids.npy"), arena, null, 3);
            assertEquals(DType.I64, ids.dtype());
            assertEquals(14, ids.getLong(2));
            IOException e = assertThrows(IOException.class,
                    () -> GpuLogProbsBench.readNpy(dir.resolve("a.npy"), arena, DType.F32, 3, 2));
            assertTrue(e.getMessage().contains("expected f32[3, 2], found <f4[2, 3]"), e.getMessage());
            e = assertThrows(IOException.class, () -> GpuLogProbsBench.readNpy(dir.resolve("bf16.npy"), arena, DType.F32, 2, 3));
            assertTrue(e.getMessage().contains("found <u2"), e.getMessage());
        }
    }

    @Test
    void measuresReplaysAndWritesOutputsOnAHostLauncher() throws IOException {
        long n = 12;
        long v = 100;
        Path in = Files.createDirectories(dir.resolve("in"));
        npy(in.resolve("logits.npy"), "<u2", le(2, n * v, i -> Float.floatToIntBits((i % 17) / 4f) >>> 16, false), n, v);
        npy(in.resolve("targets.npy"), "<i8", le(8, n, i -> (int) (i * 5 % v), true), n);
        npy(in.resolve("grad_logp.npy"), "<f4", le(4, n, i -> Float.floatToIntBits(1f), false), n);
        GpuLogProbsBench.Spec spec = GpuLogProbsBench.Spec.parse(Map.of("rows", "12", "vocab", "100", "dtype", "bf16",
                "repeats", "2", "trials", "3", "warmup", "1", "in", in.toString(), "out", dir.resolve("out").toString()));
        HostLauncher launcher = new HostLauncher();
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        PrintStream stdout = System.out;
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try (GpuLogProbsBench.Recorder rec = new GpuLogProbsBench.Recorder(launcher)) {
            GpuLogProbsBench.logProbs(spec, rec);
        } finally {
            System.setOut(stdout);
        }
        List<String> lines = captured.toString(StandardCharsets.UTF_8).lines().toList();
        assertEquals(8, lines.size(), String.join("\n", lines)); // device, 6 measurements, replay check
        assertEquals(6, lines.stream().filter(l -> l.contains("\"kind\": \"op\"")).count());
        for (String op : List.of("\"forward\"", "\"forward_entropy\"", "\"backward\"")) {
            for (String variant : List.of("\"api\"", "\"kernel\"")) {
                assertTrue(lines.stream().anyMatch(l -> l.contains(op) && l.contains("\"variant\": " + variant)), op + variant);
            }
        }
        assertTrue(lines.getLast().contains("\"identical\": true"), lines.getLast());
        // each measurement: 1 warm-up + 3 x 2 calls; the first two (api, kernel) run the forward kernel; each call of the
        // backward through the api also checks its upstream gradient on the device (rlk_first_outside_f32)
        assertEquals(6 * 7 + 7, launcher.launches.size());
        assertEquals(7, launcher.launches.stream().filter("rlk_first_outside_f32"::equals).count());
        assertEquals("rlk_logprobs_fwd_bf16", launcher.launches.getFirst());
        assertEquals("rlk_logprobs_bwd_bf16_f32", launcher.launches.getLast());
        try (Arena arena = Arena.ofConfined()) {
            for (String name : List.of("logp", "lse", "entropy")) {
                assertEquals(n, GpuLogProbsBench.readNpy(dir.resolve("out/" + name + ".npy"), arena, DType.F32, n).numel());
            }
            HostTensor grad = GpuLogProbsBench.readNpy(dir.resolve("out/grad_rows.npy"), arena, DType.F32, 8, v);
            assertEquals(8 * v, grad.segment().byteSize() / ValueLayout.JAVA_FLOAT.byteSize());
        }
    }

    @Test
    void badArgumentsAreUsageErrors() {
        assertThrows(GpuLogProbsBench.UsageException.class,
                () -> GpuLogProbsBench.Spec.parse(Map.of("rows", "4", "vocab", "10", "dtype", "f64")));
        assertThrows(GpuLogProbsBench.UsageException.class, () -> GpuLogProbsBench.Spec.parse(Map.of("dtype", "f32")));
        assertThrows(GpuLogProbsBench.UsageException.class,
                () -> GpuLogProbsBench.Spec.parse(Map.of("rows", "4", "vocab", "10", "dtype", "f32", "trials", "0")));
    }
}
