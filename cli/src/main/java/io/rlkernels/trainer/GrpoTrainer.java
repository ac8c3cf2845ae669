package io.rlkernels.trainer;

import io.rlkernels.backend.Backend;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The autoregressive GRPO family (grpo, drgrpo, ppo) on {@link DigitSumTask#autoregressive()}:
 * sample a group of completions per prompt, score them with the program, and take a few clipped
 * policy-gradient steps. Everything RL is the library's: the sampled tokens' log-probs and their
 * backward, group advantages, the clipped loss and its gradient; the model and AdamW are here.
 */
public final class GrpoTrainer {

    /** The variant: its advantages and its aggregation (ARCHITECTURE §5.2, §5.3). */
    public enum Algorithm {
        /** (r - mean) / std in the group; seq-mean-token-mean over the batch's sequences. */
        GRPO,
        /** Dr. GRPO: r - mean; the token sum over a constant (sequences x length). */
        DRGRPO,
        /** PPO without a critic: batch-whitened rewards, token-mean, dual clip. */
        PPO
    }

    /** Batch shape and optimisation. */
    public record Settings(int prompts, int group, int epochs, double lr, double weightDecay, int hidden) {
        public static Settings defaults() {
            return new Settings(32, 8, 2, 3e-3, 0.01, 64);
        }
    }

    private final Backend backend;
    private final Algorithm algorithm;
    private final DigitSumTask task;
    private final Settings settings;
    private final TinyPolicy policy;
    private final SplittableRandom rng;
    private final LogProbs.Config logProbs = LogProbs.Config.defaults();
    private int step;

    public GrpoTrainer(Backend backend, Algorithm algorithm, DigitSumTask task, Settings settings, long seed) {
        this.backend = backend;
        this.algorithm = algorithm;
        this.task = task;
        this.settings = settings;
        this.policy = new TinyPolicy(task.length(), task.targets(), settings.hidden(), seed);
        this.rng = new SplittableRandom(seed ^ 0x5DEECE66DL);
    }

    public TinyPolicy policy() {
        return policy;
    }

    /** One step: a batch of groups sampled, scored and learned from. */
    public StepMetrics step() {
        long start = System.nanoTime();
        int s = settings.prompts() * settings.group();
        int l = task.length();
        int n = s * l;
        DigitSumTask.Prompts prompts = task.drawPrompts(rng, settings.prompts(), settings.group());
        int[] target = prompts.target();
        long[] groupIds = prompts.groupIds();
        // 1. generate left to right, keeping each token's log-prob under the sampling policy
        int[][] tokens = new int[s][l];
        for (int[] row : tokens) {
            Arrays.fill(row, TinyPolicy.MASK);
        }
        float[] oldLogp = new float[n];
        int[] sampled = new int[n];
        float[] logits = new float[s * TinyPolicy.DIGITS];
        for (int k = 0; k < l; k++) {
            int[] position = new int[s];
            Arrays.fill(position, k);
            policy.forward(new TinyPolicy.Queries(target, Sampling.copy(tokens), position), logits);
            int[] digits = new int[s];
            for (int i = 0; i < s; i++) {
                digits[i] = Sampling.sample(logits, i, rng);
                tokens[i][k] = digits[i];
            }
            float[] logp = new float[s];
            try (HostTensor z = HostTensor.of(logits, s, TinyPolicy.DIGITS); HostTensor y = HostTensor.of(digits);
                 HostTensor lp = HostTensor.of(logp); HostTensor lse = HostTensor.allocate(DType.F32, s)) {
                backend.logProbs(logProbs, z, y, lp, lse, null);
            }
            for (int i = 0; i < s; i++) {
                oldLogp[i * l + k] = logp[i];
                sampled[i * l + k] = digits[i];
            }
        }
        // 2. rewards from the program, advantages from the library
        float[] rewards = task.rewards(target, tokens);
        double rewardSum = 0;
        for (float x : rewards) {
            rewardSum += x;
        }
        float[] seqAdv = new float[s];
        float[] tokenAdv = new float[n];
        float[] ones = new float[n];
        Arrays.fill(ones, 1f);
        GroupAdvantages.Mode mode = switch (algorithm) {
            case GRPO -> GroupAdvantages.Mode.GRPO;
            case DRGRPO -> GroupAdvantages.Mode.DRGRPO;
            case PPO -> GroupAdvantages.Mode.BATCH;
        };
        try (HostTensor r = HostTensor.of(rewards); HostTensor ids = HostTensor.of(groupIds); HostTensor a = HostTensor.of(seqAdv);
             HostTensor m = HostTensor.of(ones, s, l); HostTensor ta = HostTensor.of(tokenAdv, s, l)) {
            backend.groupAdvantages(GroupAdvantages.Config.defaults().withMode(mode), r, ids, a);
            backend.sequenceToTokens(a, m, ta);
        }
        // 3. clipped policy-gradient steps over every generated token
        PolicyLoss.Config loss = switch (algorithm) {
            case GRPO -> PolicyLoss.Config.defaults().withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_MEAN).withDenominator(s);
            case DRGRPO -> PolicyLoss.Config.defaults().withAggregation(PolicyLoss.Aggregation.SEQ_MEAN_TOKEN_SUM_NORM)
                    .withDenominator((double) s * l);
            case PPO -> PolicyLoss.Config.defaults().withDualClip(3f).withDenominator(n);
        };
        int[] qTarget = new int[n];
        int[][] qTokens = new int[n][];
        int[] qPosition = new int[n];
        for (int i = 0; i < s; i++) {
            for (int k = 0; k < l; k++) {
                int row = i * l + k;
                qTarget[row] = target[i];
                qTokens[row] = tokens[i].clone();
                for (int later = k; later < l; later++) {
                    qTokens[row][later] = TinyPolicy.MASK; // what the policy saw when it wrote token k
                }
                qPosition[row] = k;
            }
        }
        TinyPolicy.Queries queries = new TinyPolicy.Queries(qTarget, qTokens, qPosition);
        int[] lengths = new int[s];
        Arrays.fill(lengths, l);
        float[] rowLogits = new float[n * TinyPolicy.DIGITS];
        PolicyLoss.Stats stats = null;
        try (SequenceLayout seqs = SequenceLayout.ofLengths(lengths); HostTensor y = HostTensor.of(sampled);
             HostTensor old = HostTensor.of(oldLogp); HostTensor adv = HostTensor.of(tokenAdv); HostTensor mask = HostTensor.of(ones);
             HostTensor logp = HostTensor.allocate(DType.F32, n); HostTensor lseParts = HostTensor.allocate(DType.F32, n, 2);
             HostTensor gradLogp = HostTensor.allocate(DType.F32, n)) {
            for (int epoch = 0; epoch < settings.epochs(); epoch++) {
                TinyPolicy.Cache cache = policy.forward(queries, rowLogits);
                try (HostTensor z = HostTensor.of(rowLogits, n, TinyPolicy.DIGITS)) {
                    backend.logProbs(logProbs, z, y, logp, null, null, lseParts);
                    stats = backend.policyLoss(loss, new PolicyLoss.Inputs(logp, old, adv, mask).withSequences(seqs), gradLogp, null);
                    backend.logProbsBackward(logProbs, z, y, lseParts, null, gradLogp, null, z); // dL/dlogits, in place
                }
                policy.backward(cache, rowLogits);
                policy.adamw(settings.lr(), settings.weightDecay());
            }
        }
        step++;
        double seconds = (System.nanoTime() - start) / 1e9;
        return new StepMetrics(algorithm.name().toLowerCase(java.util.Locale.ROOT), step, rewardSum / s, stats.loss(),
                stats.clipFractionHigh() + stats.clipFractionLow() + stats.clipFractionDual(), stats.approxKl(),
                n * (1 + settings.epochs()) / seconds, 0);
    }
}
