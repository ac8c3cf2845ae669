package io.rlkernels.internal;

import java.util.HashMap;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Device copies of a host object (a layout), one per device (its launcher), made on first use
 * and closed with the object: what is reused across steps is uploaded once.
 */
public final class DeviceCopies implements AutoCloseable {
    private final Map<Object, AutoCloseable> copies = new HashMap<>();

    public synchronized <T extends AutoCloseable> T get(Object owner, Supplier<T> upload) {
        @SuppressWarnings("unchecked")
        T copy = (T) copies.computeIfAbsent(owner, o -> upload.get());
        return copy;
    }

    @Override
    public synchronized void close() {
        for (AutoCloseable c : copies.values()) {
            try {
                c.close();
            } catch (Exception e) {
                throw new IllegalStateException("freeing a device copy", e);
            }
        }
        copies.clear();
    }
}
