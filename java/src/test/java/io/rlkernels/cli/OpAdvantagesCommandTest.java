package io.rlkernels.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.testing.Compare;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code rlkernels op advantages} and {@code op gae} on .npy files against the f64 reference. */
class OpAdvantagesCommandTest {
    @TempDir
    Path dir;

    @org.junit.jupiter.api.BeforeEach
    void onlyWhereNativeIsTested() {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.rlkernels.testing.BackendUnderTest.selected("native"),
                "rlk.test.backends leaves native out");
    }

    @Test
    void advantagesOnFilesAgreeWithTheReference() throws Exception {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Path in = Files.createDirectories(dir.resolve("in"));
        try (HostTensor rewards = TestData.normal(rng, 400, 1.0); HostTensor ids = HostTensor.allocate(DType.I64, 400)) {
            for (int i = 0; i < 400; i++) {
                ids.setLong(i, 1000 + rng.nextInt(50));
            }
            Npy.write(in.resolve("rewards.npy"), rewards);
            Npy.write(in.resolve("group_ids.npy"), ids);
            assertEquals(0, Main.run("op", "advantages", "--backend", "native", "--in", in.toString(), "--out",
                    dir.resolve("out").toString(), "--param", "mode=rloo", "--param", "std=biased"));
            GroupAdvantages.Config c = new GroupAdvantages.Config(GroupAdvantages.Mode.RLOO, false, 1e-6f);
            try (HostTensor want = HostTensor.allocate(DType.F32, 400); Arena arena = Arena.ofConfined()) {
                new ReferenceBackend().groupAdvantages(c, rewards, ids, want);
                Compare.assertClose("op advantages seed=" + seed, want, Npy.read(dir.resolve("out/advantages.npy"), arena),
                        new Tolerance(1e-6, 1e-5));
            }
        }
    }

    @Test
    void gaeOnFilesAgreesWithTheReference() throws Exception {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Path in = Files.createDirectories(dir.resolve("in"));
        try (HostTensor r = TestData.normal(rng, 8 * 50, 1.0); HostTensor v = TestData.normal(rng, 8 * 50, 1.0);
             HostTensor m = HostTensor.allocate(DType.U8, 8, 50)) {
            HostTensor r2 = HostTensor.wrap(r.segment(), DType.F32, 8, 50);
            HostTensor v2 = HostTensor.wrap(v.segment(), DType.F32, 8, 50);
            for (int i = 0; i < 400; i++) {
                m.setLong(i, rng.nextDouble() < 0.8 ? 1 : 0);
            }
            Npy.write(in.resolve("rewards.npy"), r2);
            Npy.write(in.resolve("values.npy"), v2);
            Npy.write(in.resolve("mask.npy"), m);
            assertEquals(0, Main.run("op", "gae", "--backend", "native", "--in", in.toString(), "--out",
                    dir.resolve("out").toString(), "--param", "gamma=0.99", "--param", "lam=0.95", "--param", "whiten=true"));
            try (HostTensor adv = HostTensor.allocate(DType.F32, 8, 50); HostTensor ret = HostTensor.allocate(DType.F32, 8, 50);
                 Arena arena = Arena.ofConfined()) {
                ReferenceBackend ref = new ReferenceBackend();
                ref.gae(new Gae.Config(0.99f, 0.95f), r2, v2, m, adv, ret);
                Compare.assertClose("op gae returns seed=" + seed, ret, Npy.read(dir.resolve("out/returns.npy"), arena),
                        new Tolerance(1e-6, 1e-5));
                ref.maskedWhiten(MaskedWhiten.Config.defaults(), adv, m, adv);
                Compare.assertClose("op gae whitened advantages seed=" + seed, adv,
                        Npy.read(dir.resolve("out/advantages.npy"), arena), new Tolerance(1e-6, 1e-5));
            }
        }
    }
}
