package io.rlkernels.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The command line as a hostile or careless user meets it: forged .npy headers, files that are not
 * files, outputs that are inputs, a full disk, repeated or malformed parameters. Every case ends in
 * one line "error: ..." naming the file or argument, exit code 2, no stack trace, and --in exactly
 * as it was.
 */
class HostileInputCommandTest {
    @TempDir
    Path dir;
    Path in;
    Path out;

    @BeforeEach
    void inputs() throws IOException {
        assumeTrue(BackendUnderTest.selected("reference"), "rlk.test.backends leaves the reference out");
        in = Files.createDirectories(dir.resolve("in"));
        out = dir.resolve("out");
        writeLogProbsInputs(3, 20);
    }

    /** logits [n, v], targets and grad_logp [n] in --in, fresh random values. */
    private void writeLogProbsInputs(long n, long v) throws IOException {
        SplittableRandom rng = new SplittableRandom(TestData.newSeed());
        try (HostTensor z = TestData.logits(rng, DType.F32, n, v, 1.0); HostTensor y = TestData.targets(rng, DType.I32, n, v, 0, -100);
             HostTensor g = TestData.normal(rng, n, 1.0)) {
            Npy.write(in.resolve("logits.npy"), z);
            Npy.write(in.resolve("targets.npy"), y);
            Npy.write(in.resolve("grad_logp.npy"), g);
        }
    }

    /** The outcome of one command: exit code and what it printed. */
    record Run(int code, String out, String err) {}

    static Run run(String... args) {
        PrintStream stdout = System.out;
        PrintStream stderr = System.err;
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        ByteArrayOutputStream e = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(o, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(e, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Run(code, o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(stdout);
            System.setErr(stderr);
        }
    }

    private Run logprobs(String... extra) {
        List<String> args = new ArrayList<>(List.of("op", "logprobs", "--backend", "reference", "--in", in.toString(), "--out",
                out.toString()));
        args.addAll(List.of(extra));
        return run(args.toArray(String[]::new));
    }

    /** Every file under a folder with the hash of its bytes (links followed). */
    static TreeMap<String, String> snapshot(Path folder) throws Exception {
        TreeMap<String, String> m = new TreeMap<>();
        try (Stream<Path> files = Files.walk(folder)) {
            for (Path f : files.toList()) {
                if (Files.isRegularFile(f)) {
                    m.put(folder.relativize(f).toString(), HexFormat.of().formatHex(
                            MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(f))));
                }
            }
        }
        return m;
    }

    /** Bad input: exit 2, one error line naming {@code named} and containing {@code says}, no trace, --in unchanged. */
    private void assertRefused(String named, String says, java.util.function.Supplier<Run> command) throws Exception {
        TreeMap<String, String> before = snapshot(in);
        Run r = assertTimeoutPreemptively(Duration.ofSeconds(60), command::get, "the command returned (no hang)");
        assertEquals(2, r.code(), "exit code of bad input; stderr: " + r.err());
        assertTrue(r.err().startsWith("error: "), "one error line: " + r.err());
        assertTrue(r.err().contains(named), "the message names " + named + ": " + r.err());
        assertTrue(r.err().contains(says), "the message says " + says + ": " + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
        assertEquals(before, snapshot(in), "--in is exactly as it was");
        if (Files.isDirectory(out)) {
            try (Stream<Path> left = Files.list(out)) {
                List<Path> l = left.filter(p -> p.getFileName().toString().endsWith(".tmp")).toList();
                assertTrue(l.isEmpty(), "no temporary left behind: " + l);
            }
        }
    }

    /** A .npy file with a header of our choosing (padded as numpy pads it) and raw data. */
    static void forged(Path file, int major, String dict, byte[] data) throws IOException {
        int lenBytes = major == 1 ? 2 : 4;
        int total = 8 + lenBytes + dict.length() + 1;
        String header = dict + " ".repeat((64 - total % 64) % 64) + "\n";
        forgedRaw(file, major, header.getBytes(StandardCharsets.ISO_8859_1).length, header, data);
    }

    /** The same with the header length field set to {@code claimedLength} whatever the header is. */
    static void forgedRaw(Path file, int major, long claimedLength, String header, byte[] data) throws IOException {
        int lenBytes = major == 1 ? 2 : 4;
        byte[] h = header.getBytes(StandardCharsets.ISO_8859_1);
        ByteBuffer b = ByteBuffer.allocate(8 + lenBytes + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) major, 0});
        if (major == 1) {
            b.putShort((short) claimedLength);
        } else {
            b.putInt((int) claimedLength);
        }
        b.put(h).put(data);
        Files.write(file, b.array());
    }

