package io.rlkernels.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** The ops' table is one: the README shows OpDocs' rows, op --help and op NAME --help print them, and every op has its row. */
class OpDocsTest {
    @Test
    void theReadmeTableIsOpDocs() throws Exception {
        String readme = Files.readString(Path.of("..", "README.md"));
        List<String> rows = readme.lines().filter(l -> l.startsWith("| `") && OpDocs.TABLE.stream()
                .anyMatch(e -> l.startsWith("| `" + e.op() + "` |"))).toList();
        assertEquals(OpDocs.TABLE.stream().map(OpDocs.Entry::markdownRow).toList(), rows, "the README's op table");
        assertEquals(OpCommand.OPS.stream().map(CliOp::name).sorted().toList(),
                OpDocs.TABLE.stream().map(OpDocs.Entry::op).sorted().toList(), "every op documented, no other");
    }

    @Test
    void helpListsTheOpsAndEachOnesFiles() {
        String all = run("op", "--help");
        assertTrue(all.contains("emulated"), all);
        for (OpDocs.Entry e : OpDocs.TABLE) {
            assertTrue(all.contains("  " + e.op() + " "), e.op() + " in op --help:\n" + all);
        }
        String one = run("op", "advantages", "--help");
        assertTrue(one.contains("inputs (--in):") && one.contains("sum_pi_squared.npy") && one.contains("handle_zero_tail"), one);
        assertTrue(!one.contains("`"), "no markdown on a terminal: " + one);
    }

    private static String run(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8)) {
            System.setOut(out);
            assertEquals(0, Main.run(args));
        } finally {
            System.setOut(old);
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }
}
