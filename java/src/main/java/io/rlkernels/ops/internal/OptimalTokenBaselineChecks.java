package io.rlkernels.ops.internal;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.OptimalTokenBaseline;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.Tensor;

/** The optimal token baseline's argument checks ({@link OptimalTokenBaseline}). Not API. */
public final class OptimalTokenBaselineChecks {
    private OptimalTokenBaselineChecks() {}

    /** [S, T] f32 inputs (an f32 or u8 mask, optional IS weights), groups of S rows, distinct f32 outputs. */
    public static void check(OptimalTokenBaseline.Config config, OptimalTokenBaseline.Inputs in, Tensor advantages, Tensor returns) {
        if (config == null || in == null) {
            throw Check.fail(config == null ? "config" : "inputs", "not null", "null");
        }
        Check.alive("tokenRewards", in.tokenRewards());
        Check.dtype("tokenRewards", in.tokenRewards(), DType.F32);
        Check.rank("tokenRewards", in.tokenRewards(), 2);
        long[] shape = in.tokenRewards().shape();
        Check.alive("mask", in.mask());
        Check.dtype("mask", in.mask(), DType.F32, DType.U8);
        Check.shape("mask", in.mask(), shape);
        for (String name : new String[] {"oldLogp", "sumPiSquared", "isWeights"}) {
            Tensor x = switch (name) {
                case "oldLogp" -> in.oldLogp();
                case "sumPiSquared" -> in.sumPiSquared();
                default -> in.isWeights();
            };
            if (x == null && !name.equals("isWeights")) {
                throw Check.fail(name, "a tensor [S, T] f32 (the optimal token baseline weighs by the old policy's 1 - 2 pi + sum pi^2)",
                        "null");
            }
            if (x != null) {
                Check.alive(name, x);
                Check.dtype(name, x, DType.F32);
                Check.shape(name, x, shape);
            }
        }
        if (in.groups() == null) {
            throw Check.fail("groups", "a GroupLayout of the " + shape[0] + " rows", "null");
        }
        if (in.groups().sequences() != shape[0]) {
            throw Check.fail("groups", "a layout of " + shape[0] + " sequences (the rows of tokenRewards)",
                    in.groups().sequences() + " sequences");
        }
        Check.output("advantages", advantages);
        Check.dtype("advantages", advantages, DType.F32);
        Check.shape("advantages", advantages, shape);
        Check.output("returns", returns);
        Check.dtype("returns", returns, DType.F32);
        Check.shape("returns", returns, shape);
        Check.distinct("advantages", advantages, "returns", returns);
        // the kernels write returns while they still read the inputs: no output may share an input's memory
        String[] names = {"tokenRewards", "mask", "oldLogp", "sumPiSquared", "isWeights"};
        Tensor[] inputs = {in.tokenRewards(), in.mask(), in.oldLogp(), in.sumPiSquared(), in.isWeights()};
        for (int i = 0; i < inputs.length; i++) {
            Check.distinct(names[i], inputs[i], "advantages", advantages);
            Check.distinct(names[i], inputs[i], "returns", returns);
        }
    }

    /** The refusal of inputs whose cumulative weights W, baseline or advantages float32 cannot hold. */
    public static IllegalArgumentException overflow(String output, long index, float value) {
        return Check.overflowed("oldLogp, sumPiSquared, isWeights, tokenRewards", output, index, value,
                "the cumulative weights W and the baselines are sums of (1 - 2 pi + sum pi^2) rho^2 and of returns");
    }
}
