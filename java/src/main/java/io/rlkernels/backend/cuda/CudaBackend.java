package io.rlkernels.backend.cuda;

import io.rlkernels.backend.BackendBase;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.cuda.internal.CudaProbe;
import io.rlkernels.backend.cuda.internal.JCudaLauncher;
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
import io.rlkernels.tensor.DeviceTensor;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * The cuda-kernels/ sources on a device, through a {@link KernelLauncher}: the JCuda driver API
 * on a GPU, or the CPU emulator. This class owns everything between the API and the kernels:
 * argument checks, staging of host tensors, launch shapes and kernel names.
 *
 * <p>Device tensors (allocated here, or wrapping another framework's memory with
 * {@link DeviceTensor#wrap}) are used in place and the launch is asynchronous on the launcher's
 * stream; host tensors are copied in, computed on, copied back, and the call waits.
 */
public final class CudaBackend extends BackendBase {
    /**
     * Blocks per grid at most; every kernel loops over what its grid does not cover (grid-stride).
     * Tests lower it with {@code -Drlk.cuda.maxGrid=N} so that small inputs take that path too:
     * every launch shape below goes through {@link #grid}.
     */
    static final int MAX_GRID = 1 << 20;

    /** The blocks of a launch: {@code wanted}, at most {@code cap} and the grid limit, at least 1. */
    static int grid(long wanted, long cap) {
        long limit = Math.min(cap, Integer.getInteger("rlk.cuda.maxGrid", MAX_GRID));
        return (int) Math.max(1, Math.min(wanted, limit));
    }
    /** Alignment that enables the 16-byte vector path. */
    private static final int VECTOR_BYTES = 16;

    private final KernelLauncher launcher;
    private final BackendKind kind;
    private volatile boolean checkDeviceInputs = true;

    public CudaBackend(KernelLauncher launcher, BackendKind kind) {
        this.launcher = launcher;
        this.kind = kind;
    }

    /** The first GPU through JCuda; throws {@link IllegalStateException} naming why CUDA cannot run here. */
    public static CudaBackend open() {
        CudaProbe.Result probe = CudaProbe.result();
        if (!probe.available()) {
            throw new IllegalStateException("cuda backend unavailable: " + probe.reason());
        }
        return new CudaBackend(new JCudaLauncher(0, probe.fatbin()), BackendKind.CUDA);
    }

    public static boolean isAvailable() {
        return CudaProbe.result().available();
    }

    /** Why CUDA cannot run here, or null. */
    public static String unavailableReason() {
        return CudaProbe.result().reason();
    }

    public KernelLauncher launcher() {
        return launcher;
    }

    @Override
    public BackendKind kind() {
        return kind;
    }

    @Override
    public String description() {
        return kind.id() + ": " + launcher.describe();
    }

    @Override
    protected DeviceTensor newTensor(DType dtype, long... shape) {
        long bytes = io.rlkernels.tensor.Shapes.byteSize("shape", dtype, shape); // refused before anything is allocated
        long address = launcher.allocate(bytes);
        return DeviceTensor.owned(address, dtype, shape, launcher, launcher::free);
    }

    @Override
    protected DeviceTensor copyIn(HostTensor src) {
        DeviceTensor d = newTensor(src.dtype(), src.shape());
        launcher.copyToDevice(d.address(), src.segment(), src.byteSize());
        return d;
    }

    @Override
    protected void copyOut(Tensor src, HostTensor dst) {
        if (src instanceof HostTensor h) {
            h.copyTo(dst);
            return;
        }
        DeviceTensor d = device("src", src);
        if (dst.dtype() != d.dtype() || dst.numel() != d.numel()) {
            throw Check.fail("dst", d.dtype().shortName() + " with " + d.numel() + " elements", dst.describe());
        }
        launcher.copyToHost(dst.segment(), d.address(), d.byteSize());
    }

    /**
     * Whether inputs that live on the device are checked like host ones (target ids in range,
     * rewards finite) before the kernels run: that copies them back and waits, so a call on device
     * tensors is not asynchronous. A training loop that checked its data once may turn it off; the
     * kernels still never read out of bounds (a bad target id gives NaN for its row). Host inputs
     * are always checked.
     */
    public CudaBackend checkDeviceInputs(boolean check) {
        this.checkDeviceInputs = check;
        return this;
    }

    /** Waits for every kernel launched on device tensors so far. */
    public void synchronize() {
        launcher.synchronize();
    }

    /** One block per row; wider rows get more threads (up to 512), narrow ones a single warp. */
    static LaunchShape rowLaunch(long rows, long vocab, DType dtype) {
        long vectors = (vocab * dtype.byteSize() + VECTOR_BYTES - 1) / VECTOR_BYTES;
        int threads = 32;
        while (threads < 512 && threads * 4L < vectors) {
            threads *= 2;
        }
        return new LaunchShape(grid(rows, MAX_GRID), threads, 0);
    }

    @Override
    protected void runLogProbs(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy,
                               Tensor lseParts) {
        LogProbs.Dims d = LogProbs.checkForward(config, logits, targets, logp, lse, entropy, lseParts);
        checkTargets(targets, d.vocab(), config.ignoreIndex());
        if (d.rows() == 0) {
            return;
        }
        try (Staging s = new Staging(launcher, this)) {
            long z = s.in("logits", logits);
            long y = s.in("targets", targets);
            long outLogp = s.out("logp", logp);
            long outLse = lse == null ? 0 : s.out("lse", lse);
            long outEntropy = entropy == null ? 0 : s.out("entropy", entropy);
            long outParts = lseParts == null ? 0 : s.out("lseParts", lseParts);
            // the first row whose lse or logp overflows float32: checked when the call waits anyway
            boolean checked = logp instanceof HostTensor || lse instanceof HostTensor || checkDeviceInputs;
            long overflow = checked ? deviceCell(s, d.rows()) : 0;
            KernelArgs args = new KernelArgs().ptr(z).ptr(y).i32(targets.dtype() == DType.I64 ? 1 : 0)
                    .i64(d.rows()).i64(d.vocab()).f32(1.0f / config.temperature()).i64(config.ignoreIndex())
                    .ptr(outLogp).ptr(outLse).ptr(outEntropy).ptr(outParts).i32(vectorizable(z) ? 1 : 0).ptr(overflow);
            launcher.launch("rlk_logprobs_fwd_" + logits.dtype().shortName(), rowLaunch(d.rows(), d.vocab(), logits.dtype()), args);
            long firstOverflow = checked ? readCell(overflow) : d.rows();
            if (firstOverflow < d.rows()) {
                throw LogProbs.overflow(firstOverflow, config);
            }
            s.finish();
        }
    }

    @Override
    protected void runLogProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lseParts, Tensor entropy,
                                 Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits) {
        LogProbs.Dims d = LogProbs.checkBackward(config, logits, targets, lseParts, entropy, gradLogp, gradEntropy, gradLogits);
        checkTargets(targets, d.vocab(), config.ignoreIndex());
        if (d.rows() == 0) {
            return;
        }
        try (Staging s = new Staging(launcher, this)) {
            boolean inPlace = gradLogits == logits;
            long z = inPlace ? s.inOut("logits", logits) : s.in("logits", logits);
            long y = s.in("targets", targets);
            long partsIn = s.in("lseParts", lseParts);
            long entropyIn = gradEntropy == null ? 0 : s.in("entropy", entropy);
            float[] limits = LogProbs.upstreamLimits(config.temperature(), d.vocab());
            String why = LogProbs.upstreamReason(config.temperature());
            long g = gradLogp == null ? 0 : boundedInput(s, "gradLogp", gradLogp, limits[0], why);
            long h = gradEntropy == null ? 0 : boundedInput(s, "gradEntropy", gradEntropy, limits[1], why);
            long out = inPlace ? z : s.out("gradLogits", gradLogits);
            KernelArgs args = new KernelArgs().ptr(z).ptr(y).i32(targets.dtype() == DType.I64 ? 1 : 0)
                    .i64(d.rows()).i64(d.vocab()).f32(config.temperature()).f32(1.0f / config.temperature())
                    .i64(config.ignoreIndex()).ptr(partsIn).ptr(entropyIn).ptr(g).ptr(h).ptr(out)
                    .i32(vectorizable(z) && vectorizable(out) ? 1 : 0);
            String kernel = "rlk_logprobs_bwd_" + logits.dtype().shortName() + "_" + gradLogits.dtype().shortName();
            DType wider = logits.dtype().byteSize() >= gradLogits.dtype().byteSize() ? logits.dtype() : gradLogits.dtype();
            launcher.launch(kernel, rowLaunch(d.rows(), d.vocab(), wider), args);
            s.finish();
        }
    }

    /** A team per group: a warp for groups up to 256 members (eight to a block), else a block of 256. */
    static LaunchShape groupLaunch(int groups, int maxGroupSize) {
        if (maxGroupSize <= 256) {
            return new LaunchShape(grid((groups + 7) / 8, MAX_GRID), 256, 0);
        }
        return new LaunchShape(grid(groups, MAX_GRID), 256, 0);
    }

    /** One block per row, threads enough for a tile of 8 positions each (rlk_gae). */
    static LaunchShape gaeLaunch(long rows, long t) {
        int threads = 32;
        while (threads < 256 && threads * 8L < t) {
            threads *= 2;
        }
        return new LaunchShape(grid(rows, MAX_GRID), threads, 0);
    }

    /** Grid-stride element-wise kernels. */
    static LaunchShape elementwiseLaunch(long n) {
        return new LaunchShape(grid((n + 255) / 256, 65_535), 256, 0);
    }

    /** Blocks of partial sums of a whole-tensor reduction: a function of n only (and of the grid limit), so the sums are too. */
    static int reductionBlocks(long n) {
        return grid((n + 2047) / 2048, 1024);
    }

    @Override
    protected void runGroupAdvantages(GroupAdvantages.Config config, Tensor rewards, GroupLayout groups, Tensor advantages) {
        GroupAdvantages.check(config, rewards, groups, advantages);
        GroupLayout layout = GroupAdvantages.layoutFor(config, groups);
        try (Staging s = new Staging(launcher, this)) {
            long r = s.in("rewards", rewards);
            boolean bounded = requireFinite(s, "rewards", rewards, r, GroupAdvantages.INPUT_BOUND);
            DeviceLayout dl = layout.deviceCopy(launcher, () -> new DeviceLayout(copyIn(layout.order()), copyIn(layout.offsets())));
            long out = s.out("advantages", advantages);
            if (layout.groups() > 0) {
                String kernel = layout.maxGroupSize() <= 256 ? "rlk_group_advantages_warp" : "rlk_group_advantages_block";
                launcher.launch(kernel, groupLaunch(layout.groups(), layout.maxGroupSize()), new KernelArgs().ptr(r)
                        .ptr(dl.order().address()).ptr(dl.offsets().address()).i64(layout.groups()).i32(config.mode().code())
                        .i32(config.unbiasedStd() ? 1 : 0).f32(config.eps()).ptr(out));
            }
            if (!bounded) {
                requireRepresentable(s, advantages, out, Float.MAX_VALUE, (i, v) -> GroupAdvantages.overflow(config, i, v));
            }
            s.finish();
        } finally {
            if (layout != groups) {
                layout.close();
            }
        }
    }

    /** A group layout on this device. */
    private record DeviceLayout(DeviceTensor order, DeviceTensor offsets) implements AutoCloseable {
        @Override
        public void close() {
            order.close();
            offsets.close();
        }
    }

    @Override
    protected void runSequenceToTokens(Tensor perSequence, Tensor mask, Tensor perToken) {
        GroupAdvantages.checkBroadcast(perSequence, mask, perToken);
        long n = perToken.numel();
        try (Staging s = new Staging(launcher, this)) {
            long a = s.in("perSequence", perSequence);
            long m = s.in("mask", mask);
            long out = s.out("perToken", perToken);
            if (n > 0) {
                launcher.launch("rlk_sequence_to_tokens", elementwiseLaunch(n), new KernelArgs().ptr(a).ptr(m)
                        .i32(mask.dtype() == DType.U8 ? 1 : 0).i64(mask.dim(0)).i64(mask.dim(1)).ptr(out));
            }
            s.finish();
        }
    }

    @Override
    protected void runGae(Gae.Config config, Tensor rewards, Tensor values, Tensor mask, Tensor advantages, Tensor returns) {
        Gae.check(rewards, values, mask, advantages, returns);
        scan(config.gamma(), config.lambda(), rewards, values, mask, advantages, returns);
    }

    @Override
    protected void runDiscountedReturns(float gamma, Tensor rewards, Tensor mask, Tensor returns) {
        Gae.checkGamma(gamma);
        Gae.check(rewards, null, mask, returns);
        scan(gamma, 1f, rewards, null, mask, null, returns);
    }

    private void scan(float gamma, float lambda, Tensor rewards, Tensor values, Tensor mask, Tensor advantages,
                      Tensor returns) {
        long b = rewards.dim(0);
        long t = rewards.dim(1);
        try (Staging s = new Staging(launcher, this)) {
            long r = s.in("rewards", rewards);
            float bound = Gae.inputBound(t);
            boolean bounded = requireFinite(s, "rewards", rewards, r, bound);
            long v = 0;
            if (values != null) {
                v = s.in("values", values);
                bounded &= requireFinite(s, "values", values, v, bound);
            }
            long m = s.in("mask", mask);
            long adv = advantages == null ? 0 : s.out("advantages", advantages);
            long ret = s.out("returns", returns);
            if (b > 0 && t > 0) {
                launcher.launch("rlk_gae", gaeLaunch(b, t), new KernelArgs().ptr(r).ptr(v).ptr(m)
                        .i32(mask.dtype() == DType.U8 ? 1 : 0).i64(b).i64(t).f32(gamma).f32(lambda).ptr(adv).ptr(ret));
            }
            if (!bounded && advantages != null) {
                requireRepresentable(s, advantages, adv, Float.MAX_VALUE, (i, x) -> Gae.overflow("advantages", i, x));
            }
            if (!bounded) {
                requireRepresentable(s, returns, ret, Float.MAX_VALUE, (i, x) -> Gae.overflow("returns", i, x));
            }
            s.finish();
        }
    }

    @Override
    protected void runMaskedWhiten(MaskedWhiten.Config config, Tensor x, Tensor mask, Tensor out) {
        MaskedWhiten.check(x, mask, out);
        long n = x.numel();
        try (Staging s = new Staging(launcher, this)) {
            long in = x == out ? s.inOut("x", x) : s.in("x", x);
            requireFinite(s, "x", x, in);
            long m = s.in("mask", mask);
            long o = x == out ? in : s.out("out", out);
            int blocks = reductionBlocks(n);
            long partial = s.scratch(16L * blocks);
            long stats = s.scratch(3 * 8);
            int u8 = mask.dtype() == DType.U8 ? 1 : 0;
            LaunchShape partials = new LaunchShape(blocks, 256, 0);
            LaunchShape one = new LaunchShape(1, 32, 0);
            for (int pass = 0; pass < 2; pass++) {
                launcher.launch("rlk_whiten_partials", partials,
                        new KernelArgs().ptr(in).ptr(m).i32(u8).i64(n).i32(pass).ptr(stats).ptr(partial));
                launcher.launch("rlk_whiten_finish", one, new KernelArgs().ptr(partial).i32(blocks).i32(pass)
                        .f32(config.eps()).i32(config.unbiased() ? 1 : 0).ptr(stats));
            }
            launcher.launch("rlk_whiten_apply", elementwiseLaunch(n), new KernelArgs().ptr(in).ptr(m).i32(u8).i64(n).ptr(stats).ptr(o));
            s.finish();
        }
    }

    /** Tokens per policy-loss segment when there are no sequences: RLK_PL_CHUNK in rlk_contract.h. */
    static final int POLICY_CHUNK = 4096;
    /** Doubles in a policy-loss block's partial: the stats slots before the denominator (RLK_PL_DENOMINATOR). */
    static final int POLICY_PARTIAL = PolicyLoss.STATS_LENGTH - 1;

    /** Blocks of the policy loss: one per segment up to 4,096 (each writes a partial of POLICY_PARTIAL doubles). */
    static int policyBlocks(long segments) {
        return grid(segments, 4096);
    }

    @Override
    protected void runPolicyLoss(PolicyLoss.Config c, PolicyLoss.Inputs in, Tensor gradLogp, Tensor gradEntropy, Tensor stats) {
        PolicyLoss.check(c, in, gradLogp, gradEntropy, stats);
        SequenceLayout seqs = in.sequences(); // when given, also for the token modes: it counts the sequences
        long n = in.tokens();
        try (Staging s = new Staging(launcher, this)) {
            long logp = finiteInput(s, "logp", in.logp());
            long old = finiteInput(s, "oldLogp", in.oldLogp());
            long adv = finiteInput(s, "advantages", in.advantages());
            long ref = in.refLogp() == null ? 0 : finiteInput(s, "refLogp", in.refLogp());
            long entropy = in.entropy() == null ? 0 : finiteInput(s, "entropy", in.entropy());
            long mask = s.in("mask", in.mask());
            long offsets = seqs == null ? 0 : seqs.deviceCopy(launcher, () -> copyIn(seqs.offsets())).address();
            long segments = seqs != null ? seqs.sequences() : (n + POLICY_CHUNK - 1) / POLICY_CHUNK;
            long grad = s.out("gradLogp", gradLogp);
            long gradH = gradEntropy == null ? 0 : s.out("gradEntropy", gradEntropy);
            long out = s.out("stats", stats);
            int u8 = in.mask().dtype() == DType.U8 ? 1 : 0;
            long denominator = 0; // a device scalar when the batch implies it, else the value goes as an argument
            if (Double.isNaN(c.denominator())) {
                denominator = s.scratch(8);
                launcher.launch("rlk_policy_denominator", new LaunchShape(1, 256, 0), new KernelArgs().ptr(mask).i32(u8)
                        .ptr(offsets).i64(seqs == null ? 0 : seqs.sequences()).i64(n).i32(c.aggregation().ordinal())
                        .i64(seqs == null ? 0 : seqs.longest()).ptr(denominator));
            }
            int blocks = policyBlocks(segments);
            long partial = s.scratch(8L * POLICY_PARTIAL * blocks);
            int[] codes = PolicyLoss.codes(c);
            launcher.launch("rlk_policy_loss", new LaunchShape(blocks, 256, 0), new KernelArgs().ptr(logp).ptr(old).ptr(adv)
                    .ptr(mask).i32(u8).ptr(ref).ptr(entropy).ptr(offsets).i64(seqs == null ? 0 : seqs.sequences()).i64(n)
                    .i32(codes[0]).i32(codes[1]).i32(codes[2]).i32(codes[3]).f32(c.clipLow()).f32(c.clipHigh())
                    .f32(c.dualClip()).f64(c.denominator()).ptr(denominator).f32(c.klCoef()).f32(c.entropyCoef()).ptr(grad)
                    .ptr(gradH).ptr(partial));
            launcher.launch("rlk_policy_finish", new LaunchShape(1, 32, 0), new KernelArgs().ptr(partial).i32(blocks)
                    .f64(c.denominator()).ptr(denominator).ptr(out));
            requireRepresentable(s, gradLogp, grad, Float.MAX_VALUE, (i, v) -> PolicyLoss.overflow("gradLogp", i, v));
            if (gradEntropy != null) {
                requireRepresentable(s, gradEntropy, gradH, Float.MAX_VALUE, (i, v) -> PolicyLoss.overflow("gradEntropy", i, v));
            }
            s.finish();
        }
    }

    @Override
    protected void runMaskRows(Tensor targets, Tensor mask, long vocab, Tensor out) {
        Bgpo.checkMaskRows(targets, mask, vocab, out);
        checkTargets(targets, vocab, null);
        long n = targets.numel();
        try (Staging s = new Staging(launcher, this)) {
            long y = s.in("targets", targets);
            long m = s.in("mask", mask);
            long o = s.out("out", out);
            if (n > 0) {
                launcher.launch("rlk_mask_rows", elementwiseLaunch(n), new KernelArgs().ptr(y).i32(targets.dtype() == DType.I64 ? 1 : 0)
                        .ptr(m).i32(mask.dtype() == DType.U8 ? 1 : 0).i64(n).i64(Bgpo.UNMASKED).ptr(o));
            }
            s.finish();
        }
    }

    /** Warps per block of rlk_bgpo_coefficients (a warp per sequence), and blocks: at most 1,024 partials. */
    static LaunchShape bgpoLaunch(int sequences) {
        return new LaunchShape(grid((sequences + 7) / 8, 1024), 256, 0);
    }

    @Override
    protected void runBgpoCoefficients(Bgpo.Config c, Tensor logp, SequenceLayout rows, Tensor mask, Tensor weights, Tensor oldValues,
                                 Tensor advantages, Tensor values, Tensor upstream, Tensor state) {
        Bgpo.checkCoefficients(c, logp, rows, mask, weights, oldValues, advantages, values, upstream, state);
        if (weights instanceof HostTensor hw) {
            Bgpo.checkWeights(hw);
        } else if (checkDeviceInputs) {
            try (HostTensor hw = HostTensor.allocate(DType.F32, weights.shape())) {
                download(weights, hw);
                Bgpo.checkWeights(hw);
            }
        }
        try (Staging s = new Staging(launcher, this)) {
            long lp = s.in("logp", logp);
            long m = s.in("mask", mask);
            long w = s.in("weights", weights);
            long old = finiteInput(s, "oldValues", oldValues);
            long adv = finiteInput(s, "advantages", advantages);
            long offsets = rows.deviceCopy(launcher, () -> copyIn(rows.offsets())).address();
            long vals = s.out("values", values);
            long up = s.out("upstream", upstream);
            long st = s.inOut("state", state);
            LaunchShape shape = bgpoLaunch(rows.sequences());
            long partial = s.scratch(8L * Bgpo.STATS_LENGTH * shape.gridX());
            launcher.launch("rlk_bgpo_coefficients", shape, new KernelArgs().ptr(lp).ptr(offsets).i64(rows.sequences()).ptr(m)
                    .i32(mask.dtype() == DType.U8 ? 1 : 0).ptr(w).ptr(old).ptr(adv).f32(c.clipLow()).f32(c.clipHigh())
                    .f32(c.dualClip()).f64(1.0 / (c.denominatorFor(rows.sequences()) * c.samples())).ptr(vals).ptr(up)
                    .ptr(partial));
            launcher.launch("rlk_bgpo_finish", new LaunchShape(1, 32, 0), new KernelArgs().ptr(partial).i32(shape.gridX()).ptr(st));
            requireRepresentable(s, values, vals, Float.MAX_VALUE, (i, v) -> Bgpo.overflow(c, "values", i, v));
            requireRepresentable(s, upstream, up, Bgpo.upstreamLimit(c), (i, v) -> Bgpo.overflow(c, "upstream", i, v));
            s.finish();
        }
    }

    /** One block of 16 x 16 threads per tile of C, at most 65,535 blocks (grid-stride over the rest). */
    static LaunchShape matmulLaunch(long m, long n) {
        long tiles = ((m + 15) / 16) * ((n + 15) / 16);
        return new LaunchShape(grid(tiles, 65_535), 256, 0);
    }

    @Override
    protected void runMatmul(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        Matmul.Dims d = Matmul.check(transA, transB, alpha, a, b, beta, c);
        try (Staging s = new Staging(launcher, this)) {
            long pa = s.in("a", a);
            long pb = s.in("b", b);
            long pc = beta == 0 ? s.out("c", c) : s.inOut("c", c);
            if (d.m() > 0 && d.n() > 0) {
                launcher.launch("rlk_matmul", matmulLaunch(d.m(), d.n()), new KernelArgs().i32(transA ? 1 : 0).i32(transB ? 1 : 0)
                        .i64(d.m()).i64(d.n()).i64(d.k()).f32(alpha).ptr(pa).ptr(pb).f32(beta).ptr(pc));
            }
            s.finish();
        }
    }

    /** An f32 input on the device, checked finite. */
    private long finiteInput(Staging s, String arg, Tensor t) {
        return boundedInput(s, arg, t, Float.MAX_VALUE, null);
    }

    /** An f32 input on the device, checked finite and within +-limit ({@code why}: what the bound protects). */
    private long boundedInput(Staging s, String arg, Tensor t, float limit, String why) {
        long address = s.in(arg, t);
        requireWithin(s, arg, t, address, limit, why);
        return address;
    }

    private void requireFinite(Staging s, String arg, Tensor t, long address) {
        requireWithin(s, arg, t, address, Float.MAX_VALUE, null);
    }

    /**
     * The same, telling in the same pass whether every element is within +-bound (the op's bound
     * under which its outputs cannot overflow, so they need no scan). A device tensor while device
     * checks are off counts as bounded: nothing about it is checked then.
     */
    private boolean requireFinite(Staging s, String arg, Tensor t, long address, float bound) {
        if (t instanceof HostTensor h) {
            if (Check.firstOutside(h, bound) < 0) {
                return true;
            }
        } else if (!checkDeviceInputs || firstOutside(s, address, t.numel(), bound) < 0) {
            return true;
        }
        requireFinite(s, arg, t, address);
        return false;
    }

    /**
     * Refuses an element of an f32 input that is NaN or beyond +-limit: on the host directly, on
     * the device (unless its checks are off) with a kernel and 8 bytes back.
     */
    private void requireWithin(Staging s, String arg, Tensor t, long address, float limit, String why) {
        if (t instanceof HostTensor h) {
            Check.within(arg, h, limit, why);
            return;
        }
        if (!checkDeviceInputs) {
            return;
        }
        long bad = firstOutside(s, address, t.numel(), limit);
        if (bad >= 0) {
            throw Check.outside(arg, bad, floatAt(address, bad), limit, why);
        }
    }

    /**
     * After the kernels: refuses an f32 output that overflowed (its inputs were finite), before it
     * is copied back. On a device tensor only while device checks are on: it waits for the kernels.
     */
    private void requireRepresentable(Staging s, Tensor output, long address, float limit, Check.Refusal refusal) {
        if (!(output instanceof HostTensor) && !checkDeviceInputs) {
            return;
        }
        long bad = firstOutside(s, address, output.numel(), limit);
        if (bad >= 0) {
            throw refusal.at(bad, floatAt(address, bad));
        }
    }

    /** The first of n device floats that is NaN or beyond +-limit, or -1 (a kernel and 8 bytes back). */
    private long firstOutside(Staging s, long address, long n, float limit) {
        if (n == 0) {
            return -1;
        }
        long first = deviceCell(s, n);
        launcher.launch("rlk_first_outside_f32", elementwiseLaunch(n), new KernelArgs().ptr(address).i64(n).f32(limit).ptr(first));
        long bad = readCell(first);
        return bad < n ? bad : -1;
    }

    /** An 8-byte device cell holding {@code value} (a minimum the kernels lower with atomicMin). */
    private long deviceCell(Staging s, long value) {
        long cell = s.scratch(8);
        try (HostTensor h = HostTensor.allocate(DType.I64, 1)) {
            h.setLong(0, value);
            launcher.copyToDevice(cell, h.segment(), 8);
        }
        return cell;
    }

    /** The value of a device cell, after the kernels launched so far. */
    private long readCell(long cell) {
        try (HostTensor h = HostTensor.allocate(DType.I64, 1)) {
            launcher.copyToHost(h.segment(), cell, 8);
            return h.getLong(0);
        }
    }

    private float floatAt(long address, long index) {
        try (HostTensor value = HostTensor.allocate(DType.F32, 1)) {
            launcher.copyToHost(value.segment(), address + 4 * index, 4);
            return value.getFloat(0);
        }
    }

    private static boolean vectorizable(long address) {
        return address % VECTOR_BYTES == 0;
    }

    /**
     * Target ids are checked on the host before any kernel runs (in [0, V), or the ignore index when
     * one is given); device ids are copied back for it.
     */
    private void checkTargets(Tensor targets, long vocab, Long ignoreIndex) {
        HostTensor h = targets instanceof HostTensor ht ? ht : null;
        if (h == null) {
            DeviceTensor dt = device("targets", targets);
            if (!checkDeviceInputs) {
                return;
            }
            h = HostTensor.allocate(dt.dtype(), dt.shape());
            download(dt, h);
        }
        try {
            if (ignoreIndex == null) {
                LogProbs.checkTokenIds(h, vocab);
            } else {
                LogProbs.checkTargets(h, vocab, ignoreIndex);
            }
        } finally {
            if (h != targets) {
                h.close();
            }
        }
    }

    /**
     * A device tensor this backend may use: its own, or wrapped memory, which must lie inside one
     * allocation of this device (checked before every use, so a bad address is an exception).
     */
    DeviceTensor device(String arg, Tensor t) {
        DeviceTensor dt = (DeviceTensor) t;
        if (dt.owner() != null && dt.owner() != launcher) {
            throw Check.fail(arg, "a device tensor of this backend (" + launcher.describe() + ")",
                    "one allocated by another backend");
        }
        if (!dt.isOwned() && dt.byteSize() > 0) {
            launcher.checkForeign(arg, dt.address(), dt.byteSize());
        }
        return dt;
    }

    @Override
    protected void release() {
        launcher.close();
    }
}
