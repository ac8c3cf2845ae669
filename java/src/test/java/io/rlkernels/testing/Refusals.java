package io.rlkernels.testing;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.function.Executable;

/** Bad input is an IllegalArgumentException whose message names the argument, the expected and the found value. */
public final class Refusals {
    private Refusals() {}

    /** Asserts the call is refused naming {@code argument} first, then "expected", then {@code found}. */
    public static IllegalArgumentException assertRefused(String argument, String found, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        String m = e.getMessage();
        assertTrue(m != null && m.startsWith(argument + ":"), "the message names " + argument + " first: " + m);
        assertTrue(m.contains("expected"), "the message says what was expected: " + m);
        assertTrue(m.contains(found), "the message says what was found (" + found + "): " + m);
        return e;
    }
}
