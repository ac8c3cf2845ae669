package io.rlkernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BgpoAccumulator;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.LinearLogProbs;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.OptimalTokenBaseline;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.DeviceTensor;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import java.lang.foreign.MemorySegment;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.statistics.Statistics;

/**
 * Property tests over the public entries: a valid call of a random op with random shapes, dtypes
 * and values, with one argument spoiled at random — null, closed, read-only, of another dtype or
 * shape, holding NaN, an infinity or a huge value, a bad id, or the same tensor as another
 * argument — on a random backend. Whatever the spoiling, the call either succeeds (the spoiled
 * value was allowed: a NaN logit, a bf16 instead of an f32 logit) or throws an
 * {@link IllegalArgumentException} of the form "argument: expected ..., found ..."; a closed
 * argument or a read-only output is always refused by its name. Nothing else may escape, and the
 * JVM must not crash. The unspoiled call always succeeds. jqwik prints the seed of a failure.
 */
class PublicEntriesPropertyTest {
    /** How an argument is spoiled. */
    enum Spoil { NONE, NULL, CLOSED, READ_ONLY, DTYPE, SHAPE, NAN, INFINITY, HUGE, BAD_ID, ALIAS }

    private static final Pattern MESSAGE = Pattern.compile("^([^:\\n]+): expected (.+), found (.+)$", Pattern.DOTALL);

    @Provide
    Arbitrary<String> backends() {
        List<String> labels = BackendUnderTest.all().filter(b -> b.unavailable().get() == null).map(BackendUnderTest::label).toList();
        return Arbitraries.of(labels);
    }

    @Provide
    Arbitrary<String> ops() {
        return Arbitraries.of("logProbs", "logProbsBackward", "groupAdvantages", "sequenceToTokens", "gae", "discountedReturns",
                "optimalTokenBaseline", "maskedWhiten", "policyLoss", "bgpo", "matmul", "download", "linearLogProbs", "linearLogProbsBackward",
                "linearPolicyLoss");
    }

