package io.rlkernels.ops;

import io.rlkernels.backend.internal.BackendBase;
import static io.rlkernels.testing.Refusals.assertRefused;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.rlkernels.backend.Backend;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Memory the library may not write is never written: a read-only segment (what a mapped .npy
 * file is) given as any op's output, or as the target of an in-place op, is refused naming the
 * argument on every backend, and its bytes stay as they were.
 */
class ReadOnlyOutputTest {
    private static final int N = 6;
    private static final int V = 40;
    private static final float MARK = 7.25f;

    static Stream<BackendUnderTest> all() {
        return BackendUnderTest.all();
    }

    private final List<HostTensor> owned = new ArrayList<>();
    private final List<HostTensor> readOnly = new ArrayList<>();

    /** A read-only view of fresh memory holding MARK (floats) or 1 (integers). */
    private HostTensor readOnly(DType dtype, long... shape) {
        HostTensor t = HostTensor.allocate(dtype, shape);
        owned.add(t);
        for (long i = 0; i < t.numel(); i++) {
            if (dtype.isFloatingPoint()) {
                t.setFloat(i, MARK);
            } else {
                t.setLong(i, 1);
            }
        }
        HostTensor view = HostTensor.wrap(t.segment().asReadOnly(), dtype, shape);
        readOnly.add(view);
        return view;
    }

    private HostTensor keep(HostTensor t) {
        owned.add(t);
        return t;
    }

    private void assertUnwritten() {
        for (HostTensor t : readOnly) {
            for (long i = 0; i < t.numel(); i++) {
                assertEquals(t.dtype().isFloatingPoint() ? MARK : 1f, t.getFloat(i), "read-only memory was written");
            }
        }
    }

