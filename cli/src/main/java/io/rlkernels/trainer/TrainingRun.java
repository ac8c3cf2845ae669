package io.rlkernels.trainer;

import java.io.IOException;
import java.io.PrintStream;
import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;

/**
 * Runs a trainer's steps with a live progress bar (step, reward, loss, clip fraction, tokens/s),
 * writes one JSON line of metrics a step, and at the end a PNG of reward and loss over the steps.
 */
public final class TrainingRun {
    private TrainingRun() {}

    /** What a run leaves: every step's metrics and where the files went. */
    public record Result(List<StepMetrics> steps, Path metrics, Path plot) {
        /** Mean reward over the first and the last {@code window} steps. */
        public double[] firstAndLastReward(int window) {
            int w = Math.min(window, steps.size());
            double first = 0;
            double last = 0;
            for (int i = 0; i < w; i++) {
                first += steps.get(i).reward() / w;
                last += steps.get(steps.size() - 1 - i).reward() / w;
            }
            return new double[] {first, last};
        }
    }

    public static Result run(String name, int steps, Supplier<StepMetrics> step, Path out, boolean progress) throws IOException {
        Files.createDirectories(out);
        Path metrics = out.resolve(name + "-metrics.jsonl");
        List<StepMetrics> all = new ArrayList<>();
        Progress bar = progress ? Progress.of(name, steps, System.err) : null;
        try (Writer w = Files.newBufferedWriter(metrics)) {
            for (int i = 0; i < steps; i++) {
                StepMetrics m = step.get();
                all.add(m);
                w.write(m.json());
                w.write('\n');
                if (bar != null) {
                    bar.step(i + 1, m);
                }
            }
        } finally {
            if (bar != null) {
                bar.close();
            }
        }
        Path plot = out.resolve(name + ".png");
        plot(name, all, plot);
        return new Result(all, metrics, plot);
    }

    /** Reward (left axis, with its 10-step running mean) and loss (right axis) against the step. */
    static void plot(String name, List<StepMetrics> steps, Path file) throws IOException {
        System.setProperty("java.awt.headless", "true");
        double[] x = new double[steps.size()];
        double[] reward = new double[steps.size()];
        double[] smooth = new double[steps.size()];
        double[] loss = new double[steps.size()];
        double window = 0;
        for (int i = 0; i < steps.size(); i++) {
            x[i] = steps.get(i).step();
            reward[i] = steps.get(i).reward();
            loss[i] = steps.get(i).loss();
            window += reward[i] - (i >= 10 ? reward[i - 10] : 0);
            smooth[i] = window / Math.min(i + 1, 10);
        }
        XYChart chart = new XYChartBuilder().width(900).height(500).title(name + ": mean reward and loss per step")
                .xAxisTitle("step").build();
        chart.getStyler().setMarkerSize(0);
        chart.getStyler().setYAxisGroupPosition(1, org.knowm.xchart.style.Styler.YAxisPosition.Right);
        chart.setYAxisGroupTitle(0, "reward");
        chart.setYAxisGroupTitle(1, "loss");
        chart.addSeries("reward", x, reward).setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
        chart.addSeries("reward, 10-step mean", x, smooth);
        XYSeries l = chart.addSeries("loss", x, loss);
        l.setYAxisGroup(1);
        String base = file.toString().replaceFirst("\\.png$", "");
        BitmapEncoder.saveBitmap(chart, base, BitmapEncoder.BitmapFormat.PNG);
    }

    /** One line for the end of a run. */
    public static void summarise(PrintStream out, String name, Result r) {
        int w = Math.min(10, r.steps().size());
        double[] fl = r.firstAndLastReward(w);
        out.printf(Locale.ROOT, "%s: mean reward %.3f over the first %d steps, %.3f over the last %d%n", name, fl[0], w, fl[1], w);
        out.printf("  metrics: %s%n  plot:    %s%n", r.metrics(), r.plot());
    }
}
