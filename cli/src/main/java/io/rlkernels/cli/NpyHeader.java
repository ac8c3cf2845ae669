package io.rlkernels.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A parser of the header of a .npy file: the Python dict literal numpy writes, such as
 * {@code {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }}, followed by spaces and a
 * newline. It reads exactly the literals numpy's reader accepts for a plain array (strings,
 * True/False, tuples of non-negative integers) and refuses everything else: a duplicate key (which
 * Python would silently resolve to the last value), an unknown key, a missing key, trailing text.
 * Errors are {@link IllegalArgumentException}s; the reader adds the file's name.
 */
final class NpyHeader {
    /** The three keys of a .npy header, each exactly once. */
    record Fields(String descr, boolean fortranOrder, long[] shape) {}

    private final String text;
    private int at;

    private NpyHeader(String text) {
        this.text = text;
    }

    static Fields parse(String text) {
        return new NpyHeader(text).dict();
    }

    private Fields dict() {
        Map<String, Object> entries = new LinkedHashMap<>();
        space();
        expect('{');
        space();
        while (peek() != '}') {
            int keyAt = at;
            String key = string();
            if (entries.containsKey(key)) {
                throw fail("the key '" + key + "' once", "it again at character " + keyAt);
            }
            space();
            expect(':');
            space();
            entries.put(key, value());
            space();
            if (peek() == ',') {
                at++;
                space();
            } else if (peek() != '}') {
                throw fail("',' or '}'", describe(at));
            }
        }
        at++;
        space();
        if (at != text.length()) {
            throw fail("only spaces and a newline after the dict", describe(at));
        }
        for (String key : entries.keySet()) {
            if (!key.equals("descr") && !key.equals("fortran_order") && !key.equals("shape")) {
                throw fail("only the keys 'descr', 'fortran_order' and 'shape'", "the key '" + key + "'");
            }
        }
        Object descr = required(entries, "descr");
        Object fortran = required(entries, "fortran_order");
        Object shape = required(entries, "shape");
        if (!(descr instanceof String d)) {
            throw fail("'descr' a dtype string such as '<f4' (a plain array, not a structured one)", literal(descr));
        }
        if (!(fortran instanceof Boolean f)) {
            throw fail("'fortran_order' True or False", literal(fortran));
        }
        if (!(shape instanceof long[] s)) {
            throw fail("'shape' a tuple of integers", literal(shape));
        }
        return new Fields(d, f, s);
    }

    private static Object required(Map<String, Object> entries, String key) {
        if (!entries.containsKey(key)) {
            throw new IllegalArgumentException("header: expected the key '" + key + "', found the keys " + entries.keySet());
        }
        return entries.get(key);
    }

    private Object value() {
        char c = peek();
        if (c == '\'' || c == '"') {
            return string();
        }
        if (c == '(') {
            return tuple();
        }
        if (text.startsWith("True", at)) {
            at += 4;
            return Boolean.TRUE;
        }
        if (text.startsWith("False", at)) {
            at += 5;
            return Boolean.FALSE;
        }
        if (c == '[') {
            throw fail("a plain dtype string", "a list (a structured dtype) at character " + at);
        }
        if (c >= '0' && c <= '9') {
            int start = at;
            while (at < text.length() && text.charAt(at) >= '0' && text.charAt(at) <= '9') {
                at++;
            }
            return text.substring(start, at); // an integer: no key of a .npy header holds one, so it is refused by name
        }
        throw fail("a string, True, False or a tuple", describe(at));
    }

    /** A Python string literal without escapes (numpy's dtype strings have none). */
    private String string() {
        char quote = peek();
        if (quote != '\'' && quote != '"') {
            throw fail("a quoted key", describe(at));
        }
        int end = text.indexOf(quote, at + 1);
        if (end < 0) {
            throw fail("a closing " + quote, "the end of the header");
        }
        String s = text.substring(at + 1, end);
        if (s.indexOf('\\') >= 0) {
            throw fail("a string without escapes", s);
        }
        at = end + 1;
        return s;
    }

    /** (), (n,), (n, m), ... of non-negative integers that fit in a long. */
    private long[] tuple() {
        expect('(');
        List<Long> dims = new ArrayList<>();
        space();
        boolean comma = false;
        while (peek() != ')') {
            int start = at;
            while (at < text.length() && ",) \t\n\r".indexOf(text.charAt(at)) < 0) {
                at++;
            }
            String word = text.substring(start, at);
            if (word.isEmpty() || !word.chars().allMatch(ch -> ch >= '0' && ch <= '9')) {
                throw fail("a non-negative integer dimension", "'" + word + "' at character " + start);
            }
            try {
                dims.add(Long.parseLong(word));
            } catch (NumberFormatException e) {
                throw fail("a dimension below 2^63", word);
            }
            space();
            comma = peek() == ',';
            if (comma) {
                at++;
                space();
            } else if (peek() != ')') {
                throw fail("',' or ')' in the shape", describe(at));
            }
        }
        at++;
        if (dims.size() == 1 && !comma) {
            throw fail("a tuple for 'shape'", "(" + dims.get(0) + "), a parenthesised number");
        }
        return dims.stream().mapToLong(Long::longValue).toArray();
    }

    private void space() {
        while (at < text.length() && (text.charAt(at) == ' ' || text.charAt(at) == '\n' || text.charAt(at) == '\t'
                || text.charAt(at) == '\r')) {
            at++;
        }
    }

    private char peek() {
        if (at >= text.length()) {
            throw fail("more of the header", "its end at character " + at);
        }
        return text.charAt(at);
    }

    private void expect(char c) {
        if (peek() != c) {
            throw fail("'" + c + "'", describe(at));
        }
        at++;
    }

    private String describe(int i) {
        int end = Math.min(text.length(), i + 20);
        return "'" + text.substring(i, end).replace("\n", "\\n") + "' at character " + i;
    }

    private static String literal(Object v) {
        return v instanceof long[] s ? java.util.Arrays.toString(s) : String.valueOf(v);
    }

    private static IllegalArgumentException fail(String expected, String found) {
        return new IllegalArgumentException("header: expected " + expected + ", found " + found);
    }
}
