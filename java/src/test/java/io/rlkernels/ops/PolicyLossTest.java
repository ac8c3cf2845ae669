package io.rlkernels.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.reference.ReferenceBackend;
import io.rlkernels.ops.PolicyLoss.Aggregation;
import io.rlkernels.ops.PolicyLoss.Config;
import io.rlkernels.ops.PolicyLoss.KlEstimator;
import io.rlkernels.ops.PolicyLoss.LossType;
import io.rlkernels.ops.PolicyLoss.RatioLevel;
import io.rlkernels.ops.PolicyLoss.Stats;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.Compare;
import io.rlkernels.testing.TestData;
import io.rlkernels.testing.Tolerance;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Clipped policy losses on every backend against the f64 reference (ARCHITECTURE §5.3). */
class PolicyLossTest {

    /** A random batch on the host: S sequences of random lengths, some tokens and one sequence masked out. */
    static final class Batch implements AutoCloseable {
        final int[] lengths;
        final HostTensor logp;
        final HostTensor old;
        final HostTensor adv;
        final HostTensor mask;
        final HostTensor ref;
        final HostTensor entropy;
        final HostTensor rollout;
        final SequenceLayout layout;
        final int n;

        Batch(SplittableRandom rng, int sequences, int maxLength, DType maskType, boolean perSequenceAdvantage) {
            lengths = new int[sequences];
            int total = 0;
            for (int s = 0; s < sequences; s++) {
                lengths[s] = 1 + rng.nextInt(maxLength);
                total += lengths[s];
            }
            n = total;
            logp = HostTensor.allocate(DType.F32, n);
            old = HostTensor.allocate(DType.F32, n);
            adv = HostTensor.allocate(DType.F32, n);
            mask = HostTensor.allocate(maskType, n);
            ref = HostTensor.allocate(DType.F32, n);
            entropy = HostTensor.allocate(DType.F32, n);
            rollout = HostTensor.allocate(DType.F32, n);
            int i = 0;
            for (int s = 0; s < sequences; s++) {
                float a = (float) rng.nextGaussian();
                for (int t = 0; t < lengths[s]; t++, i++) {
                    float lp = (float) (-Math.abs(rng.nextGaussian()) * 2 - 0.01);
                    logp.setFloat(i, lp);
                    old.setFloat(i, (float) (lp + rng.nextGaussian() * 0.3)); // ratios around 1, many clipped
                    adv.setFloat(i, perSequenceAdvantage ? a : (float) rng.nextGaussian());
                    ref.setFloat(i, (float) (lp + rng.nextGaussian() * 0.5));
                    entropy.setFloat(i, (float) Math.abs(rng.nextGaussian()) * 3);
                    rollout.setFloat(i, (float) (old.getFloat(i) + rng.nextGaussian() * 0.3)); // the engine's mismatch
                    boolean keep = s != 1 && rng.nextDouble() < 0.85; // sequence 1 is all padding
                    if (maskType == DType.U8) {
                        mask.setLong(i, keep ? 1 : 0);
                    } else {
                        mask.setFloat(i, keep ? 1f : 0f);
                    }
                }
            }
            layout = SequenceLayout.ofLengths(lengths);
        }

        /** A copy of {@code count} tokens of {@code whole} from {@code from}: consecutive sequences of these lengths. */
        Batch(Batch whole, int[] lengths, int from, int count) {
            this.lengths = lengths;
            n = count;
            logp = slice(whole.logp, from, count);
            old = slice(whole.old, from, count);
            adv = slice(whole.adv, from, count);
            mask = slice(whole.mask, from, count);
            ref = slice(whole.ref, from, count);
            entropy = slice(whole.entropy, from, count);
            rollout = slice(whole.rollout, from, count);
            layout = SequenceLayout.ofLengths(lengths);
        }

        private static HostTensor slice(HostTensor t, int from, int count) {
            HostTensor s = HostTensor.allocate(t.dtype(), count);
            long size = t.dtype().byteSize();
            java.lang.foreign.MemorySegment.copy(t.segment(), from * size, s.segment(), 0, count * size);
            return s;
        }

        PolicyLoss.Inputs inputs() {
            return new PolicyLoss.Inputs(logp, old, adv, mask).withSequences(layout).withRefLogp(ref).withEntropy(entropy);
        }

