package io.rlkernels.cli;

import io.rlkernels.internal.Check;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The {@code --param key=value} pairs of an op: each key known to the op and given once, each
 * number finite and within float32's range (the parser would otherwise turn 1e40 into infinity).
 */
final class Params {
    private final Map<String, String> values = new TreeMap<>();

    Params(List<String> pairs, Set<String> known) {
        for (String pair : pairs == null ? List.<String>of() : pairs) {
            int eq = pair.indexOf('=');
            if (eq <= 0) {
                throw Check.fail("--param", "KEY=VALUE", "'" + pair + "'");
            }
            String key = pair.substring(0, eq).trim();
            String value = pair.substring(eq + 1).trim();
            if (!known.contains(key)) {
                throw Check.fail("--param", "a key among " + new TreeSet<>(known), key);
            }
            String before = values.putIfAbsent(key, value);
            if (before != null) {
                throw Check.fail("--param " + key, "the key once", "it twice (" + before + " and " + value + ")");
            }
        }
    }

    /** Every pair given, by key. */
    Map<String, String> all() {
        return java.util.Collections.unmodifiableMap(values);
    }

    String string(String key, String fallback) {
        return values.getOrDefault(key, fallback);
    }

    float floatValue(String key, float fallback) {
        String v = values.get(key);
        if (v == null) {
            return fallback;
        }
        double d;
        try {
            d = Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw Check.fail("--param " + key, "a number", v);
        }
        if (!v.matches("[-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d+)?") || !Float.isFinite((float) d)) {
            throw Check.fail("--param " + key, "a finite decimal number within float32's range", v);
        }
        return (float) d;
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

    /** true or false. */
    boolean flag(String key, boolean fallback) {
        String v = values.get(key);
        if (v == null) {
            return fallback;
        }
        if (!v.equals("true") && !v.equals("false")) {
            throw Check.fail("--param " + key, "true or false", v);
        }
        return v.equals("true");
    }
}
