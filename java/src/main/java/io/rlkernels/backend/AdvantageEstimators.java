package io.rlkernels.backend;

import io.rlkernels.backend.internal.LinearChunks;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.AdvantageEstimator;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.ops.OptimalTokenBaseline;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * verl's advantage estimators ({@link AdvantageEstimator}) on a backend: each is a few of the
 * backend's own ops (group advantages, the broadcast to tokens, GAE, discounted returns, masked
 * whitening, a matrix product for gdpo's weighted sum, the optimal token baseline), so it runs where the backend runs, with
 * their precision and determinism. Temporaries are the backend's, freed before returning.
 */
public final class AdvantageEstimators {
    private AdvantageEstimators() {}

    /**
     * Token advantages [S, T] f32 (0 where the mask drops a token) and, when {@code returns} is not
     * null, verl's returns [S, T] f32.
     */
    public static void compute(Backend b, AdvantageEstimator.Config c, AdvantageEstimator.Inputs in, Tensor advantages,
                               Tensor returns) {
        if (c == null || in == null) {
            throw Check.fail(c == null ? "config" : "inputs", "not null", "null");
        }
        Check.alive("mask", in.mask());
        Check.rank("mask", in.mask(), 2);
        long s = in.mask().dim(0);
        long t = in.mask().dim(1);
        Check.output("advantages", advantages);
        Check.shape("advantages", advantages, s, t);
        if (returns != null) {
            Check.output("returns", returns);
            Check.shape("returns", returns, s, t);
            Check.distinct("advantages", advantages, "returns", returns);
        }
        AdvantageEstimator e = c.estimator();
        List<Tensor> temporaries = new ArrayList<>();
        try {
            if (e.tokenRewards()) {
                if (in.tokenRewards() == null) {
                    throw Check.fail("tokenRewards", "token rewards [S, T] for " + e, "null");
                }
                if (e == AdvantageEstimator.OPTIMAL_TOKEN_BASELINE) { // one op: it needs the returns, W and the group at once
                    Tensor ret = returns != null ? returns : keep(temporaries, b.allocate(DType.F32, s, t));
                    b.optimalTokenBaseline(new OptimalTokenBaseline.Config(c.epsilon(), c.handleZeroTail()),
                            new OptimalTokenBaseline.Inputs(in.tokenRewards(), in.mask(), in.oldLogp(), in.sumPiSquared(), in.isWeights(),
                                    in.groups()), advantages, ret);
                } else if (e == AdvantageEstimator.REMAX) { // GAE with gamma = lambda = 1 and V = the baseline: returns - b
                    if (in.baselineRewards() == null) {
                        throw Check.fail("baselineRewards", "the greedy baseline's rewards [S] for remax", "null");
                    }
                    Check.shape("baselineRewards", in.baselineRewards(), s);
                    Tensor values = keep(temporaries, b.allocate(DType.F32, s, t));
                    b.sequenceToTokens(in.baselineRewards(), in.mask(), values);
                    Tensor ret = returns != null ? returns : keep(temporaries, b.allocate(DType.F32, s, t));
                    b.gae(new Gae.Config(1f, 1f), in.tokenRewards(), values, in.mask(), advantages, ret);
                } else { // reinforce_plus_plus: discounted returns, whitened over the kept tokens
                    Tensor ret = returns != null ? returns : keep(temporaries, b.allocate(DType.F32, s, t));
                    b.discountedReturns(c.gamma(), in.tokenRewards(), in.mask(), ret);
                    b.maskedWhiten(whitening(), ret, in.mask(), advantages);
                }
                return;
            }
            if (in.groups() == null) {
                throw Check.fail("groups", "a GroupLayout for " + e, "null");
            }
            if (in.rewards() == null) {
                throw Check.fail("rewards", "rewards [S]" + (e == AdvantageEstimator.GDPO ? " per reward, [K, S]," : "") + " for " + e,
                        "null");
            }
            Tensor perSequence = keep(temporaries, b.allocate(DType.F32, s));
            GroupAdvantages.Config g = GroupAdvantages.Config.defaults().withEps(c.epsilon());
            switch (e) {
                case GRPO -> b.groupAdvantages(g.withMode(c.normAdvByStdInGrpo() ? GroupAdvantages.Mode.GRPO : GroupAdvantages.Mode.DRGRPO),
                        in.rewards(), in.groups(), perSequence);
                case RLOO -> b.groupAdvantages(g.withMode(GroupAdvantages.Mode.RLOO), in.rewards(), in.groups(), perSequence);
                case GPG -> b.groupAdvantages(g.withMode(GroupAdvantages.Mode.GPG), in.rewards(), in.groups(), perSequence);
                case GRPO_PASSK -> b.groupAdvantages(g.withMode(GroupAdvantages.Mode.PASSK).withScaleByStd(c.normAdvByStdInGrpo()),
                        in.rewards(), in.groups(), perSequence);
                case OPO -> b.groupAdvantages(g.withMode(GroupAdvantages.Mode.OPO), in.rewards(),
                        keep(temporaries, upload(b, lengths(b, in.mask()))), in.groups(), perSequence);
                case REINFORCE_PLUS_PLUS_BASELINE -> { // r - the group mean with a group of one keeping r: opo with unit weights
                    HostTensor ones = HostTensor.allocate(DType.F32, s).fill(1f);
                    b.groupAdvantages(g.withMode(GroupAdvantages.Mode.OPO), in.rewards(), keep(temporaries, upload(b, ones)), in.groups(),
                            perSequence);
                    Tensor tokens = keep(temporaries, b.allocate(DType.F32, s, t));
                    b.sequenceToTokens(perSequence, in.mask(), tokens);
                    b.maskedWhiten(whitening(), tokens, in.mask(), advantages);
                    if (returns != null) { // verl's returns are the advantages: the same op on the same input
                        b.maskedWhiten(whitening(), tokens, in.mask(), returns);
                    }
                    return;
                }
                case GDPO -> gdpo(b, c, in, g, perSequence, temporaries);
                default -> throw new IllegalStateException(e.toString());
            }
            b.sequenceToTokens(perSequence, in.mask(), advantages);
            if (returns != null) {
                b.sequenceToTokens(perSequence, in.mask(), returns);
            }
        } finally {
            temporaries.forEach(Tensor::close);
        }
    }

