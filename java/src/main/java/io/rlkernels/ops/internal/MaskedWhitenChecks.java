package io.rlkernels.ops.internal;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.Tensor;

/** Masked whitening's argument checks ({@link MaskedWhiten}). Not API. */
public final class MaskedWhitenChecks {
    private MaskedWhitenChecks() {}

    public static void check(Tensor x, Tensor mask, Tensor out) {
        Check.alive("x", x);
        Check.dtype("x", x, DType.F32);
        Check.alive("mask", mask);
        Check.dtype("mask", mask, DType.F32, DType.U8);
        Check.shape("mask", mask, x.shape());
        Check.output("out", out);
        Check.dtype("out", out, DType.F32);
        Check.shape("out", out, x.shape());
    }
}