        /** With the rollout policy's log-probs, for the rollout correction. */
        PolicyLoss.Inputs withRollout() {
            return inputs().withRolloutLogp(rollout);
        }

        @Override
        public void close() {
            for (HostTensor t : new HostTensor[] {logp, old, adv, mask, ref, entropy, rollout}) {
                t.close();
            }
            layout.close();
        }
    }

    /** Outputs on the host: dL/dlogp, dL/dentropy and the statistics. */
    record Result(HostTensor grad, HostTensor gradEntropy, Stats stats) implements AutoCloseable {
        @Override
        public void close() {
            grad.close();
            gradEntropy.close();
        }
    }

    /** Runs the op with every tensor where the backend computes, outputs (the statistics too) poisoned first. */
    static Result run(Backend b, Config c, PolicyLoss.Inputs in) {
        long n = in.tokens();
        List<Tensor> owned = new ArrayList<>();
        try (HostTensor poison = TestData.poisoned(DType.F32, n);
             HostTensor statsPoison = TestData.poisoned(DType.F64, PolicyLoss.STATS_LENGTH);
             HostTensor statsHost = HostTensor.allocate(DType.F64, PolicyLoss.STATS_LENGTH)) {
            Tensor logp = track(owned, b.upload((HostTensor) in.logp()));
            Tensor old = track(owned, b.upload((HostTensor) in.oldLogp()));
            Tensor adv = track(owned, b.upload((HostTensor) in.advantages()));
            Tensor mask = track(owned, b.upload((HostTensor) in.mask()));
            Tensor ref = in.refLogp() == null ? null : track(owned, b.upload((HostTensor) in.refLogp()));
            Tensor ent = in.entropy() == null ? null : track(owned, b.upload((HostTensor) in.entropy()));
            Tensor roll = in.rolloutLogp() == null ? null : track(owned, b.upload((HostTensor) in.rolloutLogp()));
            Tensor grad = track(owned, b.upload(poison));
            Tensor gradH = track(owned, b.upload(poison));
            Tensor statsOut = track(owned, b.upload(statsPoison)); // every slot must be written
            b.policyLoss(c, new PolicyLoss.Inputs(logp, old, adv, mask, in.sequences(), ref, ent, roll), grad, gradH, statsOut);
            b.download(statsOut, statsHost);
            for (int k = 0; k < PolicyLoss.STATS_LENGTH; k++) {
                if (TestData.isPoison(statsHost, k)) {
                    throw new AssertionError(b.description() + ": stats slot " + k + " was not written (still the poison)");
                }
            }
            Stats stats = Stats.of(statsHost);
            Result r = new Result(HostTensor.allocate(DType.F32, n), HostTensor.allocate(DType.F32, n), stats);
            b.download(grad, r.grad());
            b.download(gradH, r.gradEntropy());
            return r;
        } finally {
            owned.forEach(Tensor::close);
        }
    }

    private static Tensor track(List<Tensor> owned, Tensor t) {
        owned.add(t);
        return t;
    }

    static Stream<Arguments> backendLossRatio() {
        List<Arguments> out = new ArrayList<>();
        BackendUnderTest.fast().forEach(b -> {
            for (LossType l : LossType.values()) {
                for (RatioLevel r : RatioLevel.values()) {
                    if ((l == LossType.GEO_MEAN || l == LossType.VESPO || l == LossType.CLIP_COV || l == LossType.KL_COV)
                            && r != RatioLevel.TOKEN) {
                        continue; // a token ratio only: a sequence term of their own, or verl's token covariance
                    }
                    out.add(Arguments.of(b, l, r));
                }
            }
        });
        return out.stream();
    }

    static void assertStatsClose(String ctx, Stats want, Stats got) {
        double[] w = want.toArray();
        double[] g = got.toArray();
        java.lang.reflect.RecordComponent[] names = Stats.class.getRecordComponents();
        for (int j = 0; j < w.length; j++) {
            Tolerance.F64_STATISTIC.assertClose(w[j], g[j], ctx + " " + names[j].getName());
        }
    }