    /** verl's masked_whiten: unbiased variance, eps 1e-8 inside the square root. */
    private static MaskedWhiten.Config whitening() {
        return MaskedWhiten.Config.defaults();
    }

    /** gdpo: grpo per reward row, their weighted sum (a [1, K] x [K, S] product), normalised over the batch. */
    private static void gdpo(Backend b, AdvantageEstimator.Config c, AdvantageEstimator.Inputs in, GroupAdvantages.Config g,
                             Tensor out, List<Tensor> temporaries) {
        Check.rank("rewards", in.rewards(), 2);
        int k = (int) in.rewards().dim(0);
        long s = in.groups().sequences();
        Check.shape("rewards", in.rewards(), k, s);
        float[] w = c.gdpoWeights();
        if (w == null) {
            w = new float[k];
            java.util.Arrays.fill(w, 1f);
        } else if (w.length != k) {
            throw Check.fail("gdpo_reward_weights", "one weight per reward row (" + k + ")", w.length + " weights");
        }
        Tensor perReward = keep(temporaries, b.allocate(DType.F32, k, s));
        for (int j = 0; j < k; j++) {
            Tensor row = LinearChunks.rows(in.rewards(), j, 1);
            Tensor dst = LinearChunks.rows(perReward, j, 1);
            b.groupAdvantages(g.withMode(GroupAdvantages.Mode.GRPO), flat(row, s), in.groups(), flat(dst, s));
        }
        Tensor weights = keep(temporaries, upload(b, HostTensor.of(w, 1, k)));
        Tensor sum = keep(temporaries, b.allocate(DType.F32, 1, s));
        b.matmul(false, false, 1f, weights, perReward, 0f, sum);
        b.groupAdvantages(g.withMode(GroupAdvantages.Mode.BATCH), flat(sum, s), in.groups(), out);
    }

    /** A [1, S] row as the [S] vector the group op takes. */
    private static Tensor flat(Tensor row, long s) {
        return row instanceof HostTensor h ? HostTensor.wrap(h.segment(), DType.F32, s)
                : io.rlkernels.tensor.DeviceTensor.wrap(((io.rlkernels.tensor.DeviceTensor) row).address(), DType.F32, s);
    }

    /** The response lengths, the mask's row sums (on the host: S sums of T). */
    private static HostTensor lengths(Backend b, Tensor mask) {
        long s = mask.dim(0);
        long t = mask.dim(1);
        HostTensor m = mask instanceof HostTensor h ? h : HostTensor.allocate(mask.dtype(), mask.shape());
        if (m != mask) {
            b.download(mask, m);
        }
        HostTensor out = HostTensor.allocate(DType.F32, s);
        for (long i = 0; i < s; i++) {
            double n = 0;
            for (long j = 0; j < t; j++) {
                n += m.getFloat(i * t + j) != 0 ? 1 : 0;
            }
            out.setFloat(i, (float) n);
        }
        if (m != mask) {
            m.close();
        }
        return out;
    }

    private static Tensor upload(Backend b, HostTensor h) {
        Tensor t = b.upload(h);
        if (t != h) {
            h.close();
        }
        return t;
    }

    private static <T extends Tensor> T keep(List<Tensor> temporaries, T t) {
        temporaries.add(t);
        return t;
    }
}
