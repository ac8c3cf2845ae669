package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.nativecpu.NativeBackend;
import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.Compare;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Group advantages, GAE, returns and whitening on every backend against the f64 reference (ARCHITECTURE §5.2). */
class AdvantagesTest {

    static Stream<BackendUnderTest> fast() {
        return BackendUnderTest.fast();
    }

    static Stream<BackendUnderTest> all() {
        return BackendUnderTest.all();
    }

    static Stream<Arguments> backendMode() {
        List<Arguments> out = new ArrayList<>();
        BackendUnderTest.fast().forEach(b -> {
            for (GroupAdvantages.Mode m : GroupAdvantages.Mode.values()) {
                out.add(Arguments.of(b, m));
            }
        });
        return out.stream();
    }

    /** Ids drawn from a sparse set (not contiguous, unequal groups, some of one member). */
    static HostTensor groupIds(SplittableRandom rng, int s, int groups, DType dtype) {
        long[] names = new long[groups];
        for (int g = 0; g < groups; g++) {
            names[g] = rng.nextLong(1L << 40); // large ids: the layout must not index by them
        }
        HostTensor ids = HostTensor.allocate(dtype, s);
        for (int i = 0; i < s; i++) {
            long id = names[(int) Math.min(groups - 1, (long) (groups * Math.pow(rng.nextDouble(), 2)))];
            ids.setLong(i, dtype == DType.I32 ? id & 0x7FFFFFFF : id);
        }
        return ids;
    }

    /** The modes whose group of one gets 0 and which read no weights. */
    static final GroupAdvantages.Mode[] CLASSIC = {GroupAdvantages.Mode.GRPO, GroupAdvantages.Mode.DRGRPO, GroupAdvantages.Mode.RLOO,
        GroupAdvantages.Mode.BATCH, GroupAdvantages.Mode.NONE};

    /** Runs group advantages with tensors where the backend computes; output poisoned first. */
    static HostTensor advantages(Backend b, GroupAdvantages.Config c, HostTensor rewards, HostTensor ids) {
        return advantages(b, c, rewards, null, ids);
    }