    @ParameterizedTest(name = "{0} {1} {2}")
    @MethodSource("backendLossRatio")
    void everyModeMatchesTheReference(BackendUnderTest bt, LossType loss, RatioLevel ratio) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open()) {
            for (Aggregation agg : Aggregation.values()) {
                if (loss == LossType.GEO_MEAN && !agg.perSequence()) {
                    continue; // a mean over sequences
                }
                for (KlEstimator kl : KlEstimator.values()) {
                    // the three two-way options by the combination's index, not by chance: the 20 (agg, kl)
                    // combinations of each (loss, ratio) go through all 8 of their combinations
                    int k = agg.ordinal() * KlEstimator.values().length + kl.ordinal();
                    DType maskType = k % 2 == 0 ? DType.U8 : DType.F32;
                    Config c = Config.defaults().withLoss(loss).withRatio(ratio).withAggregation(agg).withClip(0.2f, 0.28f)
                            .withDualClip(k / 2 % 2 == 0 ? 3f : 0f).withKl(kl, kl == KlEstimator.NONE ? 0f : 0.1f)
                            .withEntropyCoef(0.01f)
                            .withDenominator(k / 4 % 2 == 0 ? Double.NaN : 1 + rng.nextInt(500));
                    String ctx = bt + " " + loss + " " + ratio + " " + agg + " kl=" + kl + " dual=" + c.dualClip() + " denom="
                            + c.denominator() + " mask=" + maskType + " seed=" + seed;
                    try (Batch batch = new Batch(rng, 13, 90, maskType, ratio == RatioLevel.SEQUENCE);
                         Result want = run(new ReferenceBackend(), c, batch.inputs());
                         Result got = run(b, c, batch.inputs())) {
                        Compare.assertClose(ctx + " gradLogp", want.grad(), got.grad(), Tolerance.F32_OUTPUT);
                        Compare.assertClose(ctx + " gradEntropy", want.gradEntropy(), got.gradEntropy(), Tolerance.F32_OUTPUT);
                        assertStatsClose(ctx, want.stats(), got.stats());
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void withoutSequencesTheTokenModesNeedNone(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 40, 400, DType.F32, false)) {
            // token ratio and token-mean: no sequences needed; > 4,096 tokens, so several chunks
            PolicyLoss.Inputs in = new PolicyLoss.Inputs(batch.logp, batch.old, batch.adv, batch.mask);
            Config c = Config.defaults().withDualClip(2.5f);
            try (Result want = run(new ReferenceBackend(), c, in); Result got = run(b, c, in)) {
                Compare.assertClose(bt + " seed=" + seed, want.grad(), got.grad(), Tolerance.F32_OUTPUT);
                assertStatsClose(bt + " seed=" + seed, want.stats(), got.stats());
                assertEquals(0, got.stats().sequences(), "no layout: no sequence count");
            }
        }
    }

    /** Splits a batch by sequences into k micro-batches: copies of each part, with its own layout. */
    static List<Batch> split(Batch whole, int k) {
        List<Batch> parts = new ArrayList<>();
        int s = whole.lengths.length;
        int begin = 0;
        int token = 0;
        for (int p = 0; p < k; p++) {
            int end = (int) ((long) s * (p + 1) / k);
            int[] lengths = Arrays.copyOfRange(whole.lengths, begin, end);
            int count = Arrays.stream(lengths).sum();
            parts.add(new Batch(whole, lengths, token, count));
            token += count;
            begin = end;
        }
        return parts;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void microBatchesWithTheGlobalDenominatorSumToTheWholeBatch(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open(); Batch whole = new Batch(rng, 21, 60, DType.F32, true)) {
            for (Aggregation agg : Aggregation.values()) {
                for (RatioLevel ratio : RatioLevel.values()) {
                    Config implied = Config.defaults().withAggregation(agg).withRatio(ratio).withKl(KlEstimator.K3, 0.05f)
                            .withEntropyCoef(0.01f).withDualClip(3f);
                    try (Result full = run(b, implied, whole.inputs())) {
                        // the global denominator: what the whole batch implies
                        Config global = implied.withDenominator(full.stats().denominator());
                        for (int k : new int[] {1, 2, 7}) {
                            String ctx = bt + " " + agg + " " + ratio + " k=" + k + " seed=" + seed;
                            List<Batch> parts = split(whole, k);
                            Stats sum = null;
                            float[] grads = new float[whole.n];
                            int at = 0;
                            for (Batch part : parts) {
                                try (Result r = run(b, global, part.inputs())) {
                                    sum = sum == null ? r.stats() : sum.merge(r.stats());
                                    float[] g = r.grad().toFloatArray();
                                    System.arraycopy(g, 0, grads, at, g.length);
                                    at += g.length;
                                }
                                part.close();
                            }
                            Tolerance.F64_REGROUPED.assertClose(full.stats().loss(), sum.loss(), ctx + " loss");
                            assertEquals(full.stats().tokens(), sum.tokens(), ctx + " tokens");
                            assertEquals(full.stats().clipHigh(), sum.clipHigh(), ctx + " clipHigh");
                            float[] want = full.grad().toFloatArray();
                            for (int i = 0; i < whole.n; i++) {
                                Tolerance.F64_REGROUPED.assertClose(want[i], grads[i], ctx + " grad[" + i + "]");
                            }
                        }
                    }
                }
            }
        }
    }

    // ---- the gradient against finite differences of an independent f64 loss ----

    /**
     * The loss of ARCHITECTURE §5.3 in f64, written again from the definition (no shared code with
     * the backends). What the loss detaches (CISPO's clipped weight, DPPO's truncated weight and
     * trust region, the sequence-token ratio's sequence part, the off-policy mask) is evaluated at
     * {@code frozen}, the point the gradient is taken at, so that finite differences in {@code lp}
     * see only what the gradient flows through.
     */
    static double lossF64(Config c, double[] lp, double[] frozen, double[] old, double[] a, double[] m, double[] ref, double[] h,
                          int[] lengths) {
        double denom = c.denominator();
        double lo = c.options().seqLogMin();
        double hi = c.options().seqLogMax();
        double loss = 0;
        int at = 0;
        for (int len : lengths) {
            double kept = 0;
            double sum = 0;
            double sumFrozen = 0;
            double sampler = 0;
            for (int i = at; i < at + len; i++) {
                kept += m[i];
                sum += m[i] * (lp[i] - old[i]);
                sumFrozen += m[i] * (frozen[i] - old[i]);
                sampler += m[i] * (old[i] - frozen[i]);
            }
            double rs = Math.exp(Math.max(lo, Math.min(hi, kept > 0 ? sum / kept : 0)));
            // geo_mean: exp(mean of the sign-clipped log-ratios) times minus the mean advantage, once per sequence
            double geo = 0;
            double aSum = 0;
            double vespo = 0; // the frozen sequence sum of clamped log-ratios
            for (int i = at; i < at + len; i++) {
                if (m[i] == 0) {
                    continue;
                }
                double d = lp[i] - old[i];
                geo += a[i] > 0 ? Math.min(d, (double) c.clipHigh()) : a[i] < 0 ? Math.max(d, -(double) c.clipLow()) : 0;
                aSum += a[i];
                vespo += Math.max(-20, Math.min(20, frozen[i] - old[i]));
            }
            if (c.loss() == PolicyLoss.LossType.GEO_MEAN && kept > 0) {
                loss += -aSum / kept * Math.exp(Math.max(lo, Math.min(hi, geo / kept))) / denom;
            }
            double seqFrozen = kept > 0 ? sumFrozen / kept : 0;
            boolean farOff = !Double.isNaN(c.options().offPolicyMaskThreshold())
                    && sampler / Math.max(kept, 1) > c.options().offPolicyMaskThreshold();
            for (int i = at; i < at + len; i++) {
                if (m[i] == 0) {
                    continue;
                }
                double r = switch (c.ratio()) {
                    case TOKEN -> Math.exp(Math.max(-20, Math.min(20, lp[i] - old[i])));
                    case SEQUENCE -> rs;
                    case SEQUENCE_TOKEN -> seqFrozen < lo || seqFrozen > hi ? Math.exp(Math.max(lo, Math.min(hi, seqFrozen)))
                            : Math.exp(seqFrozen + lp[i] - frozen[i]); // sg(r_s) p / sg(p)
                };
                double rFrozen = c.ratio() == RatioLevel.TOKEN ? Math.exp(Math.max(-20, Math.min(20, frozen[i] - old[i])))
                        : Math.exp(Math.max(lo, Math.min(hi, seqFrozen)));
                double low = c.clipLow(); // in double: 1 - 0.2f in float is not the kernels' bound
                double high = c.clipHigh();
                double cl = Math.min(Math.max(r, 1 - low), 1 + high);
                double clFrozen = Math.min(Math.max(rFrozen, 1 - low), 1 + high);
                double l = switch (c.loss()) {
                    case PPO -> {
                        double ru = c.options().delta() > 0 ? Math.min(r, c.options().delta()) : r;
                        double v = Math.max(-a[i] * ru, -a[i] * cl);
                        yield c.dualClip() > 0 && a[i] < 0 ? Math.min(v, -c.dualClip() * a[i]) : v;
                    }
                    case CISPO -> -clFrozen * a[i] * lp[i];
                    case REINFORCE -> -a[i] * lp[i];
                    case SAPO -> {
                        double tau = a[i] > 0 ? c.options().tauPos() : c.options().tauNeg();
                        yield -a[i] * 4.0 / tau / (1 + Math.exp(-tau * (r - 1)));
                    }
                    case DRO -> -(lp[i] * a[i] - c.options().droBeta() / 2.0 * (lp[i] - old[i]) * (lp[i] - old[i]));
                    case CLIP_COV -> { // the selection (by covariance and key) at the frozen point; the clip live
                        PolicyLoss.Selection sel = c.selection();
                        double rf = Math.exp(Math.max(-20, Math.min(20, frozen[i] - old[i])));
                        double clf = Math.min(Math.max(rf, 1 - low), 1 + high);
                        double cov = (a[i] - sel.covMeanAdvantage()) * (frozen[i] - sel.covMeanLogp());
                        boolean chosen = !(-a[i] * clf > -a[i] * rf) && cov > sel.covLow() && cov < sel.covHigh()
                                && PolicyLossSelection.selectKey(sel.seed(), sel.tokenOffset() + i) <= sel.covThreshold();
                        yield chosen ? 0 : Math.max(-a[i] * r, -a[i] * cl);
                    }
                    case KL_COV -> {
                        PolicyLoss.Selection sel = c.selection();
                        double cov = (a[i] - sel.covMeanAdvantage()) * (frozen[i] - sel.covMeanLogp());
                        yield -a[i] * r + (cov >= sel.covThreshold() ? sel.ppoKlCoef() * Math.abs(lp[i] - old[i]) : 0);
                    }
                    case GEO_MEAN -> 0; // the sequence's term, above
                    case VESPO -> {
                        double lw = Math.max(Math.log(1e-8), Math.min(20, vespo));
                        double k = a[i] >= 0 ? c.options().vespoKPos() : c.options().vespoKNeg();
                        double lambda = a[i] >= 0 ? c.options().vespoLambdaPos() : c.options().vespoLambdaNeg();
                        yield -Math.exp(lambda + k * lw - lambda * Math.exp(lw)) * a[i] * lp[i];
                    }
                    case DPPO_TV, DPPO_KL -> {
                        double p = Math.exp(frozen[i]);
                        double q = Math.exp(old[i]);
                        boolean valid = c.loss() == PolicyLoss.LossType.DPPO_TV
                                ? (a[i] > 0 ? p - q <= high : p - q >= -low)
                                : binaryKlValid(a[i], p, q, low, high);
                        double weight = c.dualClip() > 0 ? Math.min(rFrozen, c.dualClip()) : rFrozen;
                        yield valid ? -a[i] * weight * lp[i] : 0;
                    }
                };
                if (farOff && a[i] < 0) {
                    l = 0;
                }
                if (c.selection().topEntropyQuantile() < 1 && h[i] < c.selection().entropyThreshold()) {
                    l = 0; // top_entropy_quantile: the policy-gradient term of low-entropy tokens
                }
                double d = lp[i] - ref[i];
                double kl = switch (c.kl()) {
                    case NONE -> 0;
                    case K1 -> d;
                    case K2 -> d * d / 2;
                    case K3, K3_PLUS -> Math.min(10, Math.exp(-d) + d - 1);
                    case ABS -> Math.abs(d);
                    case K1_PLUS -> d;
                };
                double w = c.aggregation() == Aggregation.SEQ_MEAN_TOKEN_MEAN ? 1 / (kept * denom) : 1 / denom;
                loss += w * (l + c.klCoef() * kl - c.entropyCoef() * h[i]);
            }
            at += len;
        }
        return loss;
    }

    /** DPPO-KL's trust region: the binary KL between p and p_old within the side's bound, or a move the advantage wants less of. */
    private static boolean binaryKlValid(double a, double p, double q, double low, double high) {
        double kl = q * Math.log(q / p) + (1 - q) * Math.log((1 - q + 1e-8) / (1 - p + 1e-8));
        return a > 0 ? kl <= high || p <= q : kl <= low || p >= q;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void gradientsMatchFiniteDifferencesAwayFromTheClipBoundaries(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        try (Backend b = bt.open()) {
            for (LossType loss : LossType.values()) {
                for (RatioLevel ratio : RatioLevel.values()) {
                    for (KlEstimator kl : KlEstimator.values()) {
                        for (Aggregation agg : Aggregation.values()) {
                            // the options by the combination's index: delta on PPO, the off-policy mask, SAPO's temperatures
                            int k = kl.ordinal() + agg.ordinal();
                            boolean sequenceTerm = loss == LossType.GEO_MEAN || loss == LossType.VESPO;
                            if (sequenceTerm && (ratio != RatioLevel.TOKEN || loss == LossType.GEO_MEAN && !agg.perSequence())) {
                                continue; // their own sequence term: token ratio (and geo_mean a seq-mean aggregation) only
                            }
                            PolicyLoss.Options o = PolicyLoss.Options.defaults().withDelta(k % 2 == 1 ? 1.15f : 0f)
                                    .withOffPolicyMask(k % 3 == 0 ? 0.05 : Double.NaN).withSapoTemperatures(1.3f, 0.7f)
                                    .withDroBeta(0.4f);
                            if ((loss == LossType.CLIP_COV || loss == LossType.KL_COV) && ratio != RatioLevel.TOKEN) {
                                continue;
                            }
                            Config unresolved = Config.defaults().withLoss(loss).withRatio(ratio).withAggregation(agg)
                                    .withClip(loss == LossType.DPPO_KL ? 0.05f : 0.2f, loss == LossType.DPPO_KL ? 0.05f : 0.28f)
                                    .withDualClip(3f).withKl(kl, 0.3f).withEntropyCoef(0.02f).withDenominator(7).withOptions(o)
                                    .withSelection(PolicyLoss.Selection.none().withTopEntropyQuantile(k % 4 == 1 ? 0.5 : 1)
                                            .withCovariance(0.2, 0.05, 5, 0.4f).withSeed(seed & 0xFFFFFL, 3));
                            try (Batch batch = new Batch(rng, 4, 12, DType.F32, ratio != RatioLevel.TOKEN)) {
                                // the selections' batch statistics, found once: detached, the same for the op and the oracle
                                Config c = PolicyLossSelection.resolve(unresolved, batch.inputs());
                                double[] lp = toDouble(batch.logp);
                                double[] frozen = lp.clone();
                                double[] old = toDouble(batch.old);
                                double[] a = toDouble(batch.adv);
                                double[] m = toDouble(batch.mask);
                                double[] ref = toDouble(batch.ref);
                                double[] h = toDouble(batch.entropy);
                                // the straight-through estimators' gradient is k2's: differentiate that loss
                                Config fd = kl == KlEstimator.K1_PLUS || kl == KlEstimator.K3_PLUS ? c.withKl(KlEstimator.K2, 0.3f) : c;
                                try (Result got = run(b, c, batch.inputs())) {
                                    double eps = 1e-6;
                                    for (int i = 0; i < batch.n; i++) {
                                        double saved = lp[i];
                                        lp[i] = saved + eps;
                                        double up = lossF64(fd, lp, frozen, old, a, m, ref, h, batch.lengths);
                                        lp[i] = saved - eps;
                                        double down = lossF64(fd, lp, frozen, old, a, m, ref, h, batch.lengths);
                                        lp[i] = saved;
                                        double numeric = (up - down) / (2 * eps);
                                        // a kink (clip boundary, |d| of abs) within eps shows as a jump: skip that token
                                        double mid = lossF64(fd, lp, frozen, old, a, m, ref, h, batch.lengths);
                                        if (Math.abs((up - mid) - (mid - down)) > 1e-9 * (1 + Math.abs(mid))) {
                                            continue;
                                        }
                                        Tolerance.FINITE_DIFFERENCE.assertClose(numeric, got.grad().getFloat(i),
                                                bt + " " + loss + " " + ratio + " " + agg + " kl=" + kl + " " + o + " dL/dlogp[" + i + "] seed="
                                                        + seed);
                                    }
                                    Tolerance.F64_STATISTIC.assertClose(lossF64(c, lp, frozen, old, a, m, ref, h, batch.lengths),
                                            got.stats().loss(), bt + " " + loss + " " + ratio + " " + agg + " kl=" + kl + " loss seed=" + seed);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * verl's straight-through "k1+" and "k3+": the loss of k1 or k3, the gradient of k2, on the
     * same backend and inputs; bitwise, since each is the same arithmetic as the estimator it copies.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void straightThroughKlHasTheValueOfItsBaseAndTheGradientOfK2(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Config c = Config.defaults().withClip(0.2f, 0.28f).withDualClip(3f).withDenominator(40);
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 5, 20, DType.F32, false)) {
            for (KlEstimator[] pair : new KlEstimator[][] {{KlEstimator.K1_PLUS, KlEstimator.K1}, {KlEstimator.K3_PLUS, KlEstimator.K3}}) {
                try (Result plus = run(b, c.withKl(pair[0], 0.3f), batch.inputs());
                     Result base = run(b, c.withKl(pair[1], 0.3f), batch.inputs());
                     Result k2 = run(b, c.withKl(KlEstimator.K2, 0.3f), batch.inputs())) {
                    String ctx = bt + " " + pair[0] + " seed=" + seed;
                    assertEquals(base.stats().loss(), plus.stats().loss(), ctx + ": the loss is " + pair[1] + "'s");
                    for (int i = 0; i < batch.n; i++) {
                        assertEquals(k2.grad().getFloat(i), plus.grad().getFloat(i), ctx + ": dL/dlogp[" + i + "] is k2's");
                    }
                }
            }
            assertEquals(KlEstimator.K3_PLUS, KlEstimator.parse("k3+"));
            assertEquals("k1+", KlEstimator.K1_PLUS.toString());
        }
    }

    /**
     * verl's GSPO gradient (sequence-token: each token its own term times r_s) and the true
     * derivative of the sequence ratio (each token a share of the sequence's) agree when the
     * advantage is constant within each sequence — GSPO's setting — and not otherwise.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void sequenceTokenAndSequenceRatiosAgreeUnderPerSequenceAdvantages(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Config c = Config.defaults().withAggregation(Aggregation.SEQ_MEAN_TOKEN_MEAN).withClip(3e-3f, 4e-3f);
        try (Backend b = bt.open(); Batch constant = new Batch(rng, 8, 30, DType.F32, true);
             Batch varying = new Batch(rng, 8, 30, DType.F32, false);
             Result seq = run(b, c.withRatio(RatioLevel.SEQUENCE), constant.inputs());
             Result own = run(b, c.withRatio(RatioLevel.SEQUENCE_TOKEN), constant.inputs());
             Result seqV = run(b, c.withRatio(RatioLevel.SEQUENCE), varying.inputs());
             Result ownV = run(b, c.withRatio(RatioLevel.SEQUENCE_TOKEN), varying.inputs())) {
            Compare.assertClose(bt + " seed=" + seed, seq.grad(), own.grad(), Tolerance.F32_OUTPUT);
            Tolerance.F64_STATISTIC.assertClose(seq.stats().loss(), own.stats().loss(), bt + " the same loss");
            assertEquals(seqV.stats().loss(), ownV.stats().loss(), 1e-12, bt + " the same loss, advantages varying");
            assertTrue(!Arrays.equals(seqV.grad().toFloatArray(), ownV.grad().toFloatArray()), bt + " but not the same gradient");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void cispoPassesTheGradientThroughTheClippedWeightAsAConstant(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Config c = Config.defaults().withLoss(LossType.CISPO).withClip(0.2f, 0.28f).withDenominator(10);
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 5, 20, DType.F32, false); Result got = run(b, c, batch.inputs())) {
            for (int i = 0; i < batch.n; i++) {
                double m = batch.mask.getFloat(i);
                double r = Math.exp(Math.max(-20, Math.min(20, (double) batch.logp.getFloat(i) - batch.old.getFloat(i))));
                double clipped = Math.min(Math.max(r, 0.8), 1.28);
                double want = m == 0 ? 0 : -clipped * batch.adv.getFloat(i) / 10;
                Tolerance.F32_CLOSED_FORM.assertClose(want, got.grad().getFloat(i), bt + " token " + i + " seed=" + seed);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#fast")
    void theSameInputGivesBitwiseTheSameOutput(BackendUnderTest bt) {
        long seed = TestData.newSeed();
        SplittableRandom rng = new SplittableRandom(seed);
        Config c = Config.defaults().withRatio(RatioLevel.SEQUENCE).withAggregation(Aggregation.SEQ_MEAN_TOKEN_MEAN)
                .withKl(KlEstimator.K3, 0.1f);
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 300, 200, DType.U8, true);
             Result first = run(b, c, batch.inputs()); Result second = run(b, c, batch.inputs())) {
            assertArrayEquals(first.grad().toFloatArray(), second.grad().toFloatArray(), bt + " seed=" + seed);
            assertEquals(first.stats(), second.stats(), bt + " seed=" + seed);
        }
    }

    // ---- bad input ----

    /** The call throws IllegalArgumentException whose message begins with the argument's name. */
    static void assertRejected(String argument, Runnable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().startsWith(argument + ":"), "message names " + argument + ": " + e.getMessage());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void badInputIsRefusedWithItsName(BackendUnderTest bt) {
        SplittableRandom rng = new SplittableRandom(1);
        try (Backend b = bt.open(); Batch batch = new Batch(rng, 3, 5, DType.F32, false);
             HostTensor shortOld = HostTensor.allocate(DType.F32, batch.n - 1);
             HostTensor nan = HostTensor.allocate(DType.F32, batch.n); Tensor grad = b.allocate(DType.F32, batch.n)) {
            batch.logp.copyTo(nan);
            nan.setFloat(2, Float.NaN);
            Config c = Config.defaults();
            assertRejected("oldLogp", () -> b.policyLoss(c, new PolicyLoss.Inputs(batch.logp, shortOld, batch.adv, batch.mask), grad, null));
            assertRejected("logp[2]", () -> b.policyLoss(c, new PolicyLoss.Inputs(nan, batch.old, batch.adv, batch.mask), grad, null));
            assertRejected("refLogp", () -> b.policyLoss(c.withKl(KlEstimator.K1, 0.1f),
                    new PolicyLoss.Inputs(batch.logp, batch.old, batch.adv, batch.mask), grad, null));
            assertRejected("sequences", () -> b.policyLoss(c.withRatio(RatioLevel.SEQUENCE),
                    new PolicyLoss.Inputs(batch.logp, batch.old, batch.adv, batch.mask), grad, null));
            assertRejected("entropy", () -> b.policyLoss(c.withEntropyCoef(0.1f),
                    new PolicyLoss.Inputs(batch.logp, batch.old, batch.adv, batch.mask), grad, null));
        }
        assertRejected("clipLow", () -> Config.defaults().withClip(0f, 0.2f));
        assertRejected("clipLow", () -> Config.defaults().withClip(1f, 0.2f));
        assertRejected("clipHigh", () -> Config.defaults().withClip(0.2f, -0.1f));
        assertRejected("dualClip", () -> Config.defaults().withDualClip(0.5f));
        assertRejected("dualClip", () -> Config.defaults().withDualClip(1f));
        assertRejected("denominator", () -> Config.defaults().withDenominator(0));
        assertRejected("agg", () -> Aggregation.parse("token-max"));
    }

    @Test
    void sequenceIdsMustBeContiguousRunsOfZeroToSMinusOne() {
        try (HostTensor ok = HostTensor.of(new int[] {1, 1, 0, 0, 0, 2}); SequenceLayout l = SequenceLayout.ofSeqIds(ok)) {
            assertEquals(3, l.sequences());
            assertEquals(3, l.longest());
            assertArrayEquals(new float[] {0, 2, 5, 6}, l.offsets().toFloatArray());
        }
        try (HostTensor outOfRange = HostTensor.of(new int[] {0, 0, 5}); HostTensor negative = HostTensor.of(new int[] {0, -1});
             HostTensor split = HostTensor.of(new int[] {0, 1, 0})) {
            assertRejected("seqIds[2]", () -> SequenceLayout.ofSeqIds(outOfRange));
            assertRejected("seqIds[1]", () -> SequenceLayout.ofSeqIds(negative));
            assertRejected("seqIds[2]", () -> SequenceLayout.ofSeqIds(split));
        }
    }

    private static double[] toDouble(HostTensor t) {
        double[] d = new double[(int) t.numel()];
        for (int i = 0; i < d.length; i++) {
            d[i] = t.getFloat(i);
        }
        return d;
    }
}
