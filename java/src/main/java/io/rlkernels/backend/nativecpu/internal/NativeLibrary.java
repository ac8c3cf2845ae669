package io.rlkernels.backend.nativecpu.internal;

import io.rlkernels.internal.BundledFiles;
import io.rlkernels.internal.Contract;
import io.rlkernels.internal.Downcalls;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.Optional;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * FFM bindings of librlkernels (native/include/rlkernels.h), which the build packs into the jar.
 * Every kernel has two handles: a plain one, and a critical one that may read Java arrays in
 * place (used only when an argument is a heap segment, since a critical call holds off the GC).
 */
public final class NativeLibrary {
    public static final String RESOURCE = "/io/rlkernels/native/linux-x86_64/librlkernels.so";
    private static final int ABI_VERSION = 6;

    private static final FunctionDescriptor FWD = FunctionDescriptor.of(JAVA_INT,
            ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, JAVA_LONG,
            ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
    private static final FunctionDescriptor BWD = FunctionDescriptor.of(JAVA_INT,
            ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, JAVA_LONG,
            ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG);

    /** The loaded library, or why it could not be loaded. */
    private static final Object LOADED = load();

    private final MethodHandle logprobsFwd;
    private final MethodHandle logprobsFwdCritical;
    private final MethodHandle logprobsBwd;
    private final MethodHandle logprobsBwdCritical;
    private final MethodHandle sumF32;
    private final MethodHandle groupAdvantages;
    private final MethodHandle sequenceToTokens;
    private final MethodHandle gae;
    private final MethodHandle maskedWhiten;
    private final MethodHandle otb;
    private final MethodHandle firstOutside;
    private final MethodHandle policyLoss;
    private final MethodHandle maskRows;
    private final MethodHandle bgpoCoefficients;
    private final MethodHandle matmul;
    private final MethodHandle widen;
    private final MethodHandle isaSelected;
    private final MethodHandle isaSupportedMask;
    private final MethodHandle isaSelect;
    private final MethodHandle isaName;
    private final MethodHandle maxThreads;
    private final MethodHandle setNumThreads;

    private NativeLibrary(SymbolLookup lib) {
        Linker linker = Linker.nativeLinker();
        Linker.Option critical = Linker.Option.critical(true);
        logprobsFwd = linker.downcallHandle(find(lib, "rlk_logprobs_fwd"), FWD);
        logprobsFwdCritical = linker.downcallHandle(find(lib, "rlk_logprobs_fwd"), FWD, critical);
        logprobsBwd = linker.downcallHandle(find(lib, "rlk_logprobs_bwd"), BWD);
        logprobsBwdCritical = linker.downcallHandle(find(lib, "rlk_logprobs_bwd"), BWD, critical);
        sumF32 = linker.downcallHandle(find(lib, "rlk_sum_f32"), FunctionDescriptor.of(JAVA_DOUBLE, ADDRESS, JAVA_LONG));
        groupAdvantages = linker.downcallHandle(find(lib, "rlk_group_advantages"), FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_FLOAT, JAVA_INT, ADDRESS), critical);
        sequenceToTokens = linker.downcallHandle(find(lib, "rlk_sequence_to_tokens"), FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS), critical);
        gae = linker.downcallHandle(find(lib, "rlk_gae"), FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, JAVA_FLOAT, ADDRESS, ADDRESS), critical);
        otb = linker.downcallHandle(find(lib, "rlk_otb"), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, JAVA_INT, ADDRESS, ADDRESS), critical);
        maskedWhiten = linker.downcallHandle(find(lib, "rlk_masked_whiten"), FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_FLOAT, JAVA_INT, ADDRESS), critical);
        firstOutside = linker.downcallHandle(find(lib, "rlk_first_outside_f32"),
                FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_FLOAT), critical);
        policyLoss = linker.downcallHandle(find(lib, "rlk_policy_loss"), FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS), critical);
        maskRows = linker.downcallHandle(find(lib, "rlk_mask_rows"), FunctionDescriptor.of(JAVA_INT,
                ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS), critical);
        bgpoCoefficients = linker.downcallHandle(find(lib, "rlk_bgpo_coefficients"), FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT,
                JAVA_DOUBLE, ADDRESS, ADDRESS, ADDRESS), critical);
        matmul = linker.downcallHandle(find(lib, "rlk_matmul"), FunctionDescriptor.of(JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, ADDRESS, ADDRESS, JAVA_FLOAT, ADDRESS));
        isaSelected = linker.downcallHandle(find(lib, "rlk_isa_selected"), FunctionDescriptor.of(JAVA_INT));
        isaSupportedMask = linker.downcallHandle(find(lib, "rlk_isa_supported_mask"), FunctionDescriptor.of(JAVA_INT));
        isaSelect = linker.downcallHandle(find(lib, "rlk_isa_select"), FunctionDescriptor.of(JAVA_INT, JAVA_INT));
        widen = linker.downcallHandle(find(lib, "rlk_widen"), FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG,
                ADDRESS));
        isaName = linker.downcallHandle(find(lib, "rlk_isa_name"), FunctionDescriptor.of(ADDRESS, JAVA_INT));
        maxThreads = linker.downcallHandle(find(lib, "rlk_max_threads"), FunctionDescriptor.of(JAVA_INT));
        setNumThreads = linker.downcallHandle(find(lib, "rlk_set_num_threads"), FunctionDescriptor.ofVoid(JAVA_INT));
    }

    private static MemorySegment find(SymbolLookup lib, String name) {
        return lib.find(name).orElseThrow(() -> new IllegalStateException("librlkernels lacks the symbol " + name));
    }

    private static Object load() {
        try {
            Optional<Path> file = BundledFiles.file(RESOURCE);
            if (file.isEmpty()) {
                return "librlkernels.so is not in the jar: the build did not compile native/ (is gcc installed?)";
            }
            // The library lives as long as the class: global arena.
            SymbolLookup lib = SymbolLookup.libraryLookup(file.get(), Arena.global());
            NativeLibrary nl = new NativeLibrary(lib);
            int abi = (int) Linker.nativeLinker().downcallHandle(find(lib, "rlk_abi_version"),
                    FunctionDescriptor.of(JAVA_INT)).invokeExact();
            if (abi != ABI_VERSION) {
                return "librlkernels.so has interface version " + abi + ", this jar expects " + ABI_VERSION + ": rebuild";
            }
            int crc = (int) Linker.nativeLinker().downcallHandle(find(lib, "rlk_contract_crc"),
                    FunctionDescriptor.of(JAVA_INT)).invokeExact();
            String mismatch = Contract.mismatch("librlkernels.so", crc);
            if (mismatch != null) {
                return mismatch;
            }
            return nl;
        } catch (IllegalArgumentException e) {
            return "cannot load librlkernels.so: " + e.getMessage() + " (it needs libgomp.so.1: install libgomp1)";
        } catch (IllegalCallerException e) {
            return "native access is disabled: run java with --enable-native-access=ALL-UNNAMED";
        } catch (Throwable e) {
            return "cannot load librlkernels.so: " + e;
        }
    }

    /** The library, or empty when it cannot be loaded ({@link #unavailableReason()} says why). */
    public static Optional<NativeLibrary> get() {
        return LOADED instanceof NativeLibrary nl ? Optional.of(nl) : Optional.empty();
    }

    public static String unavailableReason() {
        return LOADED instanceof String reason ? reason : null;
    }

    /** The instruction-set variant in use: 0 x86-64, 1 avx2, 2 avx512. */
    public int isaSelected() {
        try {
            return (int) isaSelected.invokeExact();
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /** Bit i set when the CPU runs variant i. */
    public int isaSupportedMask() {
        try {
            return (int) isaSupportedMask.invokeExact();
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /** Forces a variant (-1: automatic); false if the CPU lacks it. */
    public boolean isaSelect(int isa) {
        try {
            return (int) isaSelect.invokeExact(isa) == 0;
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    public String isaName(int isa) {
        try {
            MemorySegment s = (MemorySegment) isaName.invokeExact(isa);
            return s.reinterpret(64).getString(0);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    public int maxThreads() {
        try {
            return (int) maxThreads.invokeExact();
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    public void setNumThreads(int n) {
        try {
            setNumThreads.invokeExact(n);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /**
     * rlk_logprobs_fwd; {@code lse}, {@code entropy} and {@code lseParts} may be
     * {@link MemorySegment#NULL}; {@code firstOverflow} (8 bytes, or NULL) receives the first row
     * whose lse or logp overflows float32, or -1. Returns the status.
     */
    public int logprobsFwd(MemorySegment logits, int dtype, MemorySegment targets, int itype, long n, long v,
                           float temperature, long ignoreIndex, MemorySegment logp, MemorySegment lse,
                           MemorySegment entropy, MemorySegment lseParts, MemorySegment firstOverflow) {
        MethodHandle h = anyHeap(logits, targets, logp, lse, entropy, lseParts) ? logprobsFwdCritical : logprobsFwd;
        try {
            return (int) h.invokeExact(logits, dtype, targets, itype, n, v, temperature, ignoreIndex, logp, lse, entropy,
                    lseParts, firstOverflow);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /**
     * rlk_logprobs_bwd from the forward's lseParts; optional arguments are {@link MemorySegment#NULL}.
     * {@code col0} negative: whole rows; else the logits are columns [col0, col0 + v) of longer rows
     * (a vocabulary tile; targets are ids of the whole row). Returns the status.
     */
    public int logprobsBwd(MemorySegment logits, int dtype, MemorySegment targets, int itype, long n, long v,
                           float temperature, long ignoreIndex, MemorySegment lseParts, MemorySegment entropy,
                           MemorySegment gradLogp, MemorySegment gradEntropy, MemorySegment gradLogits,
                           int gradDtype, long col0) {
        MethodHandle h = anyHeap(logits, targets, lseParts, entropy, gradLogp, gradEntropy, gradLogits)
                ? logprobsBwdCritical : logprobsBwd;
        try {
            return (int) h.invokeExact(logits, dtype, targets, itype, n, v, temperature, ignoreIndex, lseParts, entropy,
                    gradLogp, gradEntropy, gradLogits, gradDtype, col0);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    // The advantage kernels take milliseconds, not seconds: critical handles (Java arrays read in
    // place) are fine for them whatever the arguments.

    public int groupAdvantages(MemorySegment rewards, MemorySegment weights, MemorySegment order, MemorySegment offsets,
                               long groups, int mode, boolean unbiased, float eps, boolean byStd, MemorySegment advantages) {
        try {
            return (int) groupAdvantages.invokeExact(rewards, weights, order, offsets, groups, mode, unbiased ? 1 : 0, eps,
                    byStd ? 1 : 0, advantages);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    public int sequenceToTokens(MemorySegment perSequence, MemorySegment mask, boolean maskU8, long s, long t,
                                MemorySegment perToken) {
        try {
            return (int) sequenceToTokens.invokeExact(perSequence, mask, maskU8 ? 1 : 0, s, t, perToken);
        } catch (Throwable t2) {
            throw Downcalls.rethrow(t2);
        }
    }

    /** GAE, or discounted returns when {@code values} and {@code advantages} are NULL. */
    public int gae(MemorySegment rewards, MemorySegment values, MemorySegment mask, boolean maskU8, long b, long t,
                   float gamma, float lambda, MemorySegment advantages, MemorySegment returns) {
        try {
            return (int) gae.invokeExact(rewards, values, mask, maskU8 ? 1 : 0, b, t, gamma, lambda, advantages, returns);
        } catch (Throwable t2) {
            throw Downcalls.rethrow(t2);
        }
    }

    /** The optimal token baseline; {@code isWeights} may be NULL. */
    public int otb(MemorySegment rewards, MemorySegment mask, boolean maskU8, MemorySegment oldLogp, MemorySegment sumPiSquared,
                   MemorySegment isWeights, MemorySegment order, MemorySegment offsets, long groups, long s, long t, float eps,
                   boolean zeroTail, MemorySegment advantages, MemorySegment returns) {
        try {
            return (int) otb.invokeExact(rewards, mask, maskU8 ? 1 : 0, oldLogp, sumPiSquared, isWeights, order, offsets, groups, s, t,
                    eps, zeroTail ? 1 : 0, advantages, returns);
        } catch (Throwable t2) {
            throw Downcalls.rethrow(t2);
        }
    }

    public int maskedWhiten(MemorySegment x, MemorySegment mask, boolean maskU8, long n, float eps, boolean unbiased,
                            MemorySegment out) {
        try {
            return (int) maskedWhiten.invokeExact(x, mask, maskU8 ? 1 : 0, n, eps, unbiased ? 1 : 0, out);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /** rlk_policy_loss; codes are loss type, ratio level, aggregation, KL estimator (PolicyLoss.codes). */
    /** rlk_policy_loss; {@code params} the f64 parameter array (PolicyLossChecks.params), read in place. */
    public int policyLoss(MemorySegment logp, MemorySegment old, MemorySegment adv, MemorySegment mask, boolean maskU8,
                          MemorySegment ref, MemorySegment entropy, MemorySegment rollout, MemorySegment offsets, long sequences,
                          long n, double[] params, MemorySegment grad, MemorySegment gradEntropy, MemorySegment stats) {
        try {
            return (int) policyLoss.invokeExact(logp, old, adv, mask, maskU8 ? 1 : 0, ref, entropy, rollout, offsets, sequences, n,
                    MemorySegment.ofArray(params), grad, gradEntropy, stats);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    public int maskRows(MemorySegment targets, int itype, MemorySegment mask, boolean maskU8, long n, long ignore,
                        MemorySegment out) {
        try {
            return (int) maskRows.invokeExact(targets, itype, mask, maskU8 ? 1 : 0, n, ignore, out);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    public int bgpoCoefficients(MemorySegment logp, MemorySegment offsets, long sequences, MemorySegment mask, boolean maskU8,
                                MemorySegment weights, MemorySegment old, MemorySegment adv, float clipLow, float clipHigh,
                                float dualClip, double scale, MemorySegment values, MemorySegment upstream, MemorySegment state) {
        try {
            return (int) bgpoCoefficients.invokeExact(logp, offsets, sequences, mask, maskU8 ? 1 : 0, weights, old, adv, clipLow,
                    clipHigh, dualClip, scale, values, upstream, state);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /** rlk_matmul; a GEMM takes long, so never a critical call (Java arrays are copied by the caller). */
    public int matmul(boolean transA, boolean transB, long m, long n, long k, float alpha, MemorySegment a, MemorySegment b,
                      float beta, MemorySegment c) {
        try {
            return (int) matmul.invokeExact(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, b, beta, c);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /** rlk_widen: n bf16 (dtype 1) or f16 (dtype 2) elements of src into f32 dst. */
    public int widen(int dtype, MemorySegment src, long n, MemorySegment dst) {
        try {
            return (int) widen.invokeExact(dtype, src, n, dst);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /** The index of the first of n floats that is NaN or beyond +-limit (Float.MAX_VALUE: non-finite), or -1. */
    public long firstOutside(MemorySegment x, long n, float limit) {
        try {
            return (long) firstOutside.invokeExact(x, n, limit);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    private static boolean anyHeap(MemorySegment... segments) {
        for (MemorySegment s : segments) {
            if (!s.isNative()) {
                return true;
            }
        }
        return false;
    }

    /** The read-bandwidth probe: sum of n floats with every core. */
    public double sumF32(MemorySegment x, long n) {
        try {
            return (double) sumF32.invokeExact(x, n);
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }
}
