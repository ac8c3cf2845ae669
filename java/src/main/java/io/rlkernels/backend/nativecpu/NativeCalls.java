package io.rlkernels.backend.nativecpu;

import io.rlkernels.backend.nativecpu.internal.NativeLibrary;
import io.rlkernels.internal.Check;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * What every op's native call shares: the library, host-only arguments as segments, the status
 * codes, and the input checks the library runs vectorised (NaN or beyond a bound, on every core).
 */
final class NativeCalls {
    static final int RLK_OK = 0;
    /** enum rlk_status: finite inputs gave an output float32 cannot hold. */
    static final int RLK_OVERFLOW = 5;

    private final NativeLibrary lib;

    NativeCalls(NativeLibrary lib) {
        this.lib = lib;
    }

    NativeLibrary lib() {
        return lib;
    }

    static MemorySegment optional(String arg, Tensor t) {
        return t == null ? MemorySegment.NULL : segment(arg, t);
    }

    /** Refuses a NaN or infinity in an f32 input, found by the native library (vectorised, every core). */
    void requireFinite(String arg, HostTensor t) {
        requireWithin(arg, t, Float.MAX_VALUE, null);
    }

    /**
     * The same, in the same one pass telling whether every element is within +-bound (an op's
     * bound under which its outputs cannot overflow): true when they all are.
     */
    boolean requireFinite(String arg, HostTensor t, float bound) {
        if (firstOutside(t, bound) < 0) {
            return true;
        }
        requireFinite(arg, t);
        return false;
    }

    /** Refuses an f32 input with an element beyond +-limit, or NaN ({@code why}: what the bound protects). */
    void requireWithin(String arg, HostTensor t, float limit, String why) {
        long bad = firstOutside(t, limit);
        if (bad >= 0) {
            throw Check.outside(arg, bad, t.getFloat(bad), limit, why);
        }
    }

    /** The first element of an f32 host tensor that is NaN or beyond +-limit, or -1. */
    long firstOutside(HostTensor t, float limit) {
        return lib.firstOutside(t.segment(), t.numel(), limit);
    }

    /**
     * Refuses the inputs when {@code output} holds a value float32 could not hold (an infinity from
     * finite inputs). Scanned only when a kernel reported RLK_OVERFLOW or an input exceeded its
     * op's bound: never on the normal path.
     */
    void refuseOverflow(HostTensor output, Check.Refusal refusal) {
        long bad = firstOutside(output, Float.MAX_VALUE);
        if (bad >= 0) {
            throw refusal.at(bad, output.getFloat(bad));
        }
    }

    static HostTensor host(String arg, Tensor t) {
        return Check.host(arg, t, "native");
    }

    static MemorySegment segment(String arg, Tensor t) {
        return host(arg, t).segment();
    }

    /** Arguments were checked, so a failure here is a bug in this library, not bad input. */
    static void check(int rc, String call) {
        if (rc != RLK_OK) {
            throw new IllegalStateException(call + " returned status " + rc + " after its arguments were checked");
        }
    }
}
