package io.rlkernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.Compare;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.util.SplittableRandom;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every CUDA launch shape goes through {@link CudaBackend#grid}, and every kernel strides over
 * what its grid does not cover: with one block (and with three) each op gives what it gives with
 * its full grid — bitwise where no sum crosses blocks, within f32 rounding where partial sums are
 * split differently (whitening's statistics, the policy loss's).
 */
class GridStrideTest {
    static Stream<BackendUnderTest> device() {
        return BackendUnderTest.all().filter(b -> b.kind() == BackendKind.CUDA || b.kind() == BackendKind.EMULATED);
    }

    /** The op's outputs with the default grid, then with the grid limited to 1 and to 3 blocks: each compared by {@code check}. */
    private static void underGrids(Function<Backend, HostTensor[]> op, Backend b, String what, boolean bitwise) {
        HostTensor[] full = op.apply(b);
        for (String limit : new String[] {"1", "3"}) {
            String saved = System.setProperty("rlk.cuda.maxGrid", limit);
            try {
                HostTensor[] small = op.apply(b);
                for (int k = 0; k < full.length; k++) {
                    String ctx = what + " output " + k + " with at most " + limit + " blocks";
                    if (bitwise) {
                        assertArrayEquals(bits(full[k]), bits(small[k]), ctx + ": bitwise");
                    } else {
                        Compare.assertClose(ctx, full[k], small[k], Tolerance.F32_OUTPUT);
                    }
                }
            } finally {
                if (saved == null) {
                    System.clearProperty("rlk.cuda.maxGrid");
                } else {
                    System.setProperty("rlk.cuda.maxGrid", saved);
                }
            }
        }
    }

    private static long[] bits(HostTensor t) {
        long[] out = new long[(int) t.numel()];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.dtype() == DType.F64 ? Double.doubleToRawLongBits(t.getDouble(i)) : Float.floatToRawIntBits(t.getFloat(i));
        }
        return out;
    }

    private static HostTensor rows(HostTensor x, long b, long t) {
        return HostTensor.wrap(x.segment(), x.dtype(), b, t);
    }

    private static HostTensor mask(SplittableRandom rng, long n) {
        HostTensor m = HostTensor.allocate(DType.F32, n);
        for (long i = 0; i < n; i++) {
            m.setFloat(i, rng.nextDouble() < 0.8 ? 1f : 0f);
        }
        return m;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("device")
    void everyOpStridesOverWhatItsGridDoesNotCover(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        String at = bt + " seed=" + seed;
        int s = 900;
        HostTensor rewards = TestData.normal(rng, s, 1.0);
        int[] small = new int[s]; // 150 groups of 6: a warp a group
        int[] large = new int[s]; // 100 groups of 6 and one of 300: a block a group
        for (int i = 0; i < s; i++) {
            small[i] = i / 6;
            large[i] = i < 600 ? i / 6 : 100;
        }
        int b = 37;
        int t = 300;
        HostTensor tokenRewards = TestData.normal(rng, (long) b * t, 1.0);
        HostTensor values = TestData.normal(rng, (long) b * t, 1.0);
        HostTensor tokenMask = mask(rng, (long) b * t);
        int n = 9000;
        HostTensor logp = TestData.normal(rng, n, 0.3);
        HostTensor old = TestData.normal(rng, n, 0.3);
        HostTensor adv = TestData.normal(rng, n, 1.0);
        HostTensor plMask = mask(rng, n);
        int[] seqIds = new int[n];
        for (int i = 0; i < n; i++) {
            seqIds[i] = i / 90;
        }
        try (Backend dev = bt.open(); SequenceLayout seqs = SequenceLayout.ofSeqIds(HostTensor.of(seqIds))) {
            for (int[] ids : new int[][] {small, large}) {
                underGrids(d -> {
                    HostTensor out = TestData.poisoned(DType.F32, s);
                    d.groupAdvantages(GroupAdvantages.Config.defaults(), rewards, HostTensor.of(ids), out);
                    return new HostTensor[] {out};
                }, dev, at + " groupAdvantages (" + (ids == small ? "small" : "large") + " groups)", true);
            }
            underGrids(d -> {
                HostTensor a = TestData.poisoned(DType.F32, b, t);
                HostTensor r = TestData.poisoned(DType.F32, b, t);
                d.gae(new Gae.Config(0.99f, 0.95f), rows(tokenRewards, b, t), rows(values, b, t), rows(tokenMask, b, t), a, r);
                return new HostTensor[] {a, r};
            }, dev, at + " gae", true);
            underGrids(d -> {
                HostTensor per = TestData.poisoned(DType.F32, b, t);
                d.sequenceToTokens(TestData.normal(new SplittableRandom(seed), b, 1.0), rows(tokenMask, b, t), per);
                return new HostTensor[] {per};
            }, dev, at + " sequenceToTokens", true);
            underGrids(d -> {
                HostTensor w = TestData.poisoned(DType.F32, (long) b * t);
                d.maskedWhiten(MaskedWhiten.Config.defaults(), tokenRewards, tokenMask, w);
                return new HostTensor[] {w};
            }, dev, at + " maskedWhiten", false);
            for (PolicyLoss.RatioLevel ratio : PolicyLoss.RatioLevel.values()) {
                underGrids(d -> {
                    HostTensor grad = TestData.poisoned(DType.F32, n);
                    PolicyLoss.Config c = PolicyLoss.Config.defaults().withRatio(ratio)
                            .withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_MEAN);
                    PolicyLoss.Stats st = d.policyLoss(c, new PolicyLoss.Inputs(logp, old, adv, plMask).withSequences(seqs), grad, null);
                    HostTensor stats = HostTensor.allocate(DType.F64, PolicyLoss.STATS_LENGTH);
                    double[] v = {st.loss(), st.tokens(), st.sequences(), st.clipHigh(), st.clipLow(), st.clipDual(),
                            st.negApproxKlSum(), st.ratioSum(), st.ratioMin(), st.ratioMax(), st.denominator()};
                    for (int i = 0; i < v.length; i++) {
                        stats.setDouble(i, v[i]);
                    }
                    return new HostTensor[] {grad, stats};
                }, dev, at + " policyLoss " + ratio, false);
            }
            assertTrue(CudaBackend.grid(10, 4) == 4 && CudaBackend.grid(0, 4) == 1, "grid(wanted, cap)");
        }
    }
}
