package io.rlkernels.tensor;

/**
 * A hold on a tensor's (or a layout's) memory: while any lease is open, {@code close()} of the
 * tensor only marks it closed — new uses are refused — and the memory is freed when the last
 * lease is closed. Every op leases its arguments for the duration of the call, so closing a
 * tensor from another thread while an op uses it is safe and leaks nothing. Closing a lease twice
 * is harmless.
 */
public interface Lease extends AutoCloseable {
    @Override
    void close();
}
