package io.rlkernels.backend.nativecpu;

import io.rlkernels.backend.internal.BackendBase;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.nativecpu.internal.NativeLibrary;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.Matmul;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The native/ C library through FFM: SIMD (x86-64, AVX2 or AVX-512, picked from the CPU) and
 * OpenMP over rows, f32 accumulation. Host tensors only; Java arrays are read in place.
 */
public final class NativeBackend extends BackendBase {
    private static final int RLK_OK = 0;
    /** enum rlk_status: finite inputs gave an output float32 cannot hold. */
    private static final int RLK_OVERFLOW = 5;

    /** The instruction-set variants, as numbered in rlkernels.h (enum rlk_isa). */
    public static final int ISA_AUTO = -1;
    public static final int ISA_X86_64 = 0;
    public static final int ISA_AVX2 = 1;
    public static final int ISA_AVX512 = 2;

    private final NativeLibrary lib;
    private final boolean forcedIsa;

    private NativeBackend(NativeLibrary lib, boolean forcedIsa) {
        this.lib = lib;
        this.forcedIsa = forcedIsa;
    }

    /** The backend; throws {@link IllegalStateException} naming the reason when the library cannot load. */
    public static NativeBackend open() {
        return new NativeBackend(loadedLibrary(), false);
    }

    /**
     * The backend on one instruction-set variant, for tests and benchmarks. The choice is
     * process-wide until this backend is closed, which restores the automatic choice.
     */
    public static NativeBackend open(int isa) {
        NativeLibrary lib = loadedLibrary();
        if (!lib.isaSelect(isa)) {
            throw new IllegalStateException("native backend: this CPU cannot run the " + lib.isaName(isa) + " variant");
        }
        return new NativeBackend(lib, isa != ISA_AUTO);
    }

    /** Whether this CPU runs a variant. */
    public static boolean supportsIsa(int isa) {
        return NativeLibrary.get().map(l -> (l.isaSupportedMask() & (1 << isa)) != 0).orElse(false);
    }

    private static NativeLibrary loadedLibrary() {
        return NativeLibrary.get().orElseThrow(
                () -> new IllegalStateException("native backend unavailable: " + NativeLibrary.unavailableReason()));
    }

    public static boolean isAvailable() {
        return NativeLibrary.get().isPresent();
    }

    /** Why the library cannot load, or null. */
    public static String unavailableReason() {
        return NativeLibrary.unavailableReason();
    }

    /** The variants this CPU runs, by name ("x86-64", "avx2", "avx512"). */
    public static java.util.List<String> supportedIsas() {
        NativeLibrary l = loadedLibrary();
        java.util.List<String> out = new java.util.ArrayList<>();
        for (int isa = ISA_X86_64; isa <= ISA_AVX512; isa++) {
            if ((l.isaSupportedMask() & (1 << isa)) != 0) {
                out.add(l.isaName(isa));
            }
        }
        return out;
    }

    /** The OpenMP threads the kernels use (process-wide). */
    public int threads() {
        return lib.maxThreads();
    }

    /** Sets the OpenMP threads the kernels use (process-wide, at least 1), for tests and benchmarks. */
    public void setThreads(int n) {
        if (n < 1) {
            throw io.rlkernels.internal.Check.fail("threads", "at least 1", n);
        }
        lib.setNumThreads(n);
    }

    @Override
    public BackendKind kind() {
        return BackendKind.NATIVE;
    }

    @Override
    public String description() {
        return "native: " + lib.isaName(lib.isaSelected()) + ", " + lib.maxThreads() + " threads";
    }

    @Override
    protected Tensor newTensor(DType dtype, long... shape) {
        return HostTensor.allocate(dtype, shape);
    }