    private static void refused(String arg, Executable call) {
        assertRefused(arg, "read-only", call);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("all")
    void everyOutputOfEveryOp(BackendUnderTest bt) {
        SplittableRandom rng = new SplittableRandom(TestData.newSeed());
        try (Backend b = bt.open()) {
            HostTensor logits = keep(TestData.logits(rng, DType.F32, N, V, 1.0));
            HostTensor targets = keep(TestData.targets(rng, DType.I32, N, V, 0, -100));
            HostTensor row = keep(TestData.normal(rng, N, 1.0));
            HostTensor row2 = keep(TestData.normal(rng, N, 1.0));
            HostTensor out = keep(HostTensor.allocate(DType.F32, N));
            HostTensor out2 = keep(HostTensor.allocate(DType.F32, N));
            HostTensor grad = keep(HostTensor.allocate(DType.F32, N, V));
            LogProbs.Config lc = LogProbs.Config.defaults();

            refused("logp", () -> b.logProbs(lc, logits, targets, readOnly(DType.F32, N), out, out2));
            refused("lse", () -> b.logProbs(lc, logits, targets, out, readOnly(DType.F32, N), out2));
            refused("entropy", () -> b.logProbs(lc, logits, targets, out, out2, readOnly(DType.F32, N)));
            HostTensor parts = keep(HostTensor.allocate(DType.F32, N, 2).fill(0.5f));
            refused("lseParts", () -> b.logProbs(lc, logits, targets, out, out2, null, readOnly(DType.F32, N, 2)));
            refused("gradLogits", () -> b.logProbsBackward(lc, logits, targets, parts, null, row2, null, readOnly(DType.F32, N, V)));
            HostTensor mappedLogits = readOnly(DType.F32, N, V); // the README's in-place backward over a mapped file
            refused("gradLogits", () -> b.logProbsBackward(lc, mappedLogits, targets, parts, null, row2, null, mappedLogits));
            refused("dst", () -> b.download(row, readOnly(DType.F32, N)));

            try (GroupLayout groups = GroupLayout.of(HostTensor.of(new int[] {0, 0, 1, 1, 2, 2}))) {
                refused("advantages", () -> b.groupAdvantages(GroupAdvantages.Config.defaults(), row, groups, readOnly(DType.F32, N)));
            }
            HostTensor mask = keep(HostTensor.of(new byte[] {1, 1, 0, 1, 1, 0}, 2, 3));
            HostTensor perSequence = keep(TestData.normal(rng, 2, 1.0));
            refused("perToken", () -> b.sequenceToTokens(perSequence, mask, readOnly(DType.F32, 2, 3)));
            HostTensor rewards = keep(HostTensor.wrap(row.segment(), DType.F32, 2, 3));
            HostTensor values = keep(HostTensor.wrap(row2.segment(), DType.F32, 2, 3));
            HostTensor bt2 = keep(HostTensor.allocate(DType.F32, 2, 3));
            Gae.Config gc = Gae.Config.defaults();
            refused("advantages", () -> b.gae(gc, rewards, values, mask, readOnly(DType.F32, 2, 3), bt2));
            refused("returns", () -> b.gae(gc, rewards, values, mask, bt2, readOnly(DType.F32, 2, 3)));
            refused("returns", () -> b.discountedReturns(0.9f, rewards, mask, readOnly(DType.F32, 2, 3)));
            HostTensor whitenIn = readOnly(DType.F32, 2, 3);
            refused("out", () -> b.maskedWhiten(MaskedWhiten.Config.defaults(), whitenIn, mask, whitenIn));

            HostTensor flatMask = keep(HostTensor.of(new byte[] {1, 1, 0, 1, 1, 1}));
            try (SequenceLayout seqs = SequenceLayout.ofLengths(3, 3)) {
                PolicyLoss.Inputs in = new PolicyLoss.Inputs(row, row2, out, flatMask).withSequences(seqs).withEntropy(out2);
                PolicyLoss.Config pc = PolicyLoss.Config.defaults().withEntropyCoef(0.01f);
                HostTensor stats = keep(HostTensor.allocate(DType.F64, PolicyLoss.STATS_LENGTH));
                out.fill(0.5f);
                out2.fill(1.5f);
                refused("gradLogp", () -> b.policyLoss(pc, in, readOnly(DType.F32, N), grad(N), stats));
                refused("gradEntropy", () -> b.policyLoss(pc, in, grad(N), readOnly(DType.F32, N), stats));
                refused("stats", () -> b.policyLoss(pc, in, grad(N), grad(N), readOnly(DType.F64, PolicyLoss.STATS_LENGTH)));

                refused("out", () -> BackendBase.of("b", b).maskRows(targets, flatMask, V, readOnly(DType.I32, N)));
                Bgpo.Config bc = Bgpo.Config.defaults(2);
                HostTensor perSeq = keep(HostTensor.of(new float[] {0.5f, 0.25f}));
                HostTensor state = keep(HostTensor.allocate(DType.F64, Bgpo.STATS_LENGTH));
                refused("values", () -> BackendBase.of("b", b).bgpoCoefficients(bc, row, seqs, flatMask, perSeq, perSeq, perSeq, readOnly(DType.F32, 2),
                        grad(N), state));
                refused("upstream", () -> BackendBase.of("b", b).bgpoCoefficients(bc, row, seqs, flatMask, perSeq, perSeq, perSeq, grad(2),
                        readOnly(DType.F32, N), state));
                refused("state", () -> BackendBase.of("b", b).bgpoCoefficients(bc, row, seqs, flatMask, perSeq, perSeq, perSeq, grad(2), grad(N),
                        readOnly(DType.F64, Bgpo.STATS_LENGTH)));
                try (var acc = new io.rlkernels.backend.BgpoAccumulator(b, bc, seqs, targets, perSeq)) {
                    refused("gradLogits", () -> acc.step(mappedLogits, flatMask, perSeq, perSeq, mappedLogits));
                }
            }
            HostTensor a = keep(HostTensor.allocate(DType.F32, 3, 4).fill(0.5f));
            HostTensor bm = keep(HostTensor.allocate(DType.F32, 4, 2).fill(0.25f));
            refused("c", () -> b.matmul(false, false, 1f, a, bm, 0f, readOnly(DType.F32, 3, 2)));
            assertUnwritten();
        } finally {
            owned.forEach(HostTensor::close);
        }
    }

    private HostTensor grad(long... shape) {
        return keep(HostTensor.allocate(DType.F32, shape));
    }
}
