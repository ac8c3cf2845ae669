package io.rlkernels.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.nativecpu.NativeBackend;
import io.rlkernels.cli.Main;
import io.rlkernels.testing.BackendUnderTest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The thin trainer learns its tasks, reproducibly, and BGPO's memory does not follow n_t. */
class TrainerTest {
    @TempDir
    Path dir;

    @BeforeEach
    void onlyWhereNativeIsTested() {
        Assumptions.assumeTrue(BackendUnderTest.selected("native"), "rlk.test.backends leaves native out");
    }

    private static double[] firstAndLast(List<StepMetrics> steps, int window) {
        double first = 0;
        double last = 0;
        for (int i = 0; i < window; i++) {
            first += steps.get(i).reward() / window;
            last += steps.get(steps.size() - 1 - i).reward() / window;
        }
        return new double[] {first, last};
    }

    @Test
    void grpoRaisesTheRewardClearly() {
        try (Backend b = NativeBackend.open()) {
            GrpoTrainer t = new GrpoTrainer(b, GrpoTrainer.Algorithm.GRPO, DigitSumTask.autoregressive(),
                    GrpoTrainer.Settings.defaults(), 7);
            List<StepMetrics> steps = new ArrayList<>();
            for (int i = 0; i < 60; i++) {
                steps.add(t.step());
            }
            double[] fl = firstAndLast(steps, 10);
            assertTrue(fl[0] < 0.4, "an untrained policy writes digits at random: " + fl[0]);
            assertTrue(fl[1] > fl[0] + 0.3, "GRPO mean reward from " + fl[0] + " to " + fl[1]);
        }
    }

    @Test
    void bgpoRaisesTheRewardClearly() {
        try (Backend b = NativeBackend.open()) {
            BgpoTrainer t = new BgpoTrainer(b, DigitSumTask.diffusion(), BgpoTrainer.Settings.defaults(), 7);
            List<StepMetrics> steps = new ArrayList<>();
            for (int i = 0; i < 70; i++) {
                steps.add(t.step());
            }
            double[] fl = firstAndLast(steps, 10);
            assertTrue(fl[0] < 0.4, "an untrained policy fills digits at random: " + fl[0]);
            assertTrue(fl[1] > fl[0] + 0.3, "BGPO mean reward from " + fl[0] + " to " + fl[1]);
        }
    }

    @Test
    void aSeedAndABackendFixTheRun() {
        for (String algo : new String[] {"grpo", "bgpo"}) {
            List<List<StepMetrics>> runs = new ArrayList<>();
            for (int run = 0; run < 2; run++) {
                try (Backend b = NativeBackend.open()) {
                    List<StepMetrics> steps = new ArrayList<>();
                    if (algo.equals("grpo")) {
                        GrpoTrainer t = new GrpoTrainer(b, GrpoTrainer.Algorithm.GRPO, DigitSumTask.autoregressive(),
                                GrpoTrainer.Settings.defaults(), 3);
                        for (int i = 0; i < 5; i++) {
                            steps.add(t.step());
                        }
                    } else {
                        BgpoTrainer t = new BgpoTrainer(b, DigitSumTask.diffusion(), BgpoTrainer.Settings.defaults(), 3);
                        for (int i = 0; i < 5; i++) {
                            steps.add(t.step());
                        }
                    }
                    runs.add(steps);
                }
            }
            for (int i = 0; i < 5; i++) {
                assertEquals(runs.get(0).get(i).reward(), runs.get(1).get(i).reward(), algo + " step " + i + " reward");
                assertEquals(runs.get(0).get(i).loss(), runs.get(1).get(i).loss(), algo + " step " + i + " loss");
            }
        }
    }

    @Test
    void bgpoWithSixteenSamplesUsesNoMoreAccumulatorMemoryThanWithOne() {
        long[] bytes = new long[2];
        int[] samples = {1, 16};
        for (int k = 0; k < 2; k++) {
            try (Backend b = NativeBackend.open()) {
                BgpoTrainer.Settings s = BgpoTrainer.Settings.defaults();
                BgpoTrainer t = new BgpoTrainer(b, DigitSumTask.diffusion(),
                        new BgpoTrainer.Settings(s.prompts(), s.group(), samples[k], s.epochs(), s.lr(), s.weightDecay(), s.hidden()), 5);
                t.step();
                t.step();
                bytes[k] = t.peakAccumulatorBytes();
            }
        }
        assertTrue(bytes[0] > 0, "the accumulator was used");
        assertTrue(bytes[1] <= bytes[0], "n_t = 16 used " + bytes[1] + " accumulator bytes, n_t = 1 used " + bytes[0]);
    }

    @Test
    void theTrainCommandWritesMetricsAndPlots() throws Exception {
        assertEquals(0, Main.run("train", "--steps", "3", "--no-progress", "--backend", "native", "--out", dir.toString()));
        for (String f : new String[] {"grpo-metrics.jsonl", "grpo.png", "bgpo-metrics.jsonl", "bgpo.png"}) {
            assertTrue(Files.size(dir.resolve(f)) > 0, f);
        }
        List<String> lines = Files.readAllLines(dir.resolve("bgpo-metrics.jsonl"));
        assertEquals(3, lines.size());
        for (String line : lines) {
            java.util.Map<String, Object> m = io.rlkernels.testing.StrictJson.object(line); // strict JSON, one object a line
            assertTrue(m.containsKey("reward") && m.containsKey("clip_fraction") && "bgpo".equals(m.get("algorithm")), line);
        }
    }
}
