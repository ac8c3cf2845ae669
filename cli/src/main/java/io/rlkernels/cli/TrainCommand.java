package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.internal.Check;
import io.rlkernels.trainer.BgpoTrainer;
import io.rlkernels.trainer.DigitSumTask;
import io.rlkernels.trainer.GrpoTrainer;
import io.rlkernels.trainer.TrainingRun;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code rlkernels train}: the thin trainer, GRPO and BGPO end to end on small verifiable tasks. */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = {"Trains a small policy with the library's kernels and plots reward and loss.",
                "By default: GRPO on an autoregressive task (three digits summing to a target), then BGPO on a",
                "masked-diffusion task (four digits filled in any order). A run is reproducible for a seed and backend."})
final class TrainCommand implements Callable<Integer> {
    @Option(names = "--algo", defaultValue = "grpo,bgpo", split = ",",
            description = "grpo, drgrpo, ppo (autoregressive task) or bgpo (diffusion task), comma-separated (default: ${DEFAULT-VALUE})")
    String[] algorithms;

    @Option(names = "--steps", defaultValue = "150", description = "training steps of each algorithm (default: ${DEFAULT-VALUE})")
    int steps;

    @Option(names = "--prompts", defaultValue = "32", description = "prompts per step (default: ${DEFAULT-VALUE})")
    int prompts;

    @Option(names = "--group", defaultValue = "8", description = "samples per prompt, the group size (default: ${DEFAULT-VALUE})")
    int group;

    @Option(names = "--samples", defaultValue = "4", description = "BGPO's Monte Carlo samples n_t (default: ${DEFAULT-VALUE})")
    int samples;

    @Option(names = "--epochs", defaultValue = "2", description = "updates per batch (default: ${DEFAULT-VALUE})")
    int epochs;

    @Option(names = "--lr", defaultValue = "3e-3", description = "AdamW learning rate (default: ${DEFAULT-VALUE})")
    double lr;

    @Option(names = "--seed", defaultValue = "1", description = "random seed (default: ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--backend", defaultValue = "auto", description = "auto, native, reference, cuda or emulated (default: ${DEFAULT-VALUE})")
    String backend;

    @Option(names = "--out", defaultValue = "target/train", description = "where metrics and plots go (default: ${DEFAULT-VALUE})")
    Path out;

    @Option(names = "--no-progress", description = "no progress bar (logs, tests)")
    boolean noProgress;

    @Override
    public Integer call() throws Exception {
        if (steps < 1 || prompts < 1 || group < 2 || samples < 1 || epochs < 1 || !(lr > 0)) {
            throw Check.fail("--steps, --prompts, --group, --samples, --epochs, --lr",
                    "steps, prompts, samples, epochs >= 1, group >= 2 and lr > 0",
                    steps + ", " + prompts + ", " + group + ", " + samples + ", " + epochs + ", " + lr);
        }
        try (Backend b = Backends.open(backend)) {
            System.err.println("training on " + b.description());
            for (String algo : algorithms) {
                String name = algo.trim().toLowerCase(Locale.ROOT);
                TrainingRun.Result r;
                if (name.equals("bgpo")) {
                    BgpoTrainer t = new BgpoTrainer(b, DigitSumTask.diffusion(),
                            new BgpoTrainer.Settings(prompts, group, samples, epochs, lr, 0.01, 64), seed);
                    r = TrainingRun.run("bgpo", steps, t::step, out, !noProgress);
                } else {
                    GrpoTrainer.Algorithm a = switch (name) {
                        case "grpo" -> GrpoTrainer.Algorithm.GRPO;
                        case "drgrpo" -> GrpoTrainer.Algorithm.DRGRPO;
                        case "ppo" -> GrpoTrainer.Algorithm.PPO;
                        default -> throw Check.fail("--algo", "grpo, drgrpo, ppo or bgpo", algo);
                    };
                    GrpoTrainer t = new GrpoTrainer(b, a, DigitSumTask.autoregressive(),
                            new GrpoTrainer.Settings(prompts, group, epochs, lr, 0.01, 64), seed);
                    r = TrainingRun.run(name, steps, t::step, out, !noProgress);
                }
                TrainingRun.summarise(System.out, name, r);
            }
        }
        return 0;
    }
}
