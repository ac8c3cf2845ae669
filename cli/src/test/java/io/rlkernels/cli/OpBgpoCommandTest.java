package io.rlkernels.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.BgpoAccumulator;
import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.Compare;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import io.rlkernels.testing.StrictJson;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code rlkernels op bgpo} on .npy files agrees with the f64 reference. */
class OpBgpoCommandTest {
    @TempDir
    Path dir;

    @Test
    void bgpoOnFilesAgreesWithTheReference() throws Exception {
        Assumptions.assumeTrue(BackendUnderTest.selected("native"), "rlk.test.backends leaves native out");
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        int samples = 4;
        int r = 40;
        int v = 333;
        int s = 5;
        Path in = Files.createDirectories(dir.resolve("in"));
        try (HostTensor logits = TestData.logits(rng, DType.F32, (long) samples * r, v, 2.0);
             HostTensor targets = TestData.targets(rng, DType.I32, r, v, 0, -100); HostTensor ids = HostTensor.allocate(DType.I32, r);
             HostTensor adv = TestData.normal(rng, s, 1.0); HostTensor old = TestData.normal(rng, (long) samples * s, 3.0)) {
            for (int i = 0; i < r; i++) {
                ids.setLong(i, i / 8);
            }
            try (SequenceLayout rows = SequenceLayout.ofSeqIds(ids); Bgpo.Samples masks = Bgpo.sample(seed, samples, rows,
                    Bgpo.Weighting.PER_MASKED_TOKEN)) {
                Npy.write(in.resolve("logits.npy"), HostTensor.wrap(logits.segment(), DType.F32, samples, r, v));
                Npy.write(in.resolve("targets.npy"), targets);
                Npy.write(in.resolve("seq_ids.npy"), ids);
                Npy.write(in.resolve("masks.npy"), masks.masks());
                Npy.write(in.resolve("weights.npy"), masks.weights());
                Npy.write(in.resolve("old.npy"), HostTensor.wrap(old.segment(), DType.F32, samples, s));
                Npy.write(in.resolve("advantages.npy"), adv);
                Path out = dir.resolve("out");
                assertEquals(0, Main.run("op", "bgpo", "--backend", "native", "--in", in.toString(), "--out", out.toString(),
                        "--param", "clip_high=0.28", "--param", "dual_clip=3"));
                Bgpo.Config c = Bgpo.Config.defaults(samples).withClip(0.2f, 0.28f).withDualClip(3f);
                ReferenceBackend ref = new ReferenceBackend();
                try (Arena arena = Arena.ofConfined(); BgpoAccumulator acc = new BgpoAccumulator(ref, c, rows, targets, adv)) {
                    HostTensor grads = Npy.read(out.resolve("grad_logits.npy"), arena);
                    HostTensor values = Npy.read(out.resolve("values.npy"), arena);
                    for (int j = 0; j < samples; j++) {
                        try (HostTensor g = HostTensor.allocate(DType.F32, r, v)) {
                            acc.step(slice(logits, j, r, v), slice(masks.masks(), j, r), slice(masks.weights(), j, s), slice(old, j, s), g);
                            Compare.assertClose("op bgpo grad sample " + j + " seed=" + seed, g, slice(grads, j, r, v),
                                    new Tolerance(1e-7, 1e-5));
                            Compare.assertClose("op bgpo values sample " + j + " seed=" + seed, (HostTensor) acc.lastValues(),
                                    slice(values, j, s), new Tolerance(1e-6, 1e-5));
                        }
                    }
                    double loss = acc.stats().loss();
                    Tolerance.F32_ROUNDED.assertClose(loss, Npy.read(out.resolve("loss.npy"), arena).getFloat(0), "loss.npy");
                    Map<String, Object> metrics = StrictJson.object(Files.readString(out.resolve("metrics.json")));
                    assertEquals((long) samples * s, metrics.get("sequence_samples"));
                    assertFalse(metrics.containsKey("non_finite_count"), metrics.toString());
                }
            }
        }
    }

    /**
     * A batch of no sequence: every statistic that is a mean or a bound of nothing (min d = +inf)
     * has no JSON number, so metrics.json holds null and says so, and a strict parser reads it.
     */
    @Test
    void metricsAreStrictJsonWhenAStatisticIsNotFinite() throws Exception {
        Assumptions.assumeTrue(BackendUnderTest.selected("reference"), "rlk.test.backends leaves the reference out");
        Path in = Files.createDirectories(dir.resolve("in"));
        int samples = 2;
        int v = 7;
        Npy.write(in.resolve("logits.npy"), HostTensor.allocate(DType.F32, samples, 0, v));
        Npy.write(in.resolve("targets.npy"), HostTensor.allocate(DType.I32, 0));
        Npy.write(in.resolve("seq_ids.npy"), HostTensor.allocate(DType.I32, 0));
        Npy.write(in.resolve("masks.npy"), HostTensor.allocate(DType.U8, samples, 0));
        Npy.write(in.resolve("weights.npy"), HostTensor.allocate(DType.F32, samples, 0));
        Npy.write(in.resolve("old.npy"), HostTensor.allocate(DType.F32, samples, 0));
        Npy.write(in.resolve("advantages.npy"), HostTensor.allocate(DType.F32, 0));
        Path out = dir.resolve("out");
        assertEquals(0, Main.run("op", "bgpo", "--backend", "reference", "--in", in.toString(), "--out", out.toString()));
        String text = Files.readString(out.resolve("metrics.json"));
        Map<String, Object> metrics = StrictJson.object(text);
        assertTrue(metrics.containsKey("min_d") && metrics.get("min_d") == null, text);
        assertEquals(2L, metrics.get("non_finite_count"), text);
        assertEquals("[min_d,max_d]", metrics.get("non_finite_keys"), text);
    }

    private static HostTensor slice(HostTensor t, int j, long... shape) {
        long bytes = io.rlkernels.tensor.Shapes.numel(shape) * t.dtype().byteSize();
        return HostTensor.wrap(t.segment().asSlice(j * bytes, bytes), t.dtype(), shape);
    }
}