    @Property(tries = 1500)
    void everySpoiledCallIsRefusedByNameOrAllowed(@ForAll("backends") String backend, @ForAll("ops") String op,
                                                  @ForAll Spoil spoil, @ForAll long seed) {
        BackendUnderTest bt = BackendUnderTest.all().filter(b -> b.label().equals(backend)).findFirst().orElseThrow();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open(); Call call = new Call(b, rng)) {
            build(op, call);
            String spoiled = spoil == Spoil.NONE ? null : call.spoil(spoil);
            String what = op + " on " + backend + ", " + spoil + (spoiled == null ? "" : " " + spoiled) + ", seed " + seed;
            try {
                call.run.accept(b);
            } catch (IllegalArgumentException e) {
                if (spoil == Spoil.NONE || spoiled == null) {
                    fail(what + ": a valid call was refused: " + e.getMessage(), e);
                }
                Matcher m = MESSAGE.matcher(e.getMessage());
                assertTrue(m.matches(), what + ": the message is 'argument: expected ..., found ...': " + e.getMessage());
                if (spoil == Spoil.CLOSED || (spoil == Spoil.READ_ONLY && call.outputs.contains(spoiled))) {
                    assertTrue(m.group(1).startsWith(spoiled), what + ": the message names " + spoiled + ": " + e.getMessage());
                }
                Statistics.label("outcome").collect(spoil, "refused");
                return;
            } catch (RuntimeException | Error e) {
                fail(what + ": escaped as " + e, e);
            }
            boolean mustRefuse = spoil == Spoil.CLOSED || (spoil == Spoil.READ_ONLY && call.outputs.contains(spoiled));
            assertTrue(!mustRefuse, what + ": a closed argument or a read-only output was accepted");
            Statistics.label("outcome").collect(spoil, spoiled == null && spoil != Spoil.NONE ? "not applicable" : "allowed");
        }
    }

    /**
     * The size rule: a shape whose byte count (computed exactly here) exceeds 2^63 - 1, or with a
     * negative dimension, is refused naming the shape by every factory; a small one is accepted.
     */
    @Property(tries = 500)
    void tensorFactoriesFollowTheSizeRule(@ForAll long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        long[] shape = new long[rng.nextInt(4)];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = switch (rng.nextInt(5)) {
                case 0 -> -rng.nextLong(1, 1L << 40);
                case 1 -> 1L << rng.nextInt(20, 63);
                case 2 -> Long.MAX_VALUE - rng.nextInt(3);
                default -> rng.nextInt(0, 5);
            };
        }
        DType dtype = DType.values()[rng.nextInt(DType.values().length)];
        BigInteger bytes = BigInteger.valueOf(dtype.byteSize());
        boolean negative = false;
        for (long d : shape) {
            negative |= d < 0;
            bytes = bytes.multiply(BigInteger.valueOf(d));
        }
        boolean fits = !negative && bytes.bitLength() < 64;
        String what = dtype + java.util.Arrays.toString(shape);
        List<Runnable> factories = new ArrayList<>(List.of(() -> DeviceTensor.wrap(0x10000, dtype, shape),
                () -> HostTensor.wrap(MemorySegment.NULL, dtype, shape)));
        if (!fits || bytes.longValue() <= 1 << 20) {
            factories.add(() -> HostTensor.allocate(dtype, shape).close()); // never a huge allocation: only small or refused
        }
        for (Runnable factory : factories) {
            try {
                factory.run();
                assertTrue(fits, what + " was accepted");
            } catch (IllegalArgumentException e) {
                Matcher m = MESSAGE.matcher(e.getMessage());
                assertTrue(m.matches(), what + ": " + e.getMessage());
                if (!fits) {
                    assertEquals("shape", m.group(1), what + ": " + e.getMessage());
                } else {
                    assertEquals("segment", m.group(1), what + ": only NULL's 0 bytes can be wrong: " + e.getMessage());
                }
            }
        }
    }

    /** Layouts from random ids: built, or refused naming the id ("seqIds[i]", "groupIds[i]", "lengths[k]"). */
    @Property(tries = 500)
    void layoutsFromRandomIdsAreBuiltOrRefusedByName(@ForAll long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int n = rng.nextInt(12);
        long[] ids = new long[n];
        for (int i = 0; i < n; i++) {
            ids[i] = switch (rng.nextInt(6)) {
                case 0 -> -1 - rng.nextInt(5);
                case 1 -> Long.MAX_VALUE - rng.nextInt(2);
                default -> rng.nextInt(4);
            };
        }
        int[] lengths = new int[rng.nextInt(4)];
        for (int k = 0; k < lengths.length; k++) {
            lengths[k] = rng.nextInt(4) == 0 ? -rng.nextInt(1, 3) : rng.nextInt(4);
        }
        for (Runnable build : List.<Runnable>of(() -> GroupLayout.of(HostTensor.of(ids)).close(),
                () -> SequenceLayout.ofSeqIds(HostTensor.of(ids)).close(), () -> SequenceLayout.ofLengths(lengths).close(),
                () -> {
                    try (SequenceLayout rows = SequenceLayout.ofLengths(3, 0, 2)) {
                        Bgpo.sample(seed, rng.nextInt(-1, 4), rows, Bgpo.Weighting.PER_MASKED_TOKEN).close();
                    }
                })) {
            try {
                build.run();
            } catch (IllegalArgumentException e) {
                Matcher m = MESSAGE.matcher(e.getMessage());
                assertTrue(m.matches() && m.group(1).matches("(groupIds|seqIds|lengths)\\[\\d+]|samples \\(n_t\\)"), e.getMessage());
            }
        }
    }

    /** The arguments of one call, and what it runs. */
    static final class Call implements AutoCloseable {
        final Backend backend;
        final SplittableRandom rng;
        final LinkedHashMap<String, Object> args = new LinkedHashMap<>();
        final List<String> outputs = new ArrayList<>();
        final List<String> floats = new ArrayList<>();
        final List<String> ids = new ArrayList<>();
        final List<String> optional = new ArrayList<>();
        final List<AutoCloseable> owned = new ArrayList<>();
        Consumer<Backend> run;

        Call(Backend backend, SplittableRandom rng) {
            this.backend = backend;
            this.rng = rng;
        }

        <T extends AutoCloseable> T own(T t) {
            owned.add(t);
            return t;
        }

        /** A host tensor, or (half the time, on a device backend) its copy where the backend computes. */
        Tensor place(HostTensor h, boolean output) {
            own(h);
            if (rng.nextBoolean()) {
                return h;
            }
            return own(output ? backend.allocate(h.dtype(), h.shape()) : backend.upload(h));
        }

        Tensor input(String name, HostTensor h) {
            if (h.dtype().isFloatingPoint()) {
                floats.add(name);
            }
            Tensor t = place(h, false);
            args.put(name, t);
            return t;
        }

        Tensor output(String name, DType dtype, long... shape) {
            outputs.add(name);
            Tensor t = place(HostTensor.allocate(dtype, shape).fill(Float.NaN), true);
            args.put(name, t);
            return t;
        }

        Tensor ids(String name, HostTensor h) {
            ids.add(name);
            return input(name, h);
        }

        Object get(String name) {
            return args.get(name);
        }

        Tensor t(String name) {
            return (Tensor) args.get(name);
        }

        /** Spoils one argument; returns its name, or null when no argument can be spoiled that way. */
        String spoil(Spoil spoil) {
            List<String> candidates = switch (spoil) {
                case NAN, INFINITY, HUGE -> inputsAmong(floats);
                case BAD_ID -> ids;
                case READ_ONLY -> hostTensors();
                case DTYPE, SHAPE, CLOSED, ALIAS -> tensors();
                default -> new ArrayList<>(args.keySet());
            };
            if (candidates.isEmpty()) {
                return null;
            }
            String name = candidates.get(rng.nextInt(candidates.size()));
            Object v = args.get(name);
            switch (spoil) {
                case NULL -> args.put(name, null);
                case CLOSED -> {
                    if (v instanceof Tensor t) {
                        Tensor c = t instanceof HostTensor ? HostTensor.allocate(t.dtype(), t.shape()) : backend.allocate(t.dtype(), t.shape());
                        c.close();
                        args.put(name, c);
                    }
                }
                case READ_ONLY -> {
                    HostTensor h = (HostTensor) v;
                    args.put(name, HostTensor.wrap(h.segment().asReadOnly(), h.dtype(), h.shape()));
                }
                case DTYPE -> {
                    Tensor t = (Tensor) v;
                    DType other = DType.values()[rng.nextInt(DType.values().length)];
                    args.put(name, own(HostTensor.allocate(other, t.shape())));
                }
                case SHAPE -> {
                    Tensor t = (Tensor) v;
                    long[] s = t.shape();
                    long[] other = rng.nextInt(3) == 0 ? java.util.Arrays.copyOf(s, Math.max(0, s.length + (rng.nextBoolean() ? 1 : -1)))
                            : s.clone();
                    if (other.length > 0 && other.length == s.length) {
                        int axis = rng.nextInt(other.length);
                        other[axis] = Math.max(0, other[axis] + (rng.nextBoolean() ? 1 : -1));
                    }
                    for (int i = s.length; i < other.length; i++) {
                        other[i] = 1 + rng.nextInt(3);
                    }
                    args.put(name, own(HostTensor.allocate(t.dtype(), other)));
                }
                case NAN, INFINITY, HUGE -> {
                    Tensor t = (Tensor) v;
                    if (t.numel() > 0) {
                        float x = spoil == Spoil.NAN ? Float.NaN : spoil == Spoil.HUGE ? 3.3e38f : Float.POSITIVE_INFINITY;
                        setElement(t, rng.nextLong(t.numel()), rng.nextBoolean() ? x : -x, true);
                    }
                }
                case BAD_ID -> {
                    Tensor t = (Tensor) v;
                    long[] bad = {-1, -2, 1 << 20, Integer.MAX_VALUE, Integer.MIN_VALUE, Long.MAX_VALUE, Long.MIN_VALUE, -100};
                    if (t.numel() > 0) {
                        long id = bad[rng.nextInt(bad.length)];
                        setElement(t, rng.nextLong(t.numel()), t.dtype() == DType.I32 ? (int) id : id, false);
                    }
                }
                case ALIAS -> {
                    List<String> others = v instanceof HostTensor && name.equals("dst") ? hostTensors() : tensors(); // dst is typed HostTensor
                    others.remove(name);
                    if (!others.isEmpty()) {
                        args.put(name, args.get(others.get(rng.nextInt(others.size()))));
                    }
                }
                default -> {
                }
            }
            return name;
        }

        private void setElement(Tensor t, long i, double x, boolean floating) {
            try (HostTensor h = HostTensor.allocate(t.dtype(), t.shape())) {
                backend.download(t, h);
                if (floating) {
                    h.setFloat(i, (float) x);
                } else {
                    h.setLong(i, (long) x);
                }
                if (t instanceof HostTensor ht) {
                    h.copyTo(ht);
                } else {
                    Tensor copy = own(backend.upload(h));
                    args.replaceAll((k, val) -> val == t ? copy : val);
                }
            }
        }

        private List<String> inputsAmong(List<String> names) {
            return new ArrayList<>(names.stream().filter(n -> !outputs.contains(n) && args.get(n) instanceof Tensor).toList());
        }

        private List<String> tensors() {
            return new ArrayList<>(args.keySet().stream().filter(n -> args.get(n) instanceof Tensor).toList());
        }

        private List<String> hostTensors() {
            return new ArrayList<>(args.keySet().stream().filter(n -> args.get(n) instanceof HostTensor).toList());
        }

        @Override
        public void close() {
            for (int i = owned.size() - 1; i >= 0; i--) {
                try {
                    owned.get(i).close();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        }
    }

    // ---- valid calls of each op, with random shapes and values ----

    private static HostTensor floats(SplittableRandom rng, DType dtype, double scale, long... shape) {
        HostTensor t = HostTensor.allocate(dtype, shape);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, (float) (rng.nextGaussian() * scale));
        }
        return t;
    }

    private static HostTensor mask(SplittableRandom rng, long... shape) {
        HostTensor t = HostTensor.allocate(rng.nextBoolean() ? DType.U8 : DType.F32, shape);
        for (long i = 0; i < t.numel(); i++) {
            if (t.dtype() == DType.U8) {
                t.setLong(i, rng.nextInt(4) == 0 ? 0 : 1);
            } else {
                t.setFloat(i, rng.nextInt(4) == 0 ? 0 : 1);
            }
        }
        return t;
    }

    private static HostTensor tokenIds(SplittableRandom rng, long n, long v, boolean withIgnored) {
        HostTensor t = HostTensor.allocate(rng.nextBoolean() ? DType.I32 : DType.I64, n);
        for (long i = 0; i < n; i++) {
            t.setLong(i, withIgnored && rng.nextInt(5) == 0 ? LogProbs.DEFAULT_IGNORE_INDEX : rng.nextLong(v));
        }
        return t;
    }

    private static DType logitType(SplittableRandom rng) {
        return new DType[] {DType.F32, DType.BF16, DType.F16}[rng.nextInt(3)];
    }

    private static int[] lengths(SplittableRandom rng, int sequences) {
        int[] l = new int[sequences];
        for (int i = 0; i < sequences; i++) {
            l[i] = rng.nextInt(5);
        }
        return l;
    }

    private static void build(String op, Call c) {
        SplittableRandom rng = c.rng;
        long n = rng.nextInt(6);
        long v = 1 + rng.nextInt(40);
        switch (op) {
            case "logProbs" -> {
                LogProbs.Config cfg = LogProbs.Config.defaults().withTemperature(0.3f + rng.nextFloat() * 1.7f);
                c.input("logits", floats(rng, logitType(rng), 3, n, v));
                c.ids("targets", tokenIds(rng, n, v, true));
                c.output("logp", DType.F32, n);
                c.output("lse", DType.F32, n);
                c.output("entropy", DType.F32, n);
                c.output("lseParts", DType.F32, n, 2);
                c.optional.add("entropy");
                c.run = b -> b.logProbs(cfg, c.t("logits"), c.t("targets"), c.t("logp"), c.t("lse"), c.t("entropy"), c.t("lseParts"));
            }
            case "logProbsBackward" -> {
                LogProbs.Config cfg = LogProbs.Config.defaults().withTemperature(0.3f + rng.nextFloat() * 1.7f);
                HostTensor z = floats(rng, logitType(rng), 3, n, v);
                HostTensor y = tokenIds(rng, n, v, true);
                c.input("logits", z);
                c.ids("targets", y);
                try (Backend ref = io.rlkernels.backend.Backends.open(io.rlkernels.backend.BackendKind.REFERENCE);
                     LogProbs.Result r = ref.logProbs(cfg, z, y, true)) {
                    c.input("lseParts", copy((HostTensor) r.lseParts()));
                    c.input("entropy", copy((HostTensor) r.entropy()));
                }
                c.input("gradLogp", floats(rng, DType.F32, 1, n));
                c.input("gradEntropy", floats(rng, DType.F32, 1, n));
                c.output("gradLogits", rng.nextInt(3) == 0 ? DType.BF16 : DType.F32, n, v);
                c.run = b -> b.logProbsBackward(cfg, c.t("logits"), c.t("targets"), c.t("lseParts"), c.t("entropy"), c.t("gradLogp"),
                        c.t("gradEntropy"), c.t("gradLogits"));
            }
            case "groupAdvantages" -> {
                GroupAdvantages.Config cfg = new GroupAdvantages.Config(GroupAdvantages.Mode.values()[rng.nextInt(5)],
                        rng.nextBoolean(), rng.nextBoolean() ? 0f : 1e-6f);
                int[] groupIds = new int[(int) n];
                for (int i = 0; i < n; i++) {
                    groupIds[i] = rng.nextInt(3);
                }
                c.input("rewards", floats(rng, DType.F32, 1, n));
                c.args.put("groups", c.own(GroupLayout.of(HostTensor.of(groupIds))));
                c.output("advantages", DType.F32, n);
                c.run = b -> b.groupAdvantages(cfg, c.t("rewards"), (GroupLayout) c.get("groups"), c.t("advantages"));
            }
            case "sequenceToTokens" -> {
                long t = rng.nextInt(5);
                c.input("perSequence", floats(rng, DType.F32, 1, n));
                c.input("mask", mask(rng, n, t));
                c.output("perToken", DType.F32, n, t);
                c.run = b -> b.sequenceToTokens(c.t("perSequence"), c.t("mask"), c.t("perToken"));
            }
            case "gae", "discountedReturns" -> {
                long t = rng.nextInt(6);
                Gae.Config cfg = new Gae.Config(rng.nextFloat(), rng.nextFloat());
                c.input("rewards", floats(rng, DType.F32, 1, n, t));
                if (op.equals("gae")) {
                    c.input("values", floats(rng, DType.F32, 1, n, t));
                }
                c.input("mask", mask(rng, n, t));
                if (op.equals("gae")) {
                    c.output("advantages", DType.F32, n, t);
                }
                c.output("returns", DType.F32, n, t);
                c.run = op.equals("gae")
                        ? b -> b.gae(cfg, c.t("rewards"), c.t("values"), c.t("mask"), c.t("advantages"), c.t("returns"))
                        : b -> b.discountedReturns(cfg.gamma(), c.t("rewards"), c.t("mask"), c.t("returns"));
            }
            case "optimalTokenBaseline" -> {
                long t = rng.nextInt(6);
                OptimalTokenBaseline.Config cfg = new OptimalTokenBaseline.Config(rng.nextBoolean() ? 0f : 1e-8f, rng.nextBoolean());
                int[] groupIds = new int[(int) n];
                for (int i = 0; i < n; i++) {
                    groupIds[i] = rng.nextInt(3);
                }
                c.input("tokenRewards", floats(rng, DType.F32, 1, n, t));
                c.input("mask", mask(rng, n, t));
                HostTensor lp = floats(rng, DType.F32, 1, n, t);
                HostTensor q = HostTensor.allocate(DType.F32, n, t);
                for (long i = 0; i < lp.numel(); i++) { // log-probs and a sum pi^2 of their distributions
                    lp.setFloat(i, -Math.abs(lp.getFloat(i)));
                    double pi = Math.exp(lp.getFloat(i));
                    q.setFloat(i, (float) (pi * pi + (1 - pi) * (1 - pi) * rng.nextDouble()));
                }
                c.input("oldLogp", lp);
                c.input("sumPiSquared", q);
                c.input("isWeights", floats(rng, DType.F32, 1, n, t));
                c.optional.add("isWeights");
                c.args.put("groups", c.own(GroupLayout.of(HostTensor.of(groupIds))));
                c.output("advantages", DType.F32, n, t);
                c.output("returns", DType.F32, n, t);
                c.run = b -> b.optimalTokenBaseline(cfg, new OptimalTokenBaseline.Inputs(c.t("tokenRewards"), c.t("mask"), c.t("oldLogp"),
                        c.t("sumPiSquared"), c.t("isWeights"), (GroupLayout) c.get("groups")), c.t("advantages"), c.t("returns"));
            }
            case "maskedWhiten" -> {
                c.input("x", floats(rng, DType.F32, 2, n, 3));
                c.input("mask", mask(rng, n, 3));
                c.output("out", DType.F32, n, 3);
                c.run = b -> b.maskedWhiten(MaskedWhiten.Config.defaults(), c.t("x"), c.t("mask"), c.t("out"));
            }
            case "policyLoss" -> {
                int[] lengths = lengths(rng, (int) n);
                SequenceLayout seqs = c.own(SequenceLayout.ofLengths(lengths));
                long tokens = seqs.tokens();
                PolicyLoss.Config cfg = PolicyLoss.Config.defaults().withLoss(PolicyLoss.LossType.values()[rng.nextInt(3)])
                        .withRatio(PolicyLoss.RatioLevel.values()[rng.nextInt(2)])
                        .withAggregation(PolicyLoss.Aggregation.values()[rng.nextInt(4)])
                        .withKl(PolicyLoss.KlEstimator.values()[rng.nextInt(5)], 0.01f).withEntropyCoef(0.01f)
                        .withDualClip(rng.nextBoolean() ? 0f : 3f);
                c.input("logp", floats(rng, DType.F32, 1, tokens));
                c.input("oldLogp", floats(rng, DType.F32, 1, tokens));
                c.input("advantages", floats(rng, DType.F32, 1, tokens));
                c.input("mask", mask(rng, tokens));
                c.args.put("sequences", seqs);
                c.input("refLogp", floats(rng, DType.F32, 1, tokens));
                c.input("entropy", floats(rng, DType.F32, 1, tokens));
                c.output("gradLogp", DType.F32, tokens);
                c.output("gradEntropy", DType.F32, tokens);
                c.output("stats", DType.F64, PolicyLoss.STATS_LENGTH);
                c.run = b -> b.policyLoss(cfg, new PolicyLoss.Inputs(c.t("logp"), c.t("oldLogp"), c.t("advantages"), c.t("mask"),
                        (SequenceLayout) c.get("sequences"), c.t("refLogp"), c.t("entropy")), c.t("gradLogp"), c.t("gradEntropy"),
                        c.t("stats"));
            }
            case "bgpo" -> {
                int[] lengths = lengths(rng, 1 + (int) n);
                SequenceLayout rows = c.own(SequenceLayout.ofLengths(lengths));
                long r = rows.tokens();
                int s = rows.sequences();
                Bgpo.Config cfg = Bgpo.Config.defaults(2).withDualClip(rng.nextBoolean() ? 0f : 3f);
                c.input("logits", floats(rng, logitType(rng), 2, r, v));
                c.ids("targets", tokenIds(rng, r, v, false));
                c.args.put("rows", rows);
                c.input("mask", mask(rng, r));
                HostTensor w = HostTensor.allocate(DType.F32, s);
                for (int i = 0; i < s; i++) {
                    w.setFloat(i, 0.1f + rng.nextFloat());
                }
                c.input("weights", w);
                c.input("oldValues", floats(rng, DType.F32, 1, s));
                c.input("advantages", floats(rng, DType.F32, 1, s));
                c.output("gradLogits", DType.F32, r, v);
                c.run = b -> {
                    try (BgpoAccumulator acc = new BgpoAccumulator(b, cfg, (SequenceLayout) c.get("rows"), c.t("targets"),
                            c.t("advantages"))) {
                        acc.step(c.t("logits"), c.t("mask"), c.t("weights"), c.t("oldValues"), c.t("gradLogits"));
                    }
                };
            }
            case "matmul" -> {
                boolean ta = rng.nextBoolean();
                boolean tb = rng.nextBoolean();
                long m = rng.nextInt(5);
                long k = rng.nextInt(5);
                long nn = rng.nextInt(5);
                c.input("a", floats(rng, logitType(rng), 1, ta ? k : m, ta ? m : k));
                c.input("b", floats(rng, logitType(rng), 1, tb ? nn : k, tb ? k : nn));
                c.output("c", DType.F32, m, nn);
                float beta = rng.nextBoolean() ? 0f : 0.5f;
                if (beta != 0) {
                    c.t("c"); // c is read too: its NaN poison would spread, so fill it
                    HostTensor init = HostTensor.allocate(DType.F32, m, nn).fill(0.25f);
                    c.own(init);
                    c.args.put("c", c.own(c.backend.upload(init)));
                }
                c.run = b -> b.matmul(ta, tb, 1f, c.t("a"), c.t("b"), beta, c.t("c"));
            }
            case "linearLogProbs", "linearLogProbsBackward", "linearPolicyLoss" -> {
                long d = 1 + rng.nextInt(4);
                LinearLogProbs.Config cfg = LinearLogProbs.Config.defaults()
                        .withLogProbs(LogProbs.Config.defaults().withTemperature(0.3f + rng.nextFloat() * 1.7f))
                        .withMaxChunkRows(rng.nextInt(3));
                int[] lengths = lengths(rng, (int) n);
                SequenceLayout seqs = c.own(SequenceLayout.ofLengths(lengths));
                long rows = op.equals("linearPolicyLoss") ? seqs.tokens() : n;
                HostTensor h = floats(rng, logitType(rng), 1, rows, d);
                HostTensor w = floats(rng, logitType(rng), 1, v, d);
                HostTensor y = tokenIds(rng, rows, v, true);
                c.input("hidden", h);
                c.input("weight", w);
                c.ids("targets", y);
                if (op.equals("linearLogProbs")) {
                    c.output("logp", DType.F32, rows);
                    c.output("lse", DType.F32, rows);
                    c.output("entropy", DType.F32, rows);
                    c.output("lseParts", DType.F32, rows, 2);
                    c.optional.add("entropy");
                    c.run = b -> b.linearLogProbs(cfg, c.t("hidden"), c.t("weight"), c.t("targets"), c.t("logp"), c.t("lse"),
                            c.t("entropy"), c.t("lseParts"));
                } else if (op.equals("linearLogProbsBackward")) {
                    try (Backend ref = io.rlkernels.backend.Backends.open(io.rlkernels.backend.BackendKind.REFERENCE);
                         LogProbs.Result r = ref.linearLogProbs(cfg, h, w, y, true)) {
                        c.input("lseParts", copy((HostTensor) r.lseParts()));
                        c.input("entropy", copy((HostTensor) r.entropy()));
                    }
                    c.input("gradLogp", floats(rng, DType.F32, 1, rows));
                    c.input("gradEntropy", floats(rng, DType.F32, 1, rows));
                    c.output("gradHidden", DType.F32, rows, d);
                    c.outputs.add("gradWeight");
                    c.args.put("gradWeight", c.own(c.backend.upload(c.own(HostTensor.allocate(DType.F32, v, d).fill(0f)))));
                    c.run = b -> b.linearLogProbsBackward(cfg, c.t("hidden"), c.t("weight"), c.t("targets"), c.t("lseParts"),
                            c.t("entropy"), c.t("gradLogp"), c.t("gradEntropy"), c.t("gradHidden"), c.t("gradWeight"));
                } else {
                    PolicyLoss.Config loss = PolicyLoss.Config.defaults().withRatio(PolicyLoss.RatioLevel.values()[rng.nextInt(2)])
                            .withAggregation(PolicyLoss.Aggregation.values()[rng.nextInt(4)]).withEntropyCoef(rng.nextBoolean() ? 0f : 0.01f);
                    c.input("oldLogp", floats(rng, DType.F32, 1, rows));
                    c.input("advantages", floats(rng, DType.F32, 1, rows));
                    c.input("mask", mask(rng, rows));
                    c.args.put("sequences", seqs);
                    c.output("logp", DType.F32, rows);
                    c.output("gradHidden", DType.F32, rows, d);
                    c.outputs.add("gradWeight");
                    c.args.put("gradWeight", c.own(c.backend.upload(c.own(HostTensor.allocate(DType.F32, v, d).fill(0f)))));
                    c.optional.add("logp");
                    c.run = b -> b.linearPolicyLoss(cfg, loss, new LinearLogProbs.LossInputs(c.t("hidden"), c.t("weight"), c.t("targets"),
                            c.t("oldLogp"), c.t("advantages"), c.t("mask"), (SequenceLayout) c.get("sequences"), null), c.t("logp"),
                            c.t("gradHidden"), c.t("gradWeight"));
                }
            }
            case "download" -> {
                HostTensor src = floats(rng, DType.F32, 1, n, 2);
                c.input("src", src);
                c.outputs.add("dst");
                c.args.put("dst", c.own(HostTensor.allocate(DType.F32, n, 2)));
                c.run = b -> b.download(c.t("src"), (HostTensor) c.get("dst"));
            }
            default -> throw new IllegalArgumentException(op);
        }
    }

    private static HostTensor copy(HostTensor t) {
        HostTensor c = HostTensor.allocate(t.dtype(), t.shape());
        t.copyTo(c);
        return c;
    }
}
