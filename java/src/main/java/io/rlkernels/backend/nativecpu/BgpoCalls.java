package io.rlkernels.backend.nativecpu;

import io.rlkernels.ops.internal.BgpoChecks;
import io.rlkernels.ops.internal.LogProbsChecks;
import static io.rlkernels.backend.nativecpu.NativeCalls.check;
import static io.rlkernels.backend.nativecpu.NativeCalls.host;
import static io.rlkernels.backend.nativecpu.NativeCalls.segment;

import io.rlkernels.backend.nativecpu.internal.NativeLibrary;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/** BGPO's building blocks on librlkernels (rlk_mask_rows, rlk_bgpo_coefficients; contract {@link io.rlkernels.ops.Bgpo}). */
final class BgpoCalls {
    private final NativeLibrary lib;
    private final NativeCalls calls;

    BgpoCalls(NativeCalls calls) {
        this.lib = calls.lib();
        this.calls = calls;
    }

    void maskRows(Tensor targets, Tensor mask, long vocab, Tensor out) {
        BgpoChecks.checkMaskRows(targets, mask, vocab, out);
        LogProbsChecks.checkTokenIds(host("targets", targets), vocab);
        check(lib.maskRows(segment("targets", targets), targets.dtype().code(), segment("mask", mask), mask.dtype() == DType.U8,
                targets.numel(), Bgpo.UNMASKED, segment("out", out)), "rlk_mask_rows");
    }

    void coefficients(Bgpo.Config c, Tensor logp, SequenceLayout rows, Tensor mask, Tensor weights, Tensor oldValues,
                                 Tensor advantages, Tensor values, Tensor upstream, Tensor state) {
        BgpoChecks.checkCoefficients(c, logp, rows, mask, weights, oldValues, advantages, values, upstream, state);
        HostTensor w = host("weights", weights);
        BgpoChecks.checkWeights(w);
        calls.requireFinite("oldValues", host("oldValues", oldValues));
        calls.requireFinite("advantages", host("advantages", advantages));
        check(lib.bgpoCoefficients(segment("logp", logp), rows.offsets().segment(), rows.sequences(), segment("mask", mask),
                mask.dtype() == DType.U8, w.segment(), segment("oldValues", oldValues), segment("advantages", advantages),
                c.clipLow(), c.clipHigh(), c.dualClip(), 1.0 / (c.denominatorFor(rows.sequences()) * c.samples()),
                segment("values", values), segment("upstream", upstream), segment("state", state)), "rlk_bgpo_coefficients");
        for (String out : new String[] {"values", "upstream"}) {
            HostTensor o = host(out, out.equals("values") ? values : upstream);
            long bad = calls.firstOutside(o, out.equals("values") ? Float.MAX_VALUE : BgpoChecks.upstreamLimit(c));
            if (bad >= 0) {
                throw BgpoChecks.overflow(c, out, bad, o.getFloat(bad));
            }
        }
    }
}