    @Override
    protected void runLogProbs(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                               Tensor lseParts) {
        LogProbs.Dims d = LogProbs.checkForward(config, logits, targets, logp, lse, entropy, lseParts);
        HostTensor y = host("targets", targets);
        LogProbs.checkTargets(y, d.vocab(), config.ignoreIndex());
        try (Arena call = Arena.ofConfined()) {
            MemorySegment overflow = call.allocate(ValueLayout.JAVA_LONG);
            int rc = lib.logprobsFwd(segment("logits", logits), logits.dtype().code(), y.segment(), targets.dtype().code(),
                    d.rows(), d.vocab(), config.temperature(), config.ignoreIndex(),
                    segment("logp", logp), optional("lse", lse), optional("entropy", entropy), optional("lseParts", lseParts),
                    overflow);
            check(rc, "rlk_logprobs_fwd");
            long row = overflow.get(ValueLayout.JAVA_LONG, 0);
            if (row >= 0) {
                throw LogProbs.overflow(row, config);
            }
        }
    }

    @Override
    protected void runLogProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                 Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        LogProbs.Dims d = LogProbs.checkBackward(config, logits, targets, lseParts, entropy, gradLogp, gradEntropy, gradLogits);
        HostTensor y = host("targets", targets);
        LogProbs.checkTargets(y, d.vocab(), config.ignoreIndex());
        float[] limits = LogProbs.upstreamLimits(config.temperature(), d.vocab());
        if (gradLogp != null) {
            requireWithin("gradLogp", host("gradLogp", gradLogp), limits[0], LogProbs.upstreamReason(config.temperature()));
        }
        if (gradEntropy != null) {
            requireWithin("gradEntropy", host("gradEntropy", gradEntropy), limits[1], LogProbs.upstreamReason(config.temperature()));
        }
        int rc = lib.logprobsBwd(segment("logits", logits), logits.dtype().code(), y.segment(), targets.dtype().code(),
                d.rows(), d.vocab(), config.temperature(), config.ignoreIndex(),
                segment("lseParts", lseParts),
                gradEntropy == null ? MemorySegment.NULL : segment("entropy", entropy),
                gradLogp == null ? MemorySegment.NULL : segment("gradLogp", gradLogp),
                gradEntropy == null ? MemorySegment.NULL : segment("gradEntropy", gradEntropy),
                segment("gradLogits", gradLogits), gradLogits.dtype().code());
        check(rc, "rlk_logprobs_bwd");
    }

    @Override
    protected void runGroupAdvantages(GroupAdvantages.Config config, Tensor rewards, GroupLayout groups, Tensor advantages) {
        GroupAdvantages.check(config, rewards, groups, advantages);
        HostTensor r = host("rewards", rewards);
        boolean bounded = requireFinite("rewards", r, GroupAdvantages.INPUT_BOUND);
        GroupLayout layout = GroupAdvantages.layoutFor(config, groups);
        try {
            check(lib.groupAdvantages(r.segment(), layout.order().segment(), layout.offsets().segment(), layout.groups(),
                    config.mode().code(), config.unbiasedStd(), config.eps(), segment("advantages", advantages)),
                    "rlk_group_advantages");
        } finally {
            if (layout != groups) {
                layout.close();
            }
        }
        if (!bounded) {
            refuseOverflow(host("advantages", advantages), (i, v) -> GroupAdvantages.overflow(config, i, v));
        }
    }

    @Override
    protected void runSequenceToTokens(Tensor perSequence, Tensor mask, Tensor perToken) {
        GroupAdvantages.checkBroadcast(perSequence, mask, perToken);
        check(lib.sequenceToTokens(segment("perSequence", perSequence), segment("mask", mask), mask.dtype() == DType.U8,
                mask.dim(0), mask.dim(1), segment("perToken", perToken)), "rlk_sequence_to_tokens");
    }

    @Override
    protected void runGae(Gae.Config config, Tensor rewards, Tensor values, Tensor mask, Tensor advantages, Tensor returns) {
        Gae.check(rewards, values, mask, advantages, returns);
        float bound = Gae.inputBound(rewards.dim(1));
        boolean bounded = requireFinite("rewards", host("rewards", rewards), bound)
                & requireFinite("values", host("values", values), bound);
        check(lib.gae(segment("rewards", rewards), segment("values", values), segment("mask", mask), mask.dtype() == DType.U8,
                rewards.dim(0), rewards.dim(1), config.gamma(), config.lambda(), segment("advantages", advantages),
                segment("returns", returns)), "rlk_gae");
        if (!bounded) {
            refuseOverflow(host("advantages", advantages), (i, v) -> Gae.overflow("advantages", i, v));
            refuseOverflow(host("returns", returns), (i, v) -> Gae.overflow("returns", i, v));
        }
    }

    @Override
    protected void runDiscountedReturns(float gamma, Tensor rewards, Tensor mask, Tensor returns) {
        Gae.checkGamma(gamma);
        Gae.check(rewards, null, mask, returns);
        boolean bounded = requireFinite("rewards", host("rewards", rewards), Gae.inputBound(rewards.dim(1)));
        check(lib.gae(segment("rewards", rewards), MemorySegment.NULL, segment("mask", mask), mask.dtype() == DType.U8,
                rewards.dim(0), rewards.dim(1), gamma, 1f, MemorySegment.NULL, segment("returns", returns)), "rlk_gae");
        if (!bounded) {
            refuseOverflow(host("returns", returns), (i, v) -> Gae.overflow("returns", i, v));
        }
    }

    @Override
    protected void runMaskedWhiten(MaskedWhiten.Config config, Tensor x, Tensor mask, Tensor out) {
        MaskedWhiten.check(x, mask, out);
        requireFinite("x", host("x", x));
        check(lib.maskedWhiten(segment("x", x), segment("mask", mask), mask.dtype() == DType.U8, x.numel(), config.eps(),
                config.unbiased(), segment("out", out)), "rlk_masked_whiten");
    }

    @Override
    protected void runPolicyLoss(PolicyLoss.Config c, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy, Tensor stats) {
        PolicyLoss.check(c, in, gradLogp, gradEntropy, stats);
        requireFinite("logp", host("logp", in.logp()));
        requireFinite("oldLogp", host("oldLogp", in.oldLogp()));
        requireFinite("advantages", host("advantages", in.advantages()));
        if (in.refLogp() != null) {
            requireFinite("refLogp", host("refLogp", in.refLogp()));
        }
        if (in.entropy() != null) {
            requireFinite("entropy", host("entropy", in.entropy()));
        }
        SequenceLayout seqs = in.sequences(); // when given, also for the token modes: it counts the sequences
        int rc = lib.policyLoss(segment("logp", in.logp()), segment("oldLogp", in.oldLogp()), segment("advantages", in.advantages()),
                segment("mask", in.mask()), in.mask().dtype() == DType.U8, optional("refLogp", in.refLogp()),
                optional("entropy", in.entropy()), seqs == null ? MemorySegment.NULL : seqs.offsets().segment(),
                seqs == null ? 0 : seqs.sequences(), in.tokens(), PolicyLoss.codes(c), c.clipLow(), c.clipHigh(), c.dualClip(),
                c.denominator(), seqs == null ? 0 : seqs.longest(), c.klCoef(), c.entropyCoef(), segment("gradLogp", gradLogp),
                optional("gradEntropy", gradEntropy), segment("stats", stats));
        if (rc == RLK_OVERFLOW) { // the kernel saw a gradient float32 cannot hold: find and name it
            refuseOverflow(host("gradLogp", gradLogp), (i, v) -> PolicyLoss.overflow("gradLogp", i, v));
            if (gradEntropy != null) {
                refuseOverflow(host("gradEntropy", gradEntropy), (i, v) -> PolicyLoss.overflow("gradEntropy", i, v));
            }
        }
        check(rc, "rlk_policy_loss");
    }

    @Override
    protected void runMaskRows(Tensor targets, Tensor mask, long vocab, Tensor out) {
        Bgpo.checkMaskRows(targets, mask, vocab, out);
        LogProbs.checkTokenIds(host("targets", targets), vocab);
        check(lib.maskRows(segment("targets", targets), targets.dtype().code(), segment("mask", mask), mask.dtype() == DType.U8,
                targets.numel(), Bgpo.UNMASKED, segment("out", out)), "rlk_mask_rows");
    }

    @Override
    protected void runBgpoCoefficients(Bgpo.Config c, Tensor logp, SequenceLayout rows, Tensor mask, Tensor weights, Tensor oldValues,
                                 Tensor advantages, Tensor values, Tensor upstream, Tensor state) {
        Bgpo.checkCoefficients(c, logp, rows, mask, weights, oldValues, advantages, values, upstream, state);
        HostTensor w = host("weights", weights);
        Bgpo.checkWeights(w);
        requireFinite("oldValues", host("oldValues", oldValues));
        requireFinite("advantages", host("advantages", advantages));
        check(lib.bgpoCoefficients(segment("logp", logp), rows.offsets().segment(), rows.sequences(), segment("mask", mask),
                mask.dtype() == DType.U8, w.segment(), segment("oldValues", oldValues), segment("advantages", advantages),
                c.clipLow(), c.clipHigh(), c.dualClip(), 1.0 / (c.denominatorFor(rows.sequences()) * c.samples()),
                segment("values", values), segment("upstream", upstream), segment("state", state)), "rlk_bgpo_coefficients");
        for (String out : new String[] {"values", "upstream"}) {
            HostTensor o = host(out, out.equals("values") ? values : upstream);
            long bad = firstOutside(o, out.equals("values") ? Float.MAX_VALUE : Bgpo.upstreamLimit(c));
            if (bad >= 0) {
                throw Bgpo.overflow(c, out, bad, o.getFloat(bad));
            }
        }
    }

    @Override
    protected void runMatmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        Matmul.Dims d = Matmul.check(transA, transB, alpha, a, b, beta, c);
        HostTensor ha = host("a", a);
        HostTensor hb = host("b", b);
        HostTensor hc = host("c", c);
        if (ha.isHeap() || hb.isHeap() || hc.isHeap()) {
            throw Check.fail("a, b, c", "native memory (HostTensor.allocate): a matrix product is too long a call to pin Java arrays",
                    "a Java array");
        }
        check(lib.matmul(transA, transB, d.m(), d.n(), d.k(), alpha, ha.segment(), hb.segment(), beta, hc.segment()), "rlk_matmul");
    }

    private static MemorySegment optional(String arg, Tensor t) {
        return t == null ? MemorySegment.NULL : segment(arg, t);
    }

    /** Refuses a NaN or infinity in an f32 input, found by the native library (vectorised, every core). */
    private void requireFinite(String arg, HostTensor t) {
        requireWithin(arg, t, Float.MAX_VALUE, null);
    }

    /**
     * The same, in the same one pass telling whether every element is within +-bound (an op's
     * bound under which its outputs cannot overflow): true when they all are.
     */
    private boolean requireFinite(String arg, HostTensor t, float bound) {
        if (firstOutside(t, bound) < 0) {
            return true;
        }
        requireFinite(arg, t);
        return false;
    }

    /** Refuses an f32 input with an element beyond +-limit, or NaN ({@code why}: what the bound protects). */
    private void requireWithin(String arg, HostTensor t, float limit, String why) {
        long bad = firstOutside(t, limit);
        if (bad >= 0) {
            throw Check.outside(arg, bad, t.getFloat(bad), limit, why);
        }
    }

    /** The first element of an f32 host tensor that is NaN or beyond +-limit, or -1. */
    private long firstOutside(HostTensor t, float limit) {
        return lib.firstOutside(t.segment(), t.numel(), limit);
    }

    /**
     * Refuses the inputs when {@code output} holds a value float32 could not hold (an infinity from
     * finite inputs). Scanned only when a kernel reported RLK_OVERFLOW or an input exceeded its
     * op's bound: never on the normal path.
     */
    private void refuseOverflow(HostTensor output, Check.Refusal refusal) {
        long bad = firstOutside(output, Float.MAX_VALUE);
        if (bad >= 0) {
            throw refusal.at(bad, output.getFloat(bad));
        }
    }

    private static HostTensor host(String arg, Tensor t) {
        return Check.host(arg, t, "native");
    }

    private static MemorySegment segment(String arg, Tensor t) {
        return host(arg, t).segment();
    }

    /** Arguments were checked, so a failure here is a bug in this library, not bad input. */
    private static void check(int rc, String call) {
        if (rc != RLK_OK) {
            throw new IllegalStateException(call + " returned status " + rc + " after its arguments were checked");
        }
    }

    @Override
    protected void release() {
        if (forcedIsa) {
            lib.isaSelect(ISA_AUTO);
        }
    }
}
