package io.rlkernels.internal;

/** Helpers for FFM downcalls. */
public final class Downcalls {
    private Downcalls() {}

    /** What a MethodHandle.invokeExact threw, as an unchecked exception (errors stay errors). */
    public static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }
}
