package io.rlkernels.trainer;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * A training run's progress on stderr, as the place it goes can show it: on a terminal, a bar as
 * wide as the terminal (COLUMNS, else {@code stty size} on /dev/tty, else 80) redrawn in place;
 * elsewhere (a pipe, a log file, CI) a plain line every {@link #linesEvery} steps and at the end,
 * never a carriage-return frame.
 */
abstract class Progress implements AutoCloseable {
    abstract void step(int done, StepMetrics m);

    @Override
    public abstract void close();

    /** The progress of {@code steps} steps of run {@code name}: a bar on a terminal, lines otherwise. */
    static Progress of(String name, int steps, PrintStream err) {
        java.io.Console console = System.console();
        boolean terminal = console != null && console.isTerminal();
        return terminal ? new Bar(name, steps, err, columns(System.getenv())) : new Lines(name, steps, err);
    }

    /** Lines for a log: every steps / 20 steps (at least 1), and the last. */
    static int linesEvery(int steps) {
        return Math.max(1, steps / 20);
    }

    /** The terminal's width: COLUMNS, else stty's, else 80; at least 40. */
    static int columns(Map<String, String> env) {
        return columns(env, Progress::sttyColumns);
    }

    /** The same with the tty's width from {@code tty} (-1: none), so that a test does not depend on where it runs. */
    static int columns(Map<String, String> env, java.util.function.IntSupplier tty) {
        int fromEnv = parse(env.get("COLUMNS"));
        int cols = fromEnv > 0 ? fromEnv : tty.getAsInt();
        return cols > 0 ? Math.max(40, cols) : 80;
    }

    /** {@code stty size} on /dev/tty: its columns, or -1 without a terminal. */
    private static int sttyColumns() {
        try {
            Process p = new ProcessBuilder("sh", "-c", "stty size < /dev/tty").redirectErrorStream(true).start();
            String line;
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                line = r.readLine();
            }
            if (p.waitFor(2, TimeUnit.SECONDS) && p.exitValue() == 0 && line != null) {
                String[] parts = line.trim().split("\\s+");
                return parts.length == 2 ? parse(parts[1]) : -1;
            }
        } catch (java.io.IOException e) {
            // no sh or no tty
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return -1;
    }

    private static int parse(String s) {
        try {
            return s == null ? -1 : Integer.parseInt(s.trim());
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    static String summary(StepMetrics m) {
        return String.format(Locale.ROOT, "reward %.3f loss %+.4f clip %.3f %,.0f tok/s", m.reward(), m.loss(), m.clipFraction(),
                m.tokensPerSecond());
    }

    /** The progressbar library's bar, one column short of the terminal (a full line would wrap on some terminals). */
    static final class Bar extends Progress {
        private final ProgressBar bar;

        Bar(String name, int steps, PrintStream err, int columns) {
            bar = new ProgressBarBuilder().setTaskName(name).setInitialMax(steps).setStyle(ProgressBarStyle.ASCII)
                    .setConsumer(new ConsoleProgressBarConsumer(err, columns - 1)).setUpdateIntervalMillis(200).build();
        }

        @Override
        void step(int done, StepMetrics m) {
            bar.step();
            bar.setExtraMessage(summary(m));
        }

        @Override
        public void close() {
            bar.close();
        }
    }

    /** Plain lines, for anything that is not a terminal. */
    static final class Lines extends Progress {
        private final String name;
        private final int steps;
        private final PrintStream err;
        private final int every;

        Lines(String name, int steps, PrintStream err) {
            this.name = name;
            this.steps = steps;
            this.err = err;
            this.every = linesEvery(steps);
        }

        @Override
        void step(int done, StepMetrics m) {
            if (done % every == 0 || done == steps) {
                err.printf(Locale.ROOT, "%s: step %d/%d, %s%n", name, done, steps, summary(m));
            }
        }

        @Override
        public void close() {
            err.flush();
        }
    }
}
