package io.rlkernels.backend.cuda;

import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * The device side of one op call: device tensors pass through; host tensors get a temporary
 * device copy (inputs copied in, outputs copied back by {@link #finish()}). Closing frees every
 * temporary, also when the call failed.
 */
final class Staging implements AutoCloseable {
    private record CopyBack(HostTensor host, long device) {}

    private final KernelLauncher launcher;
    private final CudaBackend backend;
    private final List<Long> temporaries = new ArrayList<>();
    private final List<CopyBack> copyBacks = new ArrayList<>();

    Staging(KernelLauncher launcher, CudaBackend backend) {
        this.launcher = launcher;
        this.backend = backend;
    }

    /** The device address of an input. */
    long in(String arg, Tensor t) {
        if (t instanceof HostTensor h) {
            long d = temporary(h);
            launcher.copyToDevice(d, h.segment(), h.byteSize());
            return d;
        }
        return backend.device(arg, t).address();
    }

    /** The device address of an output. */
    long out(String arg, Tensor t) {
        if (t instanceof HostTensor h) {
            long d = temporary(h);
            copyBacks.add(new CopyBack(h, d));
            return d;
        }
        return backend.device(arg, t).address();
    }

    /** An input that is also written (in-place backward). */
    long inOut(String arg, Tensor t) {
        long d = in(arg, t);
        if (t instanceof HostTensor h) {
            copyBacks.add(new CopyBack(h, d));
        }
        return d;
    }

    private long temporary(HostTensor h) {
        return scratch(h.byteSize());
    }

    /** A copy of {@code values} on the device, for this call only (a kernel's parameter array). */
    long values(double[] values) {
        long d = scratch(8L * values.length);
        launcher.copyToDevice(d, java.lang.foreign.MemorySegment.ofArray(values), 8L * values.length);
        return d;
    }

    /** Device memory for this call only (partial sums, flags). */
    long scratch(long bytes) {
        long d = launcher.allocate(bytes);
        temporaries.add(d);
        return d;
    }

    /** Copies host outputs back (waiting for the kernels); with only device tensors, returns at once. */
    void finish() {
        for (CopyBack c : copyBacks) {
            launcher.copyToHost(c.host().segment(), c.device(), c.host().byteSize());
        }
    }

    @Override
    public void close() {
        try {
            if (!temporaries.isEmpty()) {
                launcher.synchronize(); // the kernels may still read the temporaries
            }
        } finally {
            for (long d : temporaries) {
                launcher.free(d);
            }
        }
    }
}