    /** The same with per-sequence weights (opo's lengths; null for the other modes). */
    static HostTensor advantages(Backend b, GroupAdvantages.Config c, HostTensor rewards, HostTensor weights, HostTensor ids) {
        try (Tensor r = b.upload(rewards); HostTensor poison = TestData.poisoned(DType.F32, rewards.numel());
             Tensor out = b.upload(poison); Tensor w = weights == null ? null : b.upload(weights);
             GroupLayout layout = GroupLayout.of(ids)) {
            b.groupAdvantages(c, r, w, layout, out);
            HostTensor host = HostTensor.allocate(DType.F32, rewards.numel());
            b.download(out, host);
            return host;
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("backendMode")
    void groupAdvantagesMatchTheReference(BackendUnderTest bt, GroupAdvantages.Mode mode) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        for (boolean unbiased : new boolean[] {true, false}) {
            for (int[] sizes : new int[][] {{1000, 120}, {3000, 4}}) { // small groups (warp) and groups of ~750 (block)
                GroupAdvantages.Config c = GroupAdvantages.Config.defaults().withMode(mode).withUnbiasedStd(unbiased);
                // passk needs two members a group: ids round-robin there; opo reads lengths, some 0
                boolean passk = mode == GroupAdvantages.Mode.PASSK;
                try (Backend b = bt.open(); HostTensor rewards = TestData.normal(rng, sizes[0], 2.0);
                     HostTensor ids = passk ? roundRobin(sizes[0], sizes[1]) : groupIds(rng, sizes[0], sizes[1], DType.I64);
                     HostTensor lengths = mode == GroupAdvantages.Mode.OPO ? lengths(rng, sizes[0]) : null;
                     HostTensor want = advantages(new ReferenceBackend(), c, rewards, lengths, ids);
                     HostTensor got = advantages(b, c, rewards, lengths, ids)) {
                    Compare.assertClose(bt + " " + mode + " unbiased=" + unbiased + " S=" + sizes[0] + " seed=" + seed, want, got,
                            Tolerance.F32_OUTPUT);
                }
            }
        }
    }

    /** Ids 0 .. groups - 1 in turn: every group has S / groups members. */
    static HostTensor roundRobin(int s, int groups) {
        HostTensor ids = HostTensor.allocate(DType.I64, s);
        for (int i = 0; i < s; i++) {
            ids.setLong(i, i % groups);
        }
        return ids;
    }

    /** Response lengths 0 .. 200 (a few 0). */
    static HostTensor lengths(SplittableRandom rng, int s) {
        HostTensor l = HostTensor.allocate(DType.F32, s);
        for (int i = 0; i < s; i++) {
            l.setFloat(i, rng.nextInt(20) == 0 ? 0 : 1 + rng.nextInt(200));
        }
        return l;
    }

    /**
     * verl's gpg, opo and grpo_passk written out (core_algos.py: compute_gpg_outcome_advantage,
     * compute_opo_outcome_advantage, compute_grpo_passk_outcome_advantage) on a small batch,
     * against every backend: singletons (gpg: alpha r; opo: r), ties for the best (the first wins,
     * with 0), passk with and without the std.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void verlsGpgOpoAndPasskByTheirDefinitions(BackendUnderTest bt) {
        float[] r = {1f, 0f, 3f, 3f, -1f, 0f, 2f, 5f};
        long[] g = {0, 0, 0, 0, 1, 1, 2, 3}; // groups: {1,0,3,3}, {-1,0}, {2}, {5}
        float[] len = {10f, 20f, 30f, 40f, 5f, 15f, 7f, 9f};
        try (Backend b = bt.open(); HostTensor rewards = HostTensor.of(r); HostTensor ids = HostTensor.of(g);
             HostTensor lengths = HostTensor.of(len)) {
            double alpha = 8.0 / 6; // eight sequences, six nonzero rewards
            float[] gpg = advantages(b, GroupAdvantages.Config.defaults().withMode(GroupAdvantages.Mode.GPG), rewards, ids).toFloatArray();
            double[] wantGpg = {alpha * (1 - 1.75), alpha * (0 - 1.75), alpha * (3 - 1.75), alpha * (3 - 1.75), alpha * (-1 + 0.5),
                alpha * (0 + 0.5), alpha * 2, alpha * 5};
            float[] opo = advantages(b, GroupAdvantages.Config.defaults().withMode(GroupAdvantages.Mode.OPO), rewards, lengths, ids)
                    .toFloatArray();
            double b0 = (10 * 1 + 20 * 0 + 30 * 3 + 40 * 3) / 100.0;
            double b1 = (5 * -1 + 15 * 0) / 20.0;
            double[] wantOpo = {1 - b0, 0 - b0, 3 - b0, 3 - b0, -1 - b1, 0 - b1, 2, 5};
            for (int i = 0; i < 8; i++) {
                Tolerance.ADVANTAGE.assertClose(wantGpg[i], gpg[i], bt + " gpg [" + i + "]");
                Tolerance.ADVANTAGE.assertClose(wantOpo[i], opo[i], bt + " opo [" + i + "]");
            }
            // passk on groups of two or more: {1, 0, 3, 3} has a tie for the best (the first 3 wins, with 3 - 3 = 0)
            try (HostTensor pr = HostTensor.of(new float[] {1f, 0f, 3f, 3f, -1f, 0f, 2f, 5f, 4f});
                 HostTensor pg = HostTensor.of(new long[] {0, 0, 0, 0, 1, 1, 2, 2, 2})) {
                float[] withStd = advantages(b, GroupAdvantages.Config.defaults().withMode(GroupAdvantages.Mode.PASSK), pr, pg)
                        .toFloatArray();
                float[] without = advantages(b, GroupAdvantages.Config.defaults().withMode(GroupAdvantages.Mode.PASSK)
                        .withScaleByStd(false), pr, pg).toFloatArray();
                double std1 = Math.sqrt(0.5); // {-1, 0}
                double mean2 = 11 / 3.0;
                double std2 = Math.sqrt(((2 - mean2) * (2 - mean2) + (5 - mean2) * (5 - mean2) + (4 - mean2) * (4 - mean2)) / 2);
                double[] want = {0, 0, 0, 0, 0, 1 / (std1 + 1e-6), 0, 1 / (std2 + 1e-6), 0};
                double[] wantRaw = {0, 0, 0, 0, 0, 1, 0, 1, 0};
                for (int i = 0; i < 9; i++) {
                    Tolerance.ADVANTAGE.assertClose(want[i], withStd[i], bt + " passk [" + i + "]");
                    Tolerance.ADVANTAGE.assertClose(wantRaw[i], without[i], bt + " passk without std [" + i + "]");
                }
            }
            // passk refuses a group of one (verl raises); opo needs the lengths
            IllegalArgumentException single = assertThrows(IllegalArgumentException.class,
                    () -> advantages(b, GroupAdvantages.Config.defaults().withMode(GroupAdvantages.Mode.PASSK), rewards, ids));
            assertTrue(single.getMessage().startsWith("groups:"), single.getMessage());
            IllegalArgumentException noLengths = assertThrows(IllegalArgumentException.class,
                    () -> advantages(b, GroupAdvantages.Config.defaults().withMode(GroupAdvantages.Mode.OPO), rewards, ids));
            assertTrue(noLengths.getMessage().startsWith("weights:"), noLengths.getMessage());
        }
    }

    @Test
    void theReferenceAgreesWithADirectComputation() {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        int s = 500;
        try (HostTensor rewards = TestData.normal(rng, s, 1.0); HostTensor ids = groupIds(rng, s, 60, DType.I32)) {
            Map<Long, List<Integer>> groups = new HashMap<>();
            for (int i = 0; i < s; i++) {
                groups.computeIfAbsent(ids.getLong(i), k -> new ArrayList<>()).add(i);
            }
            double[] grpo = new double[s];
            double[] rloo = new double[s];
            for (List<Integer> members : groups.values()) {
                int n = members.size();
                for (int i : members) {
                    double others = 0;
                    double sum = 0;
                    for (int j : members) {
                        sum += rewards.getFloat(j);
                        others += j == i ? 0 : rewards.getFloat(j);
                    }
                    double mean = sum / n;
                    double var = 0;
                    for (int j : members) {
                        var += Math.pow(rewards.getFloat(j) - mean, 2);
                    }
                    double std = n > 1 ? Math.sqrt(var / (n - 1)) : 0;
                    grpo[i] = n == 1 ? 0 : (rewards.getFloat(i) - mean) / (std + 1e-6);
                    rloo[i] = n == 1 ? 0 : rewards.getFloat(i) - others / (n - 1);
                }
            }
            try (HostTensor a = advantages(new ReferenceBackend(), GroupAdvantages.Config.defaults(), rewards, ids);
                 HostTensor b = advantages(new ReferenceBackend(),
                         GroupAdvantages.Config.defaults().withMode(GroupAdvantages.Mode.RLOO), rewards, ids)) {
                for (int i = 0; i < s; i++) {
                    Tolerance.ADVANTAGE.assertClose(grpo[i], a.getFloat(i), "grpo " + i + " seed=" + seed);
                    Tolerance.ADVANTAGE.assertClose(rloo[i], b.getFloat(i), "rloo " + i + " seed=" + seed);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void aLowVarianceGroupKeepsItsDigits(BackendUnderTest bt) {
        float[] r = {1000.0001f, 1000.0002f, 1000.0003f, 1000.0004f};
        // f64 truth from the f32 inputs
        double mean = 0;
        for (float x : r) {
            mean += x;
        }
        mean /= 4;
        double var = 0;
        for (float x : r) {
            var += (x - mean) * (x - mean);
        }
        double std = Math.sqrt(var / 3);
        // the formula this project refuses: sum of squares minus squared sum, in f32
        float sum = 0;
        float sumSq = 0;
        for (float x : r) {
            sum += x;
            sumSq += x * x;
        }
        double naiveStd = Math.sqrt(Math.max(0, (sumSq - sum * sum / 4) / 3));
        assertTrue(Math.abs(naiveStd - std) > 0.5 * std, "the naive variance is far off here: " + naiveStd + " vs " + std);

        try (Backend b = bt.open(); HostTensor rewards = HostTensor.of(r.clone()); HostTensor ids = HostTensor.of(new int[] {7, 7, 7, 7})) {
            for (GroupAdvantages.Mode mode : CLASSIC) {
                try (HostTensor got = advantages(b, GroupAdvantages.Config.defaults().withMode(mode), rewards, ids)) {
                    for (int i = 0; i < 4; i++) {
                        double want = switch (mode) {
                            case GRPO, BATCH -> (r[i] - mean) / (std + 1e-6);
                            case DRGRPO -> r[i] - mean;
                            case RLOO -> (r[i] - mean) * 4 / 3;
                            case NONE -> r[i];
                            default -> throw new IllegalStateException(mode + " is not classic");
                        };
                        Tolerance.ADVANTAGE.assertClose(want, got.getFloat(i), bt + " " + mode + " [" + i + "]");
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void aGroupOfOneGetsZeroInEveryMode(BackendUnderTest bt) {
        try (Backend b = bt.open(); HostTensor rewards = HostTensor.of(new float[] {3f, 5f, -2f, 7f});
             HostTensor ids = HostTensor.of(new long[] {10, 11, 11, 12})) {
            for (GroupAdvantages.Mode mode : CLASSIC) { // gpg and opo follow verl there: verlsGpgOpoAndPasskByTheirDefinitions
                try (HostTensor got = advantages(b, GroupAdvantages.Config.defaults().withMode(mode), rewards, ids)) {
                    if (mode != GroupAdvantages.Mode.BATCH) {
                        assertEquals(0f, got.getFloat(0), bt + " " + mode + ": singleton 10");
                        assertEquals(0f, got.getFloat(3), bt + " " + mode + ": singleton 12");
                    }
                }
            }
            try (HostTensor one = HostTensor.of(new float[] {4f}); HostTensor id = HostTensor.of(new int[] {0});
                 HostTensor got = advantages(b, GroupAdvantages.Config.defaults().withMode(GroupAdvantages.Mode.BATCH), one, id)) {
                assertEquals(0f, got.getFloat(0), bt + " batch of one");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fast")
    void theSameInputGivesBitwiseTheSameOutput(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open(); HostTensor rewards = TestData.normal(rng, 20_000, 3.0);
             HostTensor ids = groupIds(rng, 20_000, 700, DType.I64);
             HostTensor tokens = TestData.normal(rng, 64 * 999, 1.0); HostTensor mask = randomMask(rng, DType.U8, 64, 999)) {
            for (GroupAdvantages.Mode mode : new GroupAdvantages.Mode[] {GroupAdvantages.Mode.GRPO, GroupAdvantages.Mode.BATCH}) {
                GroupAdvantages.Config c = GroupAdvantages.Config.defaults().withMode(mode);
                try (HostTensor first = advantages(b, c, rewards, ids); HostTensor second = advantages(b, c, rewards, ids)) {
                    assertArrayEquals(first.toFloatArray(), second.toFloatArray(), bt + " " + mode + " seed=" + seed);
                }
            }
            HostTensor x = HostTensor.wrap(tokens.segment(), DType.F32, 64, 999);
            try (HostTensor first = whiten(b, MaskedWhiten.Config.defaults(), x, mask);
                 HostTensor second = whiten(b, MaskedWhiten.Config.defaults(), x, mask)) {
                assertArrayEquals(first.toFloatArray(), second.toFloatArray(), bt + " whiten seed=" + seed);
            }
        }
    }

    @Test
    void nativeOutputDoesNotDependOnTheThreadCount() {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (NativeBackend b = NativeBackend.open(); HostTensor rewards = TestData.normal(rng, 300_000, 3.0);
             HostTensor ids = groupIds(rng, 300_000, 9000, DType.I64);
             HostTensor tokens = TestData.normal(rng, 200_000, 1.0); HostTensor mask = randomMask(rng, DType.F32, 1, 200_000)) {
            int threads = b.threads();
            HostTensor x = HostTensor.wrap(tokens.segment(), DType.F32, 1, 200_000);
            try {
                b.setThreads(1);
                try (HostTensor one = advantages(b, GroupAdvantages.Config.defaults(), rewards, ids);
                     HostTensor w1 = whiten(b, MaskedWhiten.Config.defaults(), x, mask)) {
                    b.setThreads(Math.max(2, threads));
                    try (HostTensor many = advantages(b, GroupAdvantages.Config.defaults(), rewards, ids);
                         HostTensor w2 = whiten(b, MaskedWhiten.Config.defaults(), x, mask)) {
                        assertArrayEquals(one.toFloatArray(), many.toFloatArray(), "seed=" + seed);
                        assertArrayEquals(w1.toFloatArray(), w2.toFloatArray(), "whiten seed=" + seed);
                    }
                }
            } finally {
                b.setThreads(threads);
            }
        }
    }

    // ---- token-level ops ----

    /** A mask with dropped prefixes, suffixes and holes; row 0 drops everything. */
    static HostTensor randomMask(SplittableRandom rng, DType dtype, long b, long t) {
        HostTensor m = HostTensor.allocate(dtype, b, t);
        for (long row = 0; row < b; row++) {
            long start = rng.nextLong(Math.max(1, t / 4) + 1);
            long end = t - rng.nextLong(Math.max(1, t / 4) + 1);
            for (long j = 0; j < t; j++) {
                boolean keep = row != 0 && j >= start && j < end && rng.nextDouble() < 0.85;
                if (dtype == DType.U8) {
                    m.setLong(row * t + j, keep ? 1 : 0);
                } else {
                    m.setFloat(row * t + j, keep ? 1f : 0f);
                }
            }
        }
        return m;
    }

    static HostTensor whiten(Backend b, MaskedWhiten.Config c, HostTensor x, HostTensor mask) {
        try (Tensor xd = b.upload(x); Tensor md = b.upload(mask); HostTensor poison = TestData.poisoned(DType.F32, x.shape());
             Tensor out = b.upload(poison)) {
            b.maskedWhiten(c, xd, md, out);
            HostTensor host = HostTensor.allocate(DType.F32, x.shape());
            b.download(out, host);
            return host;
        }
    }

    /** GAE (values given) or discounted returns (values null): [advantages, returns] on the host. */
    static HostTensor[] scan(Backend b, Gae.Config c, HostTensor r, HostTensor v, HostTensor mask) {
        try (Tensor rd = b.upload(r); Tensor vd = v == null ? null : b.upload(v); Tensor md = b.upload(mask);
             HostTensor poison = TestData.poisoned(DType.F32, r.shape()); Tensor adv = b.upload(poison); Tensor ret = b.upload(poison)) {
            if (v == null) {
                b.discountedReturns(c.gamma(), rd, md, ret);
            } else {
                b.gae(c, rd, vd, md, adv, ret);
            }
            HostTensor a = HostTensor.allocate(DType.F32, r.shape());
            HostTensor g = HostTensor.allocate(DType.F32, r.shape());
            b.download(adv, a);
            b.download(ret, g);
            return new HostTensor[] {a, g};
        }
    }

    static Stream<Arguments> backendMaskDtype() {
        List<Arguments> out = new ArrayList<>();
        BackendUnderTest.fast().forEach(b -> {
            out.add(Arguments.of(b, DType.F32));
            out.add(Arguments.of(b, DType.U8));
        });
        return out.stream();
    }

    @ParameterizedTest(name = "{0} mask {1}")
    @MethodSource("backendMaskDtype")
    void gaeAndReturnsMatchTheReference(BackendUnderTest bt, DType maskType) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        // one position; a row shorter than a tile; longer than one tile (2,048) and than two
        for (long t : new long[] {1, 5, 300, 2049, 4100}) {
            long rows = 6;
            Gae.Config[] configs = {new Gae.Config(1f, 1f), new Gae.Config((float) rng.nextDouble(), (float) rng.nextDouble()),
                new Gae.Config(0.99f, 0.95f)};
            for (Gae.Config c : configs) {
                try (Backend b = bt.open(); HostTensor r = TestData.normal(rng, rows * t, 1.0);
                     HostTensor v = TestData.normal(rng, rows * t, 1.0); HostTensor mask = randomMask(rng, maskType, rows, t)) {
                    HostTensor r2 = HostTensor.wrap(r.segment(), DType.F32, rows, t);
                    HostTensor v2 = HostTensor.wrap(v.segment(), DType.F32, rows, t);
                    String ctx = bt + " T=" + t + " gamma=" + c.gamma() + " lambda=" + c.lambda() + " seed=" + seed;
                    HostTensor[] want = scan(new ReferenceBackend(), c, r2, v2, mask);
                    HostTensor[] got = scan(b, c, r2, v2, mask);
                    Compare.assertClose(ctx + " advantages", want[0], got[0], Tolerance.F32_OUTPUT);
                    Compare.assertClose(ctx + " returns", want[1], got[1], Tolerance.F32_OUTPUT);
                    HostTensor[] wantG = scan(new ReferenceBackend(), c, r2, null, mask);
                    HostTensor[] gotG = scan(b, c, r2, null, mask);
                    Compare.assertClose(ctx + " returns-to-go", wantG[1], gotG[1], Tolerance.F32_OUTPUT);
                    for (HostTensor h : new HostTensor[] {want[0], want[1], got[0], got[1], wantG[0], wantG[1], gotG[0], gotG[1]}) {
                        h.close();
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void gaeSkipsDroppedPositionsAsIfAbsent(BackendUnderTest bt) {
        // r = [1, 9, 2, 0], V = [0.5, 7, 0.25, 3], mask = [1, 0, 1, 0], gamma = 0.9, lambda = 0.8:
        // the kept positions are 0 and 2; position 2 is the last kept, so V_next = 0 there.
        float g = 0.9f;
        float l = 0.8f;
        double d2 = 2 - 0.25;
        double a2 = d2;
        double d0 = 1 + g * 0.25 - 0.5;
        double a0 = d0 + g * l * a2;
        try (Backend b = bt.open(); HostTensor r = HostTensor.of(new float[] {1, 9, 2, 0}, 1, 4);
             HostTensor v = HostTensor.of(new float[] {0.5f, 7, 0.25f, 3}, 1, 4);
             HostTensor m = HostTensor.of(new byte[] {1, 0, 1, 0}, 1, 4)) {
            HostTensor[] out = scan(b, new Gae.Config(g, l), r, v, m);
            assertArrayEquals(new float[] {(float) a0, 0, (float) a2, 0}, out[0].toFloatArray(), 1e-6f, bt + " advantages");
            assertArrayEquals(new float[] {(float) (a0 + 0.5), 0, (float) (a2 + 0.25), 0}, out[1].toFloatArray(), 1e-6f,
                    bt + " returns");
            HostTensor[] ret = scan(b, new Gae.Config(g, l), r, null, m);
            assertArrayEquals(new float[] {1 + g * 2, 0, 2, 0}, ret[1].toFloatArray(), 1e-6f, bt + " returns-to-go");
        }
    }

    @ParameterizedTest(name = "{0} mask {1}")
    @MethodSource("backendMaskDtype")
    void maskedWhiteningMatchesTheReference(BackendUnderTest bt, DType maskType) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open(); HostTensor x = TestData.normal(rng, 37 * 1001, 5.0); HostTensor mask = randomMask(rng, maskType, 37, 1001)) {
            HostTensor x2 = HostTensor.wrap(x.segment(), DType.F32, 37, 1001);
            for (MaskedWhiten.Config c : new MaskedWhiten.Config[] {MaskedWhiten.Config.defaults(), new MaskedWhiten.Config(1e-3f, false)}) {
                try (HostTensor want = whiten(new ReferenceBackend(), c, x2, mask); HostTensor got = whiten(b, c, x2, mask)) {
                    Compare.assertClose(bt + " whiten " + c + " seed=" + seed, want, got, Tolerance.F32_OUTPUT);
                }
            }
            // in place, over the backend's own copy
            try (Tensor xd = b.upload(x2); Tensor md = b.upload(mask); HostTensor want = whiten(new ReferenceBackend(),
                    MaskedWhiten.Config.defaults(), x2, mask); HostTensor got = HostTensor.allocate(DType.F32, 37, 1001)) {
                b.maskedWhiten(MaskedWhiten.Config.defaults(), xd, md, xd);
                b.download(xd, got);
                Compare.assertClose(bt + " whiten in place seed=" + seed, want, got, Tolerance.F32_OUTPUT);
            }
            // nothing kept (fresh memory is zeroed): zeros, not NaN
            try (HostTensor none = HostTensor.allocate(maskType, 37, 1001);
                 HostTensor got = whiten(b, MaskedWhiten.Config.defaults(), x2, none)) {
                for (float f : got.toFloatArray()) {
                    assertEquals(0f, f, bt + " nothing kept");
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} mask {1}")
    @MethodSource("backendMaskDtype")
    void sequenceAdvantagesBroadcastToTokenRows(BackendUnderTest bt, DType maskType) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open(); HostTensor a = TestData.normal(rng, 13, 1.0); HostTensor mask = randomMask(rng, maskType, 13, 77);
             Tensor ad = b.upload(a); Tensor md = b.upload(mask); HostTensor poison = TestData.poisoned(DType.F32, 13, 77);
             Tensor out = b.upload(poison); HostTensor got = HostTensor.allocate(DType.F32, 13, 77)) {
            b.sequenceToTokens(ad, md, out);
            b.download(out, got);
            for (int s = 0; s < 13; s++) {
                for (int t = 0; t < 77; t++) {
                    float want = mask.getFloat(s * 77L + t) != 0 ? a.getFloat(s) : 0f;
                    assertEquals(want, got.getFloat(s * 77L + t), bt + " [" + s + ", " + t + "]");
                }
            }
        }
    }

    // ---- bad input ----

    private static void assertRejected(String argument, Runnable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().startsWith(argument + ":"), "message names " + argument + ": " + e.getMessage());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void badInputIsRefusedWithItsName(BackendUnderTest bt) {
        try (Backend b = bt.open(); HostTensor rewards = HostTensor.of(new float[] {1, 2, Float.NaN, 4});
             HostTensor inf = HostTensor.of(new float[] {1, Float.POSITIVE_INFINITY, 3, 4});
             HostTensor ids = HostTensor.of(new int[] {0, 0, 1, 1}); HostTensor negative = HostTensor.of(new int[] {0, -3, 1, 1});
             HostTensor shortIds = HostTensor.of(new int[] {0, 0, 1}); HostTensor good = HostTensor.of(new float[] {1, 2, 3, 4});
             Tensor deviceNan = b.upload(rewards); Tensor out = b.allocate(DType.F32, 4)) {
            GroupAdvantages.Config c = GroupAdvantages.Config.defaults();
            assertRejected("rewards[2]", () -> b.groupAdvantages(c, rewards, ids, out));
            assertRejected("rewards[2]", () -> b.groupAdvantages(c, deviceNan, ids, out));
            assertRejected("rewards[1]", () -> b.groupAdvantages(c, inf, ids, out));
            assertRejected("groupIds[1]", () -> b.groupAdvantages(c, good, negative, out));
            assertRejected("rewards", () -> b.groupAdvantages(c, good, shortIds, out));
            HostTensor r = HostTensor.of(new float[] {1, 2, 3, Float.NaN}, 2, 2);
            HostTensor v = HostTensor.of(new float[] {1, 2, 3, 4}, 2, 2);
            HostTensor m = HostTensor.of(new float[] {1, 1, 1, 1}, 2, 2);
            try (Tensor adv = b.allocate(DType.F32, 2, 2); Tensor ret = b.allocate(DType.F32, 2, 2);
                 Tensor wrong = b.allocate(DType.F32, 2, 3)) {
                assertRejected("rewards[3]", () -> b.gae(Gae.Config.defaults(), r, v, m, adv, ret));
                assertRejected("values", () -> b.gae(Gae.Config.defaults(), v, wrong, m, adv, ret));
                assertRejected("returns", () -> b.gae(Gae.Config.defaults(), v, v, m, adv, wrong));
            }
        }
        assertRejected("gamma", () -> new Gae.Config(1.5f, 0.9f));
        assertRejected("gamma", () -> new Gae.Config(Float.NaN, 0.9f));
        assertRejected("lambda", () -> new Gae.Config(0.9f, -0.1f));
        assertRejected("mode", () -> GroupAdvantages.Mode.parse("grpoo"));
    }

    @Test
    void aLayoutGroupsByIdInFirstAppearanceOrder() {
        try (HostTensor ids = HostTensor.of(new long[] {5_000_000_000L, 3, 5_000_000_000L, 9, 3, 3});
             GroupLayout layout = GroupLayout.of(ids)) {
            assertEquals(3, layout.groups());
            assertEquals(3, layout.maxGroupSize());
            assertArrayEquals(new float[] {0, 2, 1, 4, 5, 3}, layout.order().toFloatArray());
            assertArrayEquals(new float[] {0, 2, 5, 6}, layout.offsets().toFloatArray());
        }
    }
}
