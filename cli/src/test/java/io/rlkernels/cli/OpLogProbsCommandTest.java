package io.rlkernels.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.testing.Compare;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code rlkernels op logprobs} on .npy files agrees with the f64 reference (the parity check users run). */
class OpLogProbsCommandTest {
    @TempDir
    Path dir;

    @org.junit.jupiter.api.BeforeEach
    void onlyWhereNativeIsTested() {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.rlkernels.testing.BackendUnderTest.selected("native"),
                "rlk.test.backends leaves native out");
    }

    private void writeInputs(Path in, DType dtype, long n, long v, long seed, boolean withGrads) throws Exception {
        SplittableRandom rng = new SplittableRandom(seed);
        Files.createDirectories(in);
        try (HostTensor logits = TestData.logits(rng, dtype, n, v, 3.0);
             HostTensor targets = TestData.targets(rng, DType.I32, n, v, 0.1, LogProbs.DEFAULT_IGNORE_INDEX);
             HostTensor g = TestData.normal(rng, n, 1.0); HostTensor h = TestData.normal(rng, n, 1.0)) {
            Npy.write(in.resolve("logits.npy"), logits);
            Npy.write(in.resolve("targets.npy"), targets);
            if (withGrads) {
                Npy.write(in.resolve("grad_logp.npy"), g);
                Npy.write(in.resolve("grad_entropy.npy"), h);
            }
        }
    }

    private void assertAgreesWithReference(Path in, Path out, float temperature, boolean withGrads, String ctx) throws Exception {
        LogProbs.Config c = LogProbs.Config.defaults().withTemperature(temperature);
        try (Arena arena = Arena.ofConfined(); ReferenceBackend ref = new ReferenceBackend()) {
            HostTensor logits = Npy.read(in.resolve("logits.npy"), arena);
            HostTensor targets = Npy.read(in.resolve("targets.npy"), arena);
            LogProbs.Result want = ref.logProbs(c, logits, targets, true);
            // f32 logits: 1e-5 relative to the f64 reference (plus a tiny atol for values near 0)
            Tolerance tol = new Tolerance(1e-6, 1e-5);
            Compare.assertClose(ctx + " logp", (HostTensor) want.logp(), Npy.read(out.resolve("logp.npy"), arena), tol);
            Compare.assertClose(ctx + " lse", (HostTensor) want.lse(), Npy.read(out.resolve("lse.npy"), arena), tol);
            Compare.assertClose(ctx + " entropy", (HostTensor) want.entropy(), Npy.read(out.resolve("entropy.npy"), arena), tol);
            if (withGrads) {
                HostTensor grad = (HostTensor) ref.logProbsBackward(c, logits, targets, want.lseParts(), want.entropy(),
                        Npy.read(in.resolve("grad_logp.npy"), arena), Npy.read(in.resolve("grad_entropy.npy"), arena));
                // The op's backward reads its own forward's lse and entropy, rounded to f32 (half an ulp: 5e-7 at
                // |lse| ~ 10), so dz carries an absolute error of about p * (|g| + |h|) * 1e-6 / T on top: where
                // log p + H nearly cancel, that is far above 1e-5 relative. Hence the absolute term here.
                Compare.assertClose(ctx + " grad_logits", grad, Npy.read(out.resolve("grad_logits.npy"), arena),
                        new Tolerance(1e-5, 1e-5));
            } else {
                assertFalse(Files.exists(out.resolve("grad_logits.npy")), "no gradient without an upstream gradient");
            }
            want.close();
        }
    }

    @Test
    void nativeAgreesWithTheF64ReferenceOnF32Logits() throws Exception {
        long seed = TestData.newSeed();
        Path in = dir.resolve("in");
        Path out = dir.resolve("out");
        writeInputs(in, DType.F32, 64, 5003, seed, true);
        int rc = Main.run("op", "logprobs", "--backend", "native", "--in", in.toString(), "--out", out.toString(),
                "--param", "temperature=0.7", "--param", "ignore_index=-100");
        assertEquals(0, rc);
        assertAgreesWithReference(in, out, 0.7f, true, "native seed=" + seed);
    }

    @Test
    void bf16LogitsArriveAsUint16() throws Exception {
        long seed = TestData.newSeed();
        Path in = dir.resolve("in");
        Path out = dir.resolve("out");
        writeInputs(in, DType.BF16, 16, 1000, seed, false);
        String header = new String(Files.readAllBytes(in.resolve("logits.npy")), 0, 80, java.nio.charset.StandardCharsets.ISO_8859_1);
        assertTrue(header.contains("'<u2'"), header);
        assertEquals(0, Main.run("op", "logprobs", "--backend", "native", "--in", in.toString(), "--out", out.toString()));
        assertAgreesWithReference(in, out, 1.0f, false, "native bf16 seed=" + seed);
    }

    @Test
    void badInputExitsWithAMessageNotAStackTrace() throws Exception {
        Path in = dir.resolve("in");
        writeInputs(in, DType.F32, 4, 10, 1, false);
        PrintStream saved = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err, true));
        try {
            assertEquals(2, Main.run("op", "logprobs", "--backend", "native", "--in", in.toString(), "--out",
                    dir.resolve("out").toString(), "--param", "temprature=2"));
            assertEquals(2, Main.run("op", "logprobs", "--backend", "native", "--in", in.toString(), "--out",
                    dir.resolve("out").toString(), "--param", "temperature=-1"));
            assertEquals(2, Main.run("op", "nosuchop", "--in", in.toString(), "--out", dir.resolve("out").toString()));
            assertEquals(2, Main.run("op", "logprobs", "--backend", "native", "--in", dir.resolve("missing").toString(),
                    "--out", dir.resolve("out").toString()));
        } finally {
            System.setErr(saved);
        }
        String text = err.toString();
        assertTrue(text.contains("error: --param: expected a key among [ignore_index, temperature], found temprature"), text);
        assertTrue(text.contains("error: temperature: expected a finite positive number, found -1.0"), text);
        assertTrue(text.contains("error: NAME: expected an op among logprobs, linear_logprobs, advantages, gae, policy_loss, bgpo, found nosuchop"), text);
        assertFalse(text.contains("\tat "), "no stack trace: " + text);
    }

    @Test
    void infoNamesEveryBackend() {
        PrintStream saved = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true));
        try {
            assertEquals(0, Main.run("info"));
        } finally {
            System.setOut(saved);
        }
        String text = out.toString();
        for (String name : new String[] {"java", "reference", "native", "cuda"}) {
            assertTrue(text.contains(name), "info mentions " + name + ":\n" + text);
        }
    }
}