    private Path logits() {
        return in.resolve("logits.npy");
    }

    private static byte[] floats(int n) {
        return new byte[4 * n];
    }

    @Test
    void aShapeWhoseByteCountWrapsAroundIsRefused() throws Exception {
        // f32 [2^31, 2^31]: 2^64 bytes, which is 0 in 64-bit arithmetic, over no data at all
        forged(logits(), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2147483648, 2147483648), }", new byte[0]);
        assertRefused("logits.npy", "bytes", this::logprobs);
        forged(logits(), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", new byte[0]);
        assertRefused("logits.npy", "elements", this::logprobs);
        forged(logits(), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551616, 1), }", new byte[0]);
        assertRefused("logits.npy", "below 2^63", this::logprobs);
    }

    @Test
    void dataShorterOrLongerThanTheShapeIsRefused() throws Exception {
        forged(logits(), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 20), }", floats(59));
        assertRefused("logits.npy", "truncated", this::logprobs);
        forged(logits(), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 20), }", floats(61));
        assertRefused("logits.npy", "bytes after the array", this::logprobs);
    }

    @Test
    void theHeaderIsParsedNotMatched() throws Exception {
        String[][] cases = {
            // a duplicate key: Python (numpy) keeps the last, a regular expression the first
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 20), 'shape': (3, 20), }", "once"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 20), 'extra': 1, }", "only the keys"},
            {"{'descr': '<f4', 'shape': (3, 20), }", "'fortran_order'"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4.5), }", "integer dimension"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, -20), }", "integer dimension"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (60), }", "a tuple"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 20), } trailing", "only spaces"},
            {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3, 20), }", "structured"},
            {"{'descr': '>f4', 'fortran_order': False, 'shape': (3, 20), }", "'>f4'"},
            {"{'descr': '<i2', 'fortran_order': False, 'shape': (3, 20), }", "'<i2'"},
            {"{'descr': '<f4', 'fortran_order': True, 'shape': (3, 20), }", "fortran_order True"},
            {"{'descr': '<f4', 'fortran_order': None, 'shape': (3, 20), }", "True, False"},
            {"not a dict at all", "'{'"},
        };
        for (String[] c : cases) {
            forged(logits(), 1, c[0], floats(60));
            assertRefused("logits.npy", c[1], this::logprobs);
        }
    }

    @Test
    void headerLengthsAreBounded() throws Exception {
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 20), }\n";
        forgedRaw(logits(), 2, 0x80000000L, dict, floats(60)); // 2 GiB: numpy's loader refuses it too
        assertRefused("logits.npy", "at most 10000", this::logprobs);
        forgedRaw(logits(), 1, 9000, dict, floats(1)); // longer than the file
        assertRefused("logits.npy", "rest of the file", this::logprobs);
        forgedRaw(logits(), 4, dict.length(), dict, floats(60));
        assertRefused("logits.npy", "version", this::logprobs);
        Files.write(logits(), new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1});
        assertRefused("logits.npy", "at least 10 bytes", this::logprobs);
        Files.write(logits(), "PK\3\4 a zip".getBytes(StandardCharsets.ISO_8859_1));
        assertRefused("logits.npy", "bad magic", this::logprobs);
    }

    @Test
    void onlyRegularFilesAreOpened() throws Exception {
        Files.delete(logits());
        Files.createDirectory(logits());
        assertRefused("logits.npy", "a directory", this::logprobs);
        Files.delete(logits());
        Process mkfifo = new ProcessBuilder("mkfifo", logits().toString()).start();
        assertTrue(mkfifo.waitFor(10, TimeUnit.SECONDS) && mkfifo.exitValue() == 0, "mkfifo");
        assertRefused("logits.npy", "FIFO", this::logprobs); // opening a FIFO would block forever
        Files.delete(logits());
        Files.createSymbolicLink(logits(), Path.of("/dev/zero"));
        assertRefused("logits.npy", "device", this::logprobs);
        Files.delete(logits());
        assertRefused("logits.npy", "no such file", this::logprobs);
    }

    @Test
    void anOutputThatIsAnInputIsRefused() throws Exception {
        Files.createDirectories(out);
        Files.createSymbolicLink(out.resolve("grad_logits.npy"), logits());
        assertRefused("grad_logits.npy", "the input", this::logprobs);
        assertFalse(Files.exists(out.resolve("logp.npy")), "nothing written when one output is refused");
        Files.delete(out.resolve("grad_logits.npy"));
        Files.createLink(out.resolve("lse.npy"), in.resolve("targets.npy")); // a hard link: the same file too
        assertRefused("lse.npy", "the input", this::logprobs);
        Files.delete(out.resolve("lse.npy"));
        // --out = --in is fine while no output name is an input's
        out = in;
        TreeMap<String, String> before = snapshot(in);
        assertEquals(0, logprobs().code());
        TreeMap<String, String> after = snapshot(in);
        before.forEach((k, v) -> assertEquals(v, after.get(k), k + " unchanged"));
    }

    @Test
    void anOutputPathThatIsAFolderOrAFileIsRefused() throws Exception {
        Files.createDirectories(out.resolve("logp.npy"));
        assertRefused("logp.npy", "a directory", this::logprobs);
        Files.delete(out.resolve("logp.npy"));
        Files.delete(out);
        Files.writeString(out, "a file");
        assertRefused("--out", "not a folder", this::logprobs);
        Files.delete(out);
        assertRefused("--in", "nothing at", () -> run("op", "logprobs", "--in", dir.resolve("nowhere").toString(), "--out",
                out.toString()));
    }

    @Test
    void parametersAreStrict() throws Exception {
        assertRefused("--param temperature", "twice (0.7 and 0.8)",
                () -> logprobs("--param", "temperature=0.7", "--param", "temperature=0.8"));
        assertRefused("--param temperature", "float32's range", () -> logprobs("--param", "temperature=1e40"));
        assertRefused("--param temperature", "float32's range", () -> logprobs("--param", "temperature=NaN"));
        assertRefused("--param temperature", "0.7f", () -> logprobs("--param", "temperature=0.7f"));
        assertRefused("--param ignore_index", "4.5", () -> logprobs("--param", "ignore_index=4.5"));
        assertRefused("--param", "'temperature'", () -> logprobs("--param", "temperature"));
        assertRefused("--param", "tempreature", () -> logprobs("--param", "tempreature=1"));
        assertRefused("temperature", "-1.0", () -> logprobs("--param", "temperature=-1"));
    }

    @Test
    void aFailedWriteNamesTheFileAndLeavesNoPartialOutput() throws Exception {
        try (InputFiles inputs = new InputFiles(in); OutputFiles outputs = new OutputFiles(out, inputs);
             HostTensor t = HostTensor.allocate(DType.F32, 4).fill(1f)) {
            outputs.npy("first.npy", t);
            IOException e = org.junit.jupiter.api.Assertions.assertThrows(IOException.class, () -> outputs.write("second.npy", f -> {
                Files.writeString(f, "partial");
                throw new IOException("No space left on device");
            }));
            assertTrue(e.getMessage().contains("second.npy") && e.getMessage().contains("No space left on device")
                    && e.getMessage().contains("no output was written"), e.getMessage());
        }
        try (Stream<Path> left = Files.list(out)) {
            assertEquals(List.of(), left.toList(), "neither the complete nor the partial output, nor a temporary");
        }
    }

    /** A real short write: the file-size limit (as a full disk does) in a child JVM, which gets EFBIG. */
    @Test
    void aFileSizeLimitIsAFailedWriteNotAPartialOutput() throws Exception {
        writeLogProbsInputs(64, 2000);
        TreeMap<String, String> before = snapshot(in);
        // 64 KiB a file: logp, lse and entropy fit, grad_logits (500 KiB) does not
        Process p = new ProcessBuilder("bash", "-c", "ulimit -f 64; exec \"$0\" \"$@\"", javaBinary(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), "io.rlkernels.cli.Main",
                "op", "logprobs", "--backend", "reference", "--in", in.toString(), "--out", out.toString())
                .redirectErrorStream(true).start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the child JVM finished");
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(2, p.exitValue(), output);
        assertTrue(output.contains("error: ") && output.contains("grad_logits.npy") && output.contains("no output was written"),
                output);
        try (Stream<Path> left = Files.list(out)) {
            assertEquals(List.of(), left.toList(), "no output and no temporary: " + output);
        }
        assertEquals(before, snapshot(in));
    }

    /** A non-ASCII path works under the C locale through the launchers' environment (bin/lib/jdk.sh). */
    @Test
    void aNonAsciiPathWorksWhateverTheLocale() throws Exception {
        Path accented = Files.createDirectories(dir.resolve("entrée-données"));
        for (String f : List.of("logits.npy", "targets.npy")) {
            Files.copy(in.resolve(f), accented.resolve(f));
        }
        Path jdkSh = Path.of(System.getProperty("user.dir")).resolve("../bin/lib/jdk.sh").normalize();
        assumeTrue(Files.exists(jdkSh), "bin/lib/jdk.sh not found from " + System.getProperty("user.dir"));
        ProcessBuilder pb = new ProcessBuilder("bash", "-c", "source \"$0\"; exec \"$JAVA_HOME/bin/java\" \"$@\"", jdkSh.toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), "io.rlkernels.cli.Main",
                "op", "logprobs", "--backend", "reference", "--in", accented.toString(), "--out",
                accented.resolve("sortie").toString()).redirectErrorStream(true);
        pb.environment().remove("LC_ALL");
        pb.environment().put("LANG", "C");
        pb.environment().put("LC_ALL", "C");
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        Process p = pb.start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), output);
        assertTrue(Files.exists(accented.resolve("sortie").resolve("logp.npy")), output);
    }

    /** Valid inputs of every op, small: name -> (file -> tensor), and the params that use every input. */
    private static java.util.Map<String, java.util.Map<String, HostTensor>> validInputs() {
        java.util.Map<String, java.util.Map<String, HostTensor>> ops = new java.util.LinkedHashMap<>();
        SplittableRandom rng = new SplittableRandom(7);
        ops.put("logprobs", new java.util.LinkedHashMap<>(java.util.Map.of("logits.npy", TestData.logits(rng, DType.F32, 3, 20, 1.0),
                "targets.npy", HostTensor.of(new int[] {1, 2, 3}), "grad_logp.npy", TestData.normal(rng, 3, 1.0),
                "grad_entropy.npy", TestData.normal(rng, 3, 1.0))));
        ops.put("advantages", new java.util.LinkedHashMap<>(java.util.Map.of("rewards.npy", TestData.normal(rng, 6, 1.0),
                "group_ids.npy", HostTensor.of(new int[] {0, 0, 1, 1, 2, 2}))));
        ops.put("gae", new java.util.LinkedHashMap<>(java.util.Map.of("rewards.npy", HostTensor.of(new float[10], 2, 5),
                "values.npy", HostTensor.of(new float[10], 2, 5), "mask.npy", HostTensor.of(new byte[] {1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, 2, 5))));
        ops.put("policy_loss", new java.util.LinkedHashMap<>(java.util.Map.of("logp.npy", TestData.normal(rng, 6, 0.1),
                "old_logp.npy", TestData.normal(rng, 6, 0.1), "advantages.npy", TestData.normal(rng, 6, 1.0),
                "mask.npy", HostTensor.of(new byte[] {1, 1, 0, 1, 1, 1}), "seq_ids.npy", HostTensor.of(new int[] {0, 0, 0, 1, 1, 1}),
                "ref_logp.npy", TestData.normal(rng, 6, 0.1), "entropy.npy", TestData.normal(rng, 6, 1.0))));
        ops.put("bgpo", new java.util.LinkedHashMap<>(java.util.Map.of("logits.npy", TestData.logits(rng, DType.F32, 8, 7, 1.0),
                "targets.npy", HostTensor.of(new int[] {1, 2, 3, 4}), "seq_ids.npy", HostTensor.of(new int[] {0, 0, 1, 1}),
                "masks.npy", HostTensor.of(new byte[] {1, 0, 1, 1, 0, 1, 1, 0}, 2, 4),
                "weights.npy", HostTensor.of(new float[] {0.5f, 0.5f, 1f, 1f}, 2, 2), "old.npy", TestData.normal(rng, 4, 1.0),
                "advantages.npy", HostTensor.of(new float[] {1f, -1f}))));
        return ops;
    }

    private static final java.util.Map<String, String[]> PARAMS = java.util.Map.of("policy_loss", new String[] {"--param",
        "ratio=sequence", "--param", "agg=seq-mean-token-mean", "--param", "kl=k1", "--param", "kl_coef=0.1", "--param",
        "entropy_coef=0.01"});

    /** A spoiled copy of a valid input: a scalar, another dtype, another length, NaN values, or nothing at all. */
    private static HostTensor spoiled(HostTensor t, int how) {
        long[] s = t.shape();
        return switch (how) {
            case 0 -> HostTensor.allocate(DType.F32); // shape ()
            case 1 -> HostTensor.allocate(t.dtype() == DType.F32 ? DType.F64 : DType.F32, s);
            case 2 -> HostTensor.allocate(t.dtype(), Math.max(0, t.numel() - 1));
            case 3 -> t.dtype().isFloatingPoint() ? HostTensor.allocate(t.dtype(), s).fill(Float.NaN)
                    : HostTensor.allocate(DType.I64, s); // ids of another width (zeros)
            default -> HostTensor.allocate(t.dtype(), 0);
        };
    }

    /**
     * Every input of every op, spoiled in five ways: the command exits 0 (the op accepts it: NaN
     * logits, say) or 2 with one error line; never a trace, a crash or exit 3, and --in unchanged.
     */
    @Test
    void everyInputOfEveryOpSpoiledExitsCleanly() throws Exception {
        for (var op : validInputs().entrySet()) {
            for (String victim : op.getValue().keySet()) {
                for (int how = 0; how < 5; how++) {
                    Path opIn = Files.createDirectories(dir.resolve(op.getKey() + "-" + victim + "-" + how));
                    for (var f : op.getValue().entrySet()) {
                        HostTensor t = f.getKey().equals(victim) ? spoiled(f.getValue(), how) : f.getValue();
                        Npy.write(opIn.resolve(f.getKey()), t);
                    }
                    List<String> args = new ArrayList<>(List.of("op", op.getKey(), "--backend", "reference", "--in", opIn.toString(),
                            "--out", opIn.resolve("out").toString()));
                    args.addAll(List.of(PARAMS.getOrDefault(op.getKey(), new String[0])));
                    TreeMap<String, String> before = snapshot(opIn);
                    Run r = run(args.toArray(String[]::new));
                    String what = op.getKey() + " with " + victim + " spoiled (" + how + "): ";
                    assertTrue(r.code() == 0 || r.code() == 2, what + "exit " + r.code() + "\n" + r.err());
                    if (r.code() == 2) {
                        assertTrue(r.err().startsWith("error: ") && !r.err().contains("\tat "), what + r.err());
                    }
                    TreeMap<String, String> after = snapshot(opIn);
                    after.keySet().removeIf(k -> k.startsWith("out"));
                    assertEquals(before, after, what + "--in unchanged");
                }
            }
        }
    }

    private static String javaBinary() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }
}
