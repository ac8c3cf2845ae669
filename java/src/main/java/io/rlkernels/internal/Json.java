package io.rlkernels.internal;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A flat JSON object of metrics, written strictly (RFC 8259): a number that is not finite (NaN,
 * an infinity) has no JSON form, so it is written as {@code null}, and the object then ends with
 * {@code "non_finite_count"} and {@code "non_finite_keys"} naming those fields. Strings are escaped.
 */
public final class Json {
    private final Map<String, String> fields = new LinkedHashMap<>();
    private final List<String> nonFinite = new ArrayList<>();

    public Json put(String key, double value) {
        if (!Double.isFinite(value)) {
            nonFinite.add(key);
            fields.put(key, "null");
        } else if (value == Math.rint(value) && Math.abs(value) < 1e15) {
            fields.put(key, Long.toString((long) value));
        } else {
            fields.put(key, Double.toString(value));
        }
        return this;
    }

    public Json put(String key, long value) {
        fields.put(key, Long.toString(value));
        return this;
    }

    public Json put(String key, String value) {
        fields.put(key, quote(value));
        return this;
    }

    /** One line: {"a": 1, "b": null, ...}. */
    public String line() {
        return render(", ", "");
    }

    /** One field a line, as metrics.json files are written. */
    public String pretty() {
        return render(",\n  ", "\n") + "\n";
    }

    private String render(String separator, String edge) {
        Map<String, String> all = new LinkedHashMap<>(fields);
        if (!nonFinite.isEmpty()) {
            all.put("non_finite_count", Integer.toString(nonFinite.size()));
            all.put("non_finite_keys", "[" + String.join(", ", nonFinite.stream().map(Json::quote).toList()) + "]");
        }
        StringBuilder b = new StringBuilder("{").append(edge.isEmpty() ? "" : edge + "  ");
        int k = 0;
        for (Map.Entry<String, String> e : all.entrySet()) {
            b.append(k++ > 0 ? separator : "").append(quote(e.getKey())).append(": ").append(e.getValue());
        }
        return b.append(edge).append("}").toString();
    }

    /** A JSON string literal of {@code s}: quotes, backslashes and control characters escaped. */
    public static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
