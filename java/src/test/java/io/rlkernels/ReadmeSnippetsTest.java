package io.rlkernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Every Java snippet of the README is a piece of an example that compiles and runs: the examples
 * of consumer/ (built against the installed artifact with -Xlint:all -Werror and run by
 * bin/consumer-check) hold each snippet between "// README: name" and "// README end" lines, and
 * each README block must equal one snippet exactly (a name's regions joined in file order, each
 * region taken from its marker's indentation). A snippet edited in one place only fails here.
 */
class ReadmeSnippetsTest {
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    private static final Pattern BLOCK = Pattern.compile("```java\n(.*?)\n```", Pattern.DOTALL);
    private static final Pattern BEGIN = Pattern.compile("\\s*// README: (\\S+)\\s*");

    /** The examples' snippets by name. */
    static Map<String, String> snippets(Path dir) throws IOException {
        Map<String, List<String>> lines = new LinkedHashMap<>();
        List<Path> files;
        try (Stream<Path> s = Files.list(dir)) {
            files = s.filter(p -> p.toString().endsWith(".java")).sorted().toList();
        }
        for (Path f : files) {
            String current = null;
            int indent = 0;
            for (String line : Files.readAllLines(f)) {
                Matcher m = BEGIN.matcher(line);
                if (m.matches()) {
                    current = m.group(1);
                    indent = line.length() - line.stripLeading().length();
                    lines.computeIfAbsent(current, k -> new ArrayList<>());
                } else if (line.strip().equals("// README end") && current != null) {
                    current = null;
                } else if (current != null) {
                    boolean blankPrefix = line.length() >= indent && line.substring(0, indent).isBlank();
                    lines.get(current).add(blankPrefix ? line.substring(indent) : line.stripLeading());
                }
            }
            assertEquals(null, current, f + ": a '// README: name' region without its '// README end'");
        }
        Map<String, String> out = new LinkedHashMap<>();
        lines.forEach((k, v) -> out.put(k, String.join("\n", v).stripTrailing()));
        return out;
    }

    @Test
    void everyReadmeSnippetIsAnExampleThatCompilesAndRuns() throws IOException {
        Map<String, String> examples = snippets(ROOT.resolve("consumer/src/main/java/example"));
        assertTrue(examples.size() >= 6, "the examples' snippets: " + examples.keySet());
        Matcher m = BLOCK.matcher(Files.readString(ROOT.resolve("README.md")));
        List<String> unmatched = new ArrayList<>(examples.keySet());
        int block = 0;
        while (m.find()) {
            block++;
            String code = m.group(1).stripTrailing();
            String name = examples.entrySet().stream().filter(e -> e.getValue().equals(code)).map(Map.Entry::getKey).findFirst()
                    .orElse(null);
            assertTrue(name != null, "README java block " + block + " is no example's snippet (edit it in consumer/src/main/java/"
                    + "example and copy it here):\n" + code);
            unmatched.remove(name);
        }
        assertTrue(unmatched.isEmpty(), "example snippets the README does not show: " + unmatched);
    }
}
