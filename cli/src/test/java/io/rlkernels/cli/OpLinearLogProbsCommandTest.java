package io.rlkernels.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.ops.LinearLogProbs;
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

/**
 * {@code rlkernels op linear_logprobs}: hidden f32 and weight bf16 (uint16 bits) agree with the f64
 * reference, grad_weight.npy is the fresh gradient, a rerun writes bitwise the same files, and a
 * hidden size that does not match is refused by name.
 */
class OpLinearLogProbsCommandTest {
    @TempDir
    Path dir;

    @org.junit.jupiter.api.BeforeEach
    void onlyWhereNativeIsTested() {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.rlkernels.testing.BackendUnderTest.selected("native"),
                "rlk.test.backends leaves native out");
    }

    @Test
    void nativeAgreesWithTheReferenceAndARerunIsBitwiseTheSame() throws Exception {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Path in = dir.resolve("in");
        Files.createDirectories(in);
        int n = 30, d = 24, v = 301;
        try (HostTensor h = TestData.logits(rng, DType.F32, n, d, 1.0); HostTensor w = TestData.logits(rng, DType.BF16, v, d, 0.4);
             HostTensor y = TestData.targets(rng, DType.I64, n, v, 0.1, LogProbs.DEFAULT_IGNORE_INDEX);
             HostTensor g = TestData.normal(rng, n, 1.0)) {
            Npy.write(in.resolve("hidden.npy"), h);
            Npy.write(in.resolve("weight.npy"), w);
            Npy.write(in.resolve("targets.npy"), y);
            Npy.write(in.resolve("grad_logp.npy"), g);
        }
        for (String run : new String[] {"out1", "out2"}) {
            assertEquals(0, Main.run("op", "linear_logprobs", "--backend", "native", "--in", in.toString(), "--out",
                    dir.resolve(run).toString(), "--param", "chunk=7", "--param", "temperature=0.9"));
        }
        for (String f : new String[] {"logp.npy", "lse.npy", "entropy.npy", "grad_hidden.npy", "grad_weight.npy"}) {
            assertArrayEquals(Files.readAllBytes(dir.resolve("out1").resolve(f)), Files.readAllBytes(dir.resolve("out2").resolve(f)),
                    f + ": a rerun is bitwise the same");
        }
        LinearLogProbs.Config c = LinearLogProbs.Config.defaults().withLogProbs(LogProbs.Config.defaults().withTemperature(0.9f));
        Path out = dir.resolve("out1");
        try (Arena arena = Arena.ofConfined(); ReferenceBackend ref = new ReferenceBackend()) {
            HostTensor h = Npy.read(in.resolve("hidden.npy"), arena);
            HostTensor w = Npy.read(in.resolve("weight.npy"), arena);
            HostTensor y = Npy.read(in.resolve("targets.npy"), arena);
            try (LogProbs.Result want = ref.linearLogProbs(c, h, w, y, true);
                 HostTensor dH = HostTensor.allocate(DType.F32, n, d); HostTensor dW = HostTensor.allocate(DType.F32, v, d).fill(0)) {
                ref.linearLogProbsBackward(c, h, w, y, want.lseParts(), want.entropy(), Npy.read(in.resolve("grad_logp.npy"), arena),
                        null, dH, dW);
                // |z| ~ 2, d = 24: the f32 product moves a logit by ~1e-6 at most, the outputs by about as much
                Tolerance tol = new Tolerance(1e-5, 1e-5);
                Compare.assertClose("logp", (HostTensor) want.logp(), Npy.read(out.resolve("logp.npy"), arena), tol);
                Compare.assertClose("lse", (HostTensor) want.lse(), Npy.read(out.resolve("lse.npy"), arena), tol);
                Compare.assertClose("entropy", (HostTensor) want.entropy(), Npy.read(out.resolve("entropy.npy"), arena), tol);
                Compare.assertClose("grad_hidden", dH, Npy.read(out.resolve("grad_hidden.npy"), arena), tol);
                Compare.assertClose("grad_weight", dW, Npy.read(out.resolve("grad_weight.npy"), arena), tol);
            }
        }
    }

    @Test
    void aWeightOfAnotherHiddenSizeIsRefusedByName() throws Exception {
        Path in = dir.resolve("in");
        Files.createDirectories(in);
        try (HostTensor h = HostTensor.allocate(DType.F32, 3, 4).fill(0.5f); HostTensor w = HostTensor.allocate(DType.BF16, 5, 6).fill(0.25f);
             HostTensor y = HostTensor.of(new int[] {0, 1, 2}, 3)) {
            Npy.write(in.resolve("hidden.npy"), h);
            Npy.write(in.resolve("weight.npy"), w);
            Npy.write(in.resolve("targets.npy"), y);
        }
        PrintStream saved = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err, true));
        try {
            assertEquals(2, Main.run("op", "linear_logprobs", "--backend", "native", "--in", in.toString(), "--out",
                    dir.resolve("out").toString()));
        } finally {
            System.setErr(saved);
        }
        assertTrue(err.toString().contains("error: weight: expected [V, 4]"), err.toString());
    }
}
