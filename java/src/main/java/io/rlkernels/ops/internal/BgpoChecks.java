package io.rlkernels.ops.internal;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.ops.internal.LogProbsChecks;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/** BGPO's argument checks and bounds ({@link Bgpo}). Not API. */
public final class BgpoChecks {
    private BgpoChecks() {}

    /**
     * Checks one sample's inputs: logits [R, V] (f32, bf16, f16), targets [R] (i32/i64), the rows'
     * sequences (a layout of R rows), mask [R] (u8 or f32: the rows this sample masks), weights,
     * old values and advantages [S] f32, and the outputs: gradLogits [R, V] (or the logits
     * themselves, in place), values [S] f32 or null, state f64 [Bgpo.STATS_LENGTH].
     */
    public static void checkStep(Bgpo.Config c, Tensor logits, Tensor targets, SequenceLayout rows, Tensor mask, Tensor weights,
                                 Tensor oldValues, Tensor advantages, Tensor gradLogits, Tensor values, Tensor state) {
        if (c == null) {
            throw Check.fail("config", "a Bgpo.Config", "null");
        }
        LogProbs.Dims d = LogProbsChecks.checkInputs(logits, targets);
        if (rows == null) {
            throw Check.fail("rows", "the sequence of each response row (a SequenceLayout)", "null");
        }
        rows.requireAlive("rows");
        if (rows.tokens() != d.rows()) {
            throw Check.fail("rows", "a layout of the " + d.rows() + " response rows", rows.tokens() + " rows");
        }
        int s = rows.sequences();
        Check.alive("mask", mask);
        Check.dtype("mask", mask, DType.U8, DType.F32);
        Check.shape("mask", mask, d.rows());
        for (Object[] arg : new Object[][] {{"weights", weights}, {"oldValues", oldValues}, {"advantages", advantages}}) {
            Tensor t = (Tensor) arg[1];
            Check.alive((String) arg[0], t);
            Check.dtype((String) arg[0], t, DType.F32);
            Check.shape((String) arg[0], t, s);
        }
        Check.output("gradLogits", gradLogits);
        Check.floatingPoint("gradLogits", gradLogits);
        Check.shape("gradLogits", gradLogits, d.rows(), d.vocab());
        if (gradLogits != logits) {
            Check.distinct("logits", logits, "gradLogits", gradLogits);
        }
        if (values != null) {
            Check.output("values", values);
            Check.dtype("values", values, DType.F32);
            Check.shape("values", values, s);
        }
        Check.output("state", state);
        Check.dtype("state", state, DType.F64);
        Check.shape("state", state, Bgpo.STATS_LENGTH);
    }

    /** Checks maskRows: targets [R] i32/i64, mask [R] u8/f32, a vocabulary of at least 1, out like targets. */
    public static void checkMaskRows(Tensor targets, Tensor mask, long vocab, Tensor out) {
        if (vocab < 1) {
            throw Check.fail("vocab", "a vocabulary of at least 1 token", vocab);
        }
        Check.alive("targets", targets);
        Check.dtype("targets", targets, DType.I32, DType.I64);
        Check.alive("mask", mask);
        Check.dtype("mask", mask, DType.U8, DType.F32);
        Check.shape("mask", mask, targets.shape());
        Check.output("out", out);
        Check.dtype("out", out, targets.dtype());
        Check.shape("out", out, targets.shape());
    }

    /** Checks bgpoCoefficients: logp, mask, upstream [R]; weights, old values, advantages, values [S]; state. */
    public static void checkCoefficients(Bgpo.Config c, Tensor logp, SequenceLayout rows, Tensor mask, Tensor weights,
                                         Tensor oldValues, Tensor advantages, Tensor values, Tensor upstream, Tensor state) {
        if (c == null || rows == null) {
            throw Check.fail("config, rows", "a Bgpo.Config and a SequenceLayout", "null");
        }
        rows.requireAlive("rows");
        long r = rows.tokens();
        long s = rows.sequences();
        for (Object[] arg : new Object[][] {{"logp", logp, r}, {"upstream", upstream, r}, {"weights", weights, s},
            {"oldValues", oldValues, s}, {"advantages", advantages, s}, {"values", values, s}}) {
            Tensor t = (Tensor) arg[1];
            String name = (String) arg[0];
            if (name.equals("upstream") || name.equals("values")) {
                Check.output(name, t);
            } else {
                Check.alive(name, t);
            }
            Check.dtype(name, t, DType.F32);
            Check.shape(name, t, (long) arg[2]);
        }
        Check.alive("mask", mask);
        Check.dtype("mask", mask, DType.U8, DType.F32);
        Check.shape("mask", mask, r);
        Check.output("state", state);
        Check.dtype("state", state, DType.F64);
        Check.shape("state", state, Bgpo.STATS_LENGTH);
    }

    /**
     * The refusal of finite inputs whose sequence values or logits gradient float32 cannot hold:
     * {@code values} (w * sum logp) or {@code upstream} (A psi' w / (D n_t), bounded as
     * {@code LogProbsChecks.upstreamLimits} bounds an upstream gradient).
     */
    public static IllegalArgumentException overflow(Bgpo.Config config, String output, long index, float value) {
        return output.equals("values")
                ? Check.overflowed("weights, logp", "values", index, value, "a sequence's value is its weight times its summed logp")
                : Check.fail("advantages, weights, denominator", "values that keep the logits gradient within float32 (row p's is"
                        + " A psi' w / (D n_t) times (p_v - 1[v = y]), kept below " + upstreamLimit(config) + " "
                        + LogProbsChecks.upstreamReason(config.temperature()) + ")", "row " + index + "'s A psi' w / (D n_t) = " + value);
    }

    /** The largest per-row upstream gradient whose logits gradient float32 holds. */
    public static float upstreamLimit(Bgpo.Config config) {
        return LogProbsChecks.upstreamLimits(config.temperature(), 1)[0];
    }

    /** Every weight is finite and positive (a weight is 1/x or L/x). */
    public static void checkWeights(HostTensor weights) {
        for (long i = 0, n = weights.numel(); i < n; i++) {
            float w = weights.getFloat(i);
            if (!(w > 0) || !Float.isFinite(w)) {
                throw Check.fail("weights[" + i + "]", "a finite weight > 0", w);
            }
        }
    }
}
