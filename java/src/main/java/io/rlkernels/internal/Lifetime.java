package io.rlkernels.internal;

import io.rlkernels.tensor.Lease;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The lifetime of something that owns memory (a tensor, a layout, a backend): leases taken by
 * the ops that use it, and a close that frees it at once when nothing holds a lease, else when the
 * last lease is released. Exactly one caller runs {@code free}, exactly once; after close no new
 * lease is granted.
 */
public final class Lifetime {
    private static final long CLOSING = 1L << 62; // close was requested; the low bits count leases

    private final AtomicLong state = new AtomicLong();
    private final Runnable free;
    private volatile boolean freed;

    public Lifetime(Runnable free) {
        this.free = free;
    }

    /** A lease, or null when close was already requested. */
    public Lease tryLease() {
        while (true) {
            long s = state.get();
            if ((s & CLOSING) != 0) {
                return null;
            }
            if (state.compareAndSet(s, s + 1)) {
                return new Held();
            }
        }
    }

    /** Whether close has not been requested: new uses are allowed. */
    public boolean isOpen() {
        return (state.get() & CLOSING) == 0;
    }

    /** Whether the memory was freed (close requested and every lease released). */
    public boolean isFreed() {
        return freed;
    }

    /** Requests close; frees now when no lease is held, else when the last one is released. Idempotent. */
    public void close() {
        while (true) {
            long s = state.get();
            if ((s & CLOSING) != 0) {
                return;
            }
            if (state.compareAndSet(s, s | CLOSING)) {
                if (s == 0) {
                    runFree();
                }
                return;
            }
        }
    }

    private void release() {
        if (state.decrementAndGet() == CLOSING) {
            runFree(); // the last lease of a closed object
        }
    }

    private void runFree() {
        freed = true;
        free.run();
    }

    private final class Held implements Lease {
        private final AtomicBoolean open = new AtomicBoolean(true);

        @Override
        public void close() {
            if (open.compareAndSet(true, false)) {
                release();
            }
        }
    }
}
