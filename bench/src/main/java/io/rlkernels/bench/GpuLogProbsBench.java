package io.rlkernels.bench;

import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.cuda.CudaBackend;
import io.rlkernels.backend.cuda.KernelArgs;
import io.rlkernels.backend.cuda.KernelLauncher;
import io.rlkernels.backend.cuda.LaunchShape;
import io.rlkernels.backend.cuda.internal.CudaProbe;
import io.rlkernels.backend.cuda.internal.JCudaLauncher;
import io.rlkernels.internal.Json;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.DeviceTensor;
import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Token log-probs forward and backward on the cuda backend with device-resident tensors, for
 * bench/gpu. Prints one JSON object per line on stdout (logs go to stderr) which
 * bench/gpu/report.py joins with the PyTorch baselines of bench/gpu/bench_torch.py.
 *
 * <pre>
 * GpuLogProbsBench copy [--mib 2048] [--trials 10]
 *     device-to-device copy rate (cuMemcpyDtoD): bytes read + written / time, best of the trials
 * GpuLogProbsBench logprobs --rows N --vocab V --dtype f32|bf16|f16 [--temperature 1.0]
 *                  [--repeats 20] [--trials 10] [--warmup 5] [--in DIR] [--out DIR]
 *     --in DIR   logits.npy ([N,V] float32 / float16, or uint16 holding bf16 bits), targets.npy
 *                ([N] int32/int64) and grad_logp.npy ([N] float32), as bench_torch.py writes them;
 *                without it the inputs are generated here (N(0, 3^2) logits, uniform targets)
 *     --out DIR  writes logp.npy, lse.npy, entropy.npy ([N] float32) and grad_rows.npy (the
 *                gradient of the first rows, [min(N,8), V] float32) for bench_torch.py compare
 * </pre>
 *
 * Timing: each measurement is {@code trials} batches of {@code repeats} back-to-back calls with
 * {@code synchronize()} and {@link System#nanoTime()} around each batch; the figure is the batch
 * mean, as median and minimum over batches. Two variants: {@code api}, the public call
 * ({@code backend.logProbs(...)}: it also checks the target ids, which copies them to the host
 * and waits), and {@code kernel}, the kernel launch that call made, replayed as is.
 *
 * <p>Exit status: 0 done, 3 the cuda backend cannot run here (one line on stderr says why),
 * 2 bad arguments, 1 anything else.
 */
public final class GpuLogProbsBench {
    static final int EXIT_UNAVAILABLE = 3;
    private static final int GRAD_ROWS = 8;

    private GpuLogProbsBench() {}

    public static void main(String[] args) {
        int rc;
        try {
            rc = run(args);
        } catch (UsageException e) {
            System.err.println("GpuLogProbsBench: " + e.getMessage());
            System.err.println("usage: GpuLogProbsBench copy [--mib M] [--trials K] | logprobs --rows N --vocab V --dtype f32|bf16|f16"
                    + " [--temperature T] [--repeats R] [--trials K] [--warmup W] [--in DIR] [--out DIR]");
            rc = 2;
        } catch (Unavailable e) {
            System.err.println("GpuLogProbsBench: " + e.getMessage());
            rc = EXIT_UNAVAILABLE;
        } catch (Exception | OutOfMemoryError e) {
            System.err.println("GpuLogProbsBench: failed: " + e);
            e.printStackTrace();
            System.out.println(json("kind", "error", "impl", "rlkernels", "message", String.valueOf(e)));
            rc = 1;
        }
        System.out.flush();
        System.exit(rc);
    }

    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }

    private static final class Unavailable extends RuntimeException {
        Unavailable(String message) {
            super(message);
        }
    }

    static int run(String[] argv) throws IOException {
        if (argv.length == 0) {
            throw new UsageException("expected a mode, copy or logprobs");
        }
        Map<String, String> a = options(Arrays.copyOfRange(argv, 1, argv.length));
        switch (argv[0]) {
            case "copy" -> {
                try (Recorder rec = openRecorder()) {
                    System.out.println(json("kind", "device", "impl", "rlkernels", "device", rec.backend.description()));
                    copyRate(rec, Long.parseLong(a.getOrDefault("mib", "2048")) << 20, intOpt(a, "trials", 10));
                }
            }
            case "logprobs" -> {
                Spec spec = Spec.parse(a);
                try (Recorder rec = openRecorder()) {
                    logProbs(spec, rec);
                }
            }
            default -> throw new UsageException("unknown mode " + argv[0] + ": expected copy or logprobs");
        }
        return 0;
    }

    private static Map<String, String> options(String[] argv) {
        Map<String, String> out = new LinkedHashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                throw new UsageException("expected --name value pairs, found " + argv[i]);
            }
            out.put(argv[i].substring(2), argv[++i]);
        }
        return out;
    }

    private static int intOpt(Map<String, String> a, String name, int dflt) {
        int v = Integer.parseInt(a.getOrDefault(name, String.valueOf(dflt)));
        if (v < 1) {
            throw new UsageException("--" + name + ": expected a positive number, found " + v);
        }
        return v;
    }

    /** The cuda backend, on a launcher that remembers the last launch so that it can be replayed alone. */
    private static Recorder openRecorder() {
        CudaProbe.Result probe = CudaProbe.result();
        if (!probe.available()) {
            throw new Unavailable("cuda backend unavailable: " + probe.reason());
        }
        return new Recorder(new JCudaLauncher(0, probe.fatbin()));
    }

    /** A {@link KernelLauncher} that passes every call on and keeps the last launch. */
    static final class Recorder implements KernelLauncher {
        final CudaBackend plain;
        final KernelLauncher inner;
        final CudaBackend backend;
        String kernel;
        LaunchShape shape;
        KernelArgs args;

        Recorder(KernelLauncher inner) {
            this.inner = inner;
            this.plain = new CudaBackend(inner, BackendKind.CUDA);
            this.backend = new CudaBackend(this, BackendKind.CUDA);
        }

        /** Launches the last recorded kernel again with the same arguments. */
        void replay() {
            inner.launch(kernel, shape, args);
        }

        @Override
        public String describe() {
            return inner.describe();
        }

        @Override
        public long allocate(long bytes) {
            return inner.allocate(bytes);
        }

        @Override
        public void free(long address) {
            inner.free(address);
        }

        @Override
        public void checkForeign(String arg, long address, long bytes) {
            inner.checkForeign(arg, address, bytes);
        }

        @Override
        public void copyToDevice(long dst, MemorySegment src, long bytes) {
            inner.copyToDevice(dst, src, bytes);
        }

        @Override
        public void copyToHost(MemorySegment dst, long src, long bytes) {
            inner.copyToHost(dst, src, bytes);
        }

        @Override
        public void launch(String kernel, LaunchShape shape, KernelArgs args) {
            this.kernel = kernel;
            this.shape = shape;
            this.args = args;
            inner.launch(kernel, shape, args);
        }

        @Override
        public void synchronize() {
            inner.synchronize();
        }

        @Override
        public void close() {
            plain.close();
        }
    }

    // ---------------------------------------------------------------- device-to-device copy rate

    private static void copyRate(Recorder rec, long bytes, int trials) {
        long src = rec.allocate(bytes);
        long dst = rec.allocate(bytes);
        try {
            CUdeviceptr s = new CUdeviceptr().withByteOffset(src);
            CUdeviceptr d = new CUdeviceptr().withByteOffset(dst);
            rec.synchronize(); // makes the context current on this thread
            check(JCudaDriver.cuMemsetD8(s, (byte) 1, bytes), "cuMemsetD8");
            double best = Double.MAX_VALUE;
            for (int i = 0; i < trials + 2; i++) {
                check(JCudaDriver.cuCtxSynchronize(), "cuCtxSynchronize");
                long t0 = System.nanoTime();
                check(JCudaDriver.cuMemcpyDtoD(d, s, bytes), "cuMemcpyDtoD");
                check(JCudaDriver.cuCtxSynchronize(), "cuCtxSynchronize");
                double ms = (System.nanoTime() - t0) / 1e6;
                if (i >= 2) { // two warm-up copies
                    best = Math.min(best, ms);
                }
            }
            System.out.println(json("kind", "copy", "impl", "rlkernels", "method", "cuMemcpyDtoD", "bytes", 2 * bytes,
                    "ms", best, "gbps", 2.0 * bytes / (best / 1e3) / 1e9, "trials", trials));
        } finally {
            rec.free(src);
            rec.free(dst);
        }
    }

    private static void check(int rc, String call) {
        if (rc != CUresult.CUDA_SUCCESS) {
            throw new IllegalStateException(call + " failed: " + CUresult.stringFor(rc));
        }
    }

    // ---------------------------------------------------------------- token log-probs

    /** What to measure: the arguments of {@code logprobs}, checked before the device is opened. */
    record Spec(long rows, long vocab, DType dtype, float temperature, int repeats, int trials, int warmup, Path in, Path out) {
        static Spec parse(Map<String, String> a) {
            DType dtype = switch (a.getOrDefault("dtype", "")) {
                case "f32" -> DType.F32;
                case "bf16" -> DType.BF16;
                case "f16" -> DType.F16;
                default -> throw new UsageException("--dtype: expected f32, bf16 or f16, found " + a.get("dtype"));
            };
            if (!a.containsKey("rows") || !a.containsKey("vocab")) {
                throw new UsageException("--rows and --vocab are required");
            }
            return new Spec(Long.parseLong(a.get("rows")), Long.parseLong(a.get("vocab")), dtype,
                    Float.parseFloat(a.getOrDefault("temperature", "1.0")), intOpt(a, "repeats", 20), intOpt(a, "trials", 10),
                    intOpt(a, "warmup", 5), a.containsKey("in") ? Path.of(a.get("in")) : null,
                    a.containsKey("out") ? Path.of(a.get("out")) : null);
        }
    }

    static void logProbs(Spec spec, Recorder rec) throws IOException {
        long rows = spec.rows();
        long vocab = spec.vocab();
        DType dtype = spec.dtype();
        int repeats = spec.repeats();
        int trials = spec.trials();
        int warmup = spec.warmup();
        Path in = spec.in();
        Path out = spec.out();
        LogProbs.Config config = LogProbs.Config.defaults().withTemperature(spec.temperature());
        Map<String, Object> id = new LinkedHashMap<>();
        id.put("impl", "rlkernels");
        id.put("rows", rows);
        id.put("vocab", vocab);
        id.put("dtype", dtype.shortName());
        id.put("temperature", spec.temperature());

        try (Arena arena = Arena.ofConfined()) {
            CudaBackend b = rec.backend;
            System.err.printf("GpuLogProbsBench: %s, logits %s[%d, %d], inputs %s%n", b.description(), dtype.shortName(), rows,
                    vocab, in == null ? "generated here" : "from " + in);
            System.out.println(json("kind", "device", "impl", "rlkernels", "device", b.description()));
            DeviceTensor logits;
            DeviceTensor targets;
            DeviceTensor gradLogp;
            long t0 = System.nanoTime();
            if (in != null) {
                try (HostTensor z = readNpy(in.resolve("logits.npy"), arena, dtype, rows, vocab);
                     HostTensor y = readNpy(in.resolve("targets.npy"), arena, null, rows);
                     HostTensor g = readNpy(in.resolve("grad_logp.npy"), arena, DType.F32, rows)) {
                    logits = (DeviceTensor) b.upload(z);
                    targets = (DeviceTensor) b.upload(y);
                    gradLogp = (DeviceTensor) b.upload(g);
                }
            } else {
                try (HostTensor z = Fill.normal(dtype, 3.0, rows, vocab); HostTensor y = Fill.targets(rows, vocab);
                     HostTensor g = Fill.normal(DType.F32, 1.0, rows)) {
                    logits = (DeviceTensor) b.upload(z);
                    targets = (DeviceTensor) b.upload(y);
                    gradLogp = (DeviceTensor) b.upload(g);
                }
            }
            System.err.printf("GpuLogProbsBench: inputs on the device in %.1f s%n", (System.nanoTime() - t0) / 1e9);
            try (DeviceTensor logp = (DeviceTensor) b.allocate(DType.F32, rows); DeviceTensor lse = (DeviceTensor) b.allocate(DType.F32, rows);
                 DeviceTensor entropy = (DeviceTensor) b.allocate(DType.F32, rows); DeviceTensor grad = (DeviceTensor) b.allocate(DType.F32, rows, vocab);
                 DeviceTensor lseParts = (DeviceTensor) b.allocate(DType.F32, rows, 2)) {
                List<Measurement> ms = new ArrayList<>();
                // forward without entropy: logp and lse (the baseline expression computes logp only)
                Runnable fwd = () -> b.logProbs(config, logits, targets, logp, lse, null);
                ms.add(measure("forward", "api", fwd, b, warmup, repeats, trials));
                ms.add(measure("forward", "kernel", rec::replay, b, warmup, repeats, trials));
                // forward with entropy: logp, lse, entropy and the backward's lseParts in the same pass
                Runnable fwdH = () -> b.logProbs(config, logits, targets, logp, lse, entropy, lseParts);
                ms.add(measure("forward_entropy", "api", fwdH, b, warmup, repeats, trials));
                byte[] apiLogp = bytes(b, logp, rows);
                ms.add(measure("forward_entropy", "kernel", rec::replay, b, warmup, repeats, trials));
                boolean sameForward = Arrays.equals(apiLogp, bytes(b, logp, rows));
                // backward from grad_logp into a separate f32 gradient (lseParts from the forward above)
                Runnable bwd = () -> b.logProbsBackward(config, logits, targets, lseParts, null, gradLogp, null, grad);
                ms.add(measure("backward", "api", bwd, b, warmup, repeats, trials));
                ms.add(measure("backward", "kernel", rec::replay, b, warmup, repeats, trials));
                for (Measurement m : ms) {
                    Map<String, Object> line = new LinkedHashMap<>();
                    line.put("kind", "op");
                    line.putAll(id);
                    line.put("op", m.op);
                    line.put("variant", m.variant);
                    line.put("ms", m.median);
                    line.put("ms_min", m.min);
                    line.put("repeats", repeats);
                    line.put("trials", trials);
                    System.out.println(json(line));
                }
                Map<String, Object> check = new LinkedHashMap<>();
                check.put("kind", "replay_check");
                check.putAll(id);
                check.put("identical", sameForward);
                System.out.println(json(check));
                if (out != null) {
                    Files.createDirectories(out);
                    writeNpy(out.resolve("logp.npy"), bytes(b, logp, rows), rows);
                    writeNpy(out.resolve("lse.npy"), bytes(b, lse, rows), rows);
                    writeNpy(out.resolve("entropy.npy"), bytes(b, entropy, rows), rows);
                    long k = Math.min(rows, GRAD_ROWS);
                    try (HostTensor h = HostTensor.allocate(DType.F32, k, vocab)) {
                        rec.copyToHost(h.segment(), grad.address(), h.byteSize());
                        writeNpy(out.resolve("grad_rows.npy"), h.segment().toArray(ValueLayout.JAVA_BYTE), k, vocab);
                    }
                }
            } finally {
                logits.close();
                targets.close();
                gradLogp.close();
            }
        }
    }

    private record Measurement(String op, String variant, double median, double min) {}

    /** {@code trials} batches of {@code repeats} calls, synchronized around each batch; ms per call. */
    private static Measurement measure(String op, String variant, Runnable call, CudaBackend b, int warmup, int repeats,
                                       int trials) {
        for (int i = 0; i < warmup; i++) {
            call.run();
        }
        b.synchronize();
        double[] perCall = new double[trials];
        for (int t = 0; t < trials; t++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < repeats; i++) {
                call.run();
            }
            b.synchronize();
            perCall[t] = (System.nanoTime() - t0) / 1e6 / repeats;
        }
        double[] sorted = perCall.clone();
        Arrays.sort(sorted);
        double median = trials % 2 == 1 ? sorted[trials / 2] : (sorted[trials / 2 - 1] + sorted[trials / 2]) / 2;
        System.err.printf(Locale.ROOT, "GpuLogProbsBench: %-16s %-6s %9.4f ms (min %.4f)%n", op, variant, median, sorted[0]);
        return new Measurement(op, variant, median, sorted[0]);
    }

    private static byte[] bytes(CudaBackend b, DeviceTensor t, long n) {
        try (HostTensor h = HostTensor.allocate(DType.F32, n)) {
            b.download(t, h);
            return h.segment().toArray(ValueLayout.JAVA_BYTE);
        }
    }

    // ---------------------------------------------------------------- .npy in and out (format version 1-3, little-endian)

    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

    /**
     * Maps a .npy file and wraps its data without a copy. {@code dtype} null accepts int32 or
     * int64; BF16 expects uint16 words.
     */
    public static HostTensor readNpy(Path file, Arena arena, DType dtype, long... shape) throws IOException {
        MemorySegment all;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            all = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
        }
        byte[] magic = all.asSlice(0, Math.min(all.byteSize(), 6)).toArray(ValueLayout.JAVA_BYTE);
        if (magic.length < 6 || (magic[0] & 0xFF) != 0x93 || !new String(magic, 1, 5, StandardCharsets.ISO_8859_1).equals("NUMPY")) {
            throw new IOException(file + ": not a .npy file");
        }
        int major = all.get(ValueLayout.JAVA_BYTE, 6);
        long headerLen = major == 1 ? Short.toUnsignedInt(all.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 8))
                : Integer.toUnsignedLong(all.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 8));
        long dataStart = (major == 1 ? 10 : 12) + headerLen;
        String header = new String(all.asSlice(major == 1 ? 10 : 12, headerLen).toArray(ValueLayout.JAVA_BYTE),
                StandardCharsets.ISO_8859_1);
        String descr = group(DESCR, header, file);
        if (group(FORTRAN, header, file).equals("True")) {
            throw new IOException(file + ": Fortran order is not supported");
        }
        long[] found = Arrays.stream(group(SHAPE, header, file).split(",")).map(String::trim).filter(s -> !s.isEmpty())
                .mapToLong(Long::parseLong).toArray();
        DType fileType = switch (descr) {
            case "<f4" -> DType.F32;
            case "<f2" -> DType.F16;
            case "<u2" -> DType.BF16; // bf16 travels as uint16 bits
            case "<i4" -> DType.I32;
            case "<i8" -> DType.I64;
            default -> throw new IOException(file + ": unsupported dtype " + descr);
        };
        boolean typeOk = dtype == null ? fileType.isInteger() : fileType == dtype;
        if (!typeOk || !Arrays.equals(found, shape)) {
            throw new IOException(file + ": expected " + (dtype == null ? "int32/int64" : dtype.shortName()) + Arrays.toString(shape)
                    + ", found " + descr + Arrays.toString(found));
        }
        long bytes = fileType.byteSize();
        for (long d : found) {
            bytes *= d;
        }
        return HostTensor.wrap(all.asSlice(dataStart, bytes), fileType, found);
    }

    private static String group(Pattern p, String header, Path file) throws IOException {
        Matcher m = p.matcher(header);
        if (!m.find()) {
            throw new IOException(file + ": .npy header without " + p.pattern() + ": " + header);
        }
        return m.group(1);
    }

    /** Writes little-endian float32 data as a version-1 .npy file. */
    public static void writeNpy(Path file, byte[] data, long... shape) throws IOException {
        StringBuilder s = new StringBuilder();
        for (long d : shape) {
            s.append(d).append(',');
        }
        if (shape.length > 1) {
            s.setLength(s.length() - 1);
        }
        StringBuilder header = new StringBuilder("{'descr': '<f4', 'fortran_order': False, 'shape': (" + s + "), }");
        while ((10 + header.length() + 1) % 64 != 0) {
            header.append(' ');
        }
        header.append('\n');
        ByteBuffer pre = ByteBuffer.allocate(10).order(ByteOrder.LITTLE_ENDIAN);
        pre.put((byte) 0x93).put("NUMPY".getBytes(StandardCharsets.ISO_8859_1)).put((byte) 1).put((byte) 0)
                .putShort((short) header.length());
        try (OutputStream os = Files.newOutputStream(file)) {
            os.write(pre.array());
            os.write(header.toString().getBytes(StandardCharsets.ISO_8859_1));
            os.write(data);
        }
    }

    // ---------------------------------------------------------------- JSON lines

    static String json(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return json(m);
    }

    static String json(Map<String, Object> m) {
        StringBuilder sb = new StringBuilder("{");
        for (Map.Entry<String, Object> e : m.entrySet()) {
            if (sb.length() > 1) {
                sb.append(", ");
            }
            sb.append(Json.quote(e.getKey())).append(": ");
            Object v = e.getValue();
            if (v instanceof Double d) {
                sb.append(Double.isFinite(d) ? String.format(Locale.ROOT, "%.6g", d) : "null");
            } else if (v instanceof Float f) {
                sb.append(Float.isFinite(f) ? String.format(Locale.ROOT, "%s", f) : "null");
            } else if (v instanceof Number || v instanceof Boolean) {
                sb.append(v);
            } else {
                sb.append(Json.quote(String.valueOf(v)));
            }
        }
        return sb.append('}').toString();
    }

}
