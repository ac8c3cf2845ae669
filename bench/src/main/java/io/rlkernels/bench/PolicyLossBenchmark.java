package io.rlkernels.bench;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The policy loss over N = 2^20 tokens in sequences of 1,024: PPO with token ratio and
 * token-mean; GSPO (sequence ratio, seq-mean-token-mean) with a k3 KL term; and with the rollout
 * correction: PPO with token-level TIS (2.0) and rejection by token_k1 (0.5_2.0) and seq_mean_k3
 * (0.1), and verl's GSPO with sequence-level TIS, normalised by this batch's mean (the pre-pass); verl's
 * clip_cov (covariance ratio 0.0002, the candidates' choice by key), its batch statistics found
 * on the host each call.
 * Bytes per op ({@link #bytesMoved}): logp, old logp, advantages, an f32 mask (and the reference
 * logp for KL, the rollout logp for the correction) read, the gradient written.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class PolicyLossBenchmark {
    static final int TOKENS = 1 << 20;
    static final int SEQUENCE = 1024;

    @Param({"native", "reference"})
    public String backend;

    private Backend b;
    private SequenceLayout layout;
    private PolicyLoss.Inputs inputs;
    private Tensor grad;
    private Tensor stats;
    private final PolicyLoss.Config ppo = PolicyLoss.Config.defaults().withDenominator(TOKENS);
    private final PolicyLoss.Config gspo = PolicyLoss.Config.defaults().withRatio(PolicyLoss.RatioLevel.SEQUENCE)
            .withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_MEAN).withClip(3e-4f, 4e-4f)
            .withKl(PolicyLoss.KlEstimator.K3, 0.01f).withDenominator(TOKENS / SEQUENCE);
    private final PolicyLoss.Config ppoCorrected = ppo.withRollout(PolicyLoss.RolloutCorrection.truncated(PolicyLoss.WeightLevel.TOKEN, 2.0)
            .withRejection(PolicyLoss.Rejection.parse("token_k1,seq_mean_k3", "0.5_2.0,0.1")));
    private final PolicyLoss.Config gspoSequenceIs = io.rlkernels.ops.PolicyLossKeys.config(java.util.Map.of("loss_mode", "gspo",
            "clip_ratio_low", "3e-4", "clip_ratio_high", "4e-4", "rollout_is", "sequence", "rollout_is_batch_normalize", "true",
            "denom", String.valueOf(TOKENS / SEQUENCE)));
    private final PolicyLoss.Config clipCov = io.rlkernels.ops.PolicyLossKeys.config(java.util.Map.of("loss_mode", "clip_cov",
            "denom", String.valueOf(TOKENS)));
    private PolicyLoss.Inputs corrected;

    @Setup(Level.Trial)
    public void setUp() {
        b = Backends.open(backend);
        int[] lengths = new int[TOKENS / SEQUENCE];
        Arrays.fill(lengths, SEQUENCE);
        layout = SequenceLayout.ofLengths(lengths);
        try (HostTensor logp = Fill.normal(DType.F32, 1.0, TOKENS); HostTensor old = Fill.normal(DType.F32, 1.0, TOKENS);
             HostTensor adv = Fill.normal(DType.F32, 1.0, TOKENS); HostTensor ref = Fill.normal(DType.F32, 1.0, TOKENS);
             HostTensor mask = HostTensor.allocate(DType.F32, TOKENS); HostTensor rollout = Fill.normal(DType.F32, 1.0, TOKENS)) {
            for (int i = 0; i < TOKENS; i++) {
                logp.setFloat(i, -Math.abs(logp.getFloat(i)));
                old.setFloat(i, logp.getFloat(i) + 0.1f * old.getFloat(i));
                ref.setFloat(i, logp.getFloat(i) + 0.1f * ref.getFloat(i));
                rollout.setFloat(i, old.getFloat(i) + 0.02f * rollout.getFloat(i)); // a sequence of 1,024 keeps its seq-mean-k3
                mask.setFloat(i, i % SEQUENCE < SEQUENCE - i / SEQUENCE % 200 ? 1f : 0f);
            }
            inputs = new PolicyLoss.Inputs(b.upload(logp), b.upload(old), b.upload(adv), b.upload(mask), layout, b.upload(ref), null);
            corrected = inputs.withRefLogp(null).withRolloutLogp(b.upload(rollout));
        }
        grad = b.allocate(DType.F32, TOKENS);
        stats = b.allocate(DType.F64, PolicyLoss.STATS_LENGTH);
    }

    @Benchmark
    public Tensor ppoTokenMean() {
        b.policyLoss(ppo, inputs, grad, null, stats);
        return stats;
    }

    @Benchmark
    public Tensor gspoWithKl() {
        b.policyLoss(gspo, inputs, grad, null, stats);
        return stats;
    }

    @Benchmark
    public Tensor ppoRolloutCorrected() {
        b.policyLoss(ppoCorrected, corrected, grad, null, stats);
        return stats;
    }

    @Benchmark
    public Tensor clipCov() {
        b.policyLoss(clipCov, inputs, grad, null, stats);
        return stats;
    }

    @Benchmark
    public Tensor gspoSequenceIs() {
        b.policyLoss(gspoSequenceIs, corrected, grad, null, stats);
        return stats;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (Tensor t : new Tensor[] {inputs.logp(), inputs.oldLogp(), inputs.advantages(), inputs.mask(), inputs.refLogp(),
            corrected.rolloutLogp(), grad, stats}) {
            t.close();
        }
        layout.close();
        b.close();
    }

    static double bytesMoved(String op) {
        return op.equals("ppoTokenMean") || op.equals("clipCov") ? TOKENS * (4 * 4.0 + 4) : TOKENS * (5 * 4.0 + 4); // ref or rollout
    }
}
