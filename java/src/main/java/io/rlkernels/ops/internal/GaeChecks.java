package io.rlkernels.ops.internal;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.Gae;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.Tensor;

/** GAE's and the discounted returns' argument checks and input bound ({@link Gae}). Not API. */
public final class GaeChecks {
    private GaeChecks() {}

    /**
     * Rewards and values within +-inputBound(T) cannot give an advantage or a return beyond
     * float32: |A_t| &lt;= sum_k (gamma lambda)^k |r + gamma V' - V| &lt;= T (|r| + 2 |V|) and
     * |R_t| &lt;= |A_t| + |V|. Backends check this bound in the same pass as the inputs' finiteness,
     * and look for an overflow in the outputs only when an input exceeds it (|x| near 1e34 at
     * T = 4096): the kernel itself tests nothing.
     */
    public static float inputBound(long t) {
        return (float) (Float.MAX_VALUE / (4.0 * (t + 1)));
    }

    /** The refusal of finite rewards and values whose advantages or returns float32 cannot hold. */
    public static IllegalArgumentException overflow(String output, long index, float value) {
        return Check.overflowed("rewards, values", output, index, value, "advantages and returns sum discounted rewards and values");
    }

    /** Checks [B, T] token tensors: f32 rewards and values, an f32 or u8 mask, f32 outputs. */
    public static void check(Tensor rewards, Tensor values, Tensor mask, Tensor... outputs) {
        Check.alive("rewards", rewards);
        Check.dtype("rewards", rewards, DType.F32);
        Check.rank("rewards", rewards, 2);
        long[] shape = rewards.shape();
        if (values == null && outputs.length == 2) {
            throw Check.fail("values", "a tensor (GAE needs the value estimates)", "null");
        }
        if (values != null) {
            Check.alive("values", values);
            Check.dtype("values", values, DType.F32);
            Check.shape("values", values, shape);
        }
        Check.alive("mask", mask);
        Check.dtype("mask", mask, DType.F32, DType.U8);
        Check.shape("mask", mask, shape);
        String[] names = values != null ? new String[] {"advantages", "returns"} : new String[] {"returns"};
        for (int i = 0; i < outputs.length; i++) {
            Check.output(names[i], outputs[i]);
            Check.dtype(names[i], outputs[i], DType.F32);
            Check.shape(names[i], outputs[i], shape);
        }
        if (outputs.length == 2) {
            Check.distinct("advantages", outputs[0], "returns", outputs[1]);
        }
    }
}
