package io.rlkernels.cli;

import io.rlkernels.internal.Check;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/** The {@code --param key=value} pairs of an op, checked against the keys it knows. */
final class Params {
    private final Map<String, String> values;

    Params(Map<String, String> values, Set<String> known) {
        this.values = new TreeMap<>(values == null ? Map.of() : values);
        for (String k : this.values.keySet()) {
            if (!known.contains(k)) {
                throw Check.fail("--param", "a key among " + new TreeSet<>(known), k);
            }
        }
    }

    String string(String key, String fallback) {
        return values.getOrDefault(key, fallback);
    }

    float floatValue(String key, float fallback) {
        String v = values.get(key);
        if (v == null) {
            return fallback;
        }
        try {
            return Float.parseFloat(v);
        } catch (NumberFormatException e) {
            throw Check.fail("--param " + key, "a number", v);
        }
    }

    long longValue(String key, long fallback) {
        String v = values.get(key);
        if (v == null) {
            return fallback;
        }
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw Check.fail("--param " + key, "an integer", v);
        }
    }
}
