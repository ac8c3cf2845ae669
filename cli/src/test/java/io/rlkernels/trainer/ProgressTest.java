package io.rlkernels.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The training progress: plain lines when stderr is not a terminal, a bar that fits an 80-column terminal when it is. */
class ProgressTest {
    private static StepMetrics metrics(int step) {
        return new StepMetrics("grpo", step, 0.25, -0.0123, 0.05, 0.001, 12345, 0);
    }

    @Test
    void notATerminalGetsLinesEveryTwentiethOfTheRunAndNoCarriageReturns() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (PrintStream err = new PrintStream(bytes, true, StandardCharsets.UTF_8);
             Progress p = new Progress.Lines("grpo", 45, err)) {
            for (int i = 1; i <= 45; i++) {
                p.step(i, metrics(i));
            }
        }
        String out = bytes.toString(StandardCharsets.UTF_8);
        assertFalse(out.contains("\r"), "no carriage-return frames in a log");
        String[] lines = out.split("\n");
        assertEquals(23, lines.length, "steps 2, 4, ..., 44 and the last: " + out);
        assertEquals("grpo: step 2/45, reward 0.250 loss -0.0123 clip 0.050 12,345 tok/s", lines[0]);
        assertTrue(lines[22].startsWith("grpo: step 45/45"), lines[22]);
        // under surefire stderr is no terminal: of() chooses lines
        assertTrue(Progress.of("x", 3, new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8)) instanceof Progress.Lines);
    }

    @Test
    void theBarFitsTheTerminal() {
        assertEquals(80, Progress.columns(Map.of("COLUMNS", "80"), () -> 200), "COLUMNS first");
        assertEquals(132, Progress.columns(Map.of("COLUMNS", " 132 "), () -> -1));
        assertEquals(40, Progress.columns(Map.of("COLUMNS", "12"), () -> -1), "at least 40");
        assertEquals(100, Progress.columns(Map.of("COLUMNS", "wide"), () -> 100), "else the tty's");
        assertEquals(80, Progress.columns(Map.of(), () -> -1), "else 80");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (PrintStream err = new PrintStream(bytes, true, StandardCharsets.UTF_8);
             Progress p = new Progress.Bar("grpo", 200, err, 80)) {
            for (int i = 1; i <= 200; i++) {
                p.step(i, metrics(i));
            }
        }
        String out = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(out.contains("\r"), "a bar redraws in place");
        for (String frame : out.split("[\r\n]")) {
            assertTrue(frame.length() <= 79, "a frame within 79 columns: " + frame.length() + " '" + frame + "'");
        }
    }
}
