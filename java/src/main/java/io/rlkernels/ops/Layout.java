package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.internal.DeviceCopies;
import io.rlkernels.internal.Lifetime;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Lease;
import java.util.function.Supplier;

/**
 * What the layouts share ({@link GroupLayout}, {@link SequenceLayout}): host tensors that describe
 * a batch's structure, built once and reused across steps; their copies on each device, made on
 * first use; and a lifetime — every op leases the layout it uses, so a close from another thread
 * takes effect when the op ends, and a closed layout is refused by name.
 */
public abstract sealed class Layout implements AutoCloseable permits GroupLayout, SequenceLayout {
    private final DeviceCopies deviceCopies = new DeviceCopies();
    private final Lifetime lifetime = new Lifetime(this::free);

    /** The host tensors the layout owns, freed with it. */
    abstract HostTensor[] tensors();

    /**
     * A device backend's copy of this layout, made once per {@code owner} (a launcher) and closed
     * with the layout: a layout reused across steps is uploaded once.
     */
    public <T extends AutoCloseable> T deviceCopy(Object owner, Supplier<T> upload) {
        return deviceCopies.get(owner, upload);
    }

    /** Not closed: ops may use it. */
    public boolean isAlive() {
        return lifetime.isOpen();
    }

    /** Refuses a closed layout, naming {@code arg}. */
    public void requireAlive(String arg) {
        if (!isAlive()) {
            throw Check.fail(arg, "a live " + getClass().getSimpleName(), "a closed " + this);
        }
    }

    /** Holds the layout (and its device copies) until the lease is closed; see {@link Lease}. */
    public Lease lease() {
        Lease l = lifetime.tryLease();
        if (l == null) {
            throw new IllegalStateException(this + " is closed");
        }
        return l;
    }

    /** Frees the layout and its device copies (at once, or when the last op using it ends); idempotent. */
    @Override
    public void close() {
        lifetime.close();
    }

    private void free() {
        for (HostTensor t : tensors()) {
            t.close();
        }
        deviceCopies.close();
    }
}
