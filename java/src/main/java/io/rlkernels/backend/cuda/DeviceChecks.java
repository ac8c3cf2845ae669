package io.rlkernels.backend.cuda;

import io.rlkernels.ops.internal.LogProbsChecks;
import io.rlkernels.internal.Check;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.DeviceTensor;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * The cuda backend's input-check policy, in one place: host inputs are always checked; device
 * inputs while {@link CudaBackend#checkDeviceInputs} is on (a kernel scans them and 8 bytes come
 * back); outputs that could overflow are scanned after the kernels. Target ids are checked on the
 * host before any kernel runs.
 */
final class DeviceChecks {
    private final CudaBackend backend;
    private final KernelLauncher launcher;

    DeviceChecks(CudaBackend backend, KernelLauncher launcher) {
        this.backend = backend;
        this.launcher = launcher;
    }

    /** An f32 input on the device, checked finite. */
    long finiteInput(Staging s, String arg, Tensor t) {
        return boundedInput(s, arg, t, Float.MAX_VALUE, null);
    }

    /** An f32 input on the device, checked finite and within +-limit ({@code why}: what the bound protects). */
    long boundedInput(Staging s, String arg, Tensor t, float limit, String why) {
        long address = s.in(arg, t);
        requireWithin(s, arg, t, address, limit, why);
        return address;
    }

    void requireFinite(Staging s, String arg, Tensor t, long address) {
        requireWithin(s, arg, t, address, Float.MAX_VALUE, null);
    }

    /**
     * The same, telling in the same pass whether every element is within +-bound (the op's bound
     * under which its outputs cannot overflow, so they need no scan). A device tensor while device
     * checks are off counts as bounded: nothing about it is checked then.
     */
    boolean requireFinite(Staging s, String arg, Tensor t, long address, float bound) {
        if (t instanceof HostTensor h) {
            if (Check.firstOutside(h, bound) < 0) {
                return true;
            }
        } else if (!backend.checksDeviceInputs() || firstOutside(s, address, t.numel(), bound) < 0) {
            return true;
        }
        requireFinite(s, arg, t, address);
        return false;
    }

    /**
     * Refuses an element of an f32 input that is NaN or beyond +-limit: on the host directly, on
     * the device (unless its checks are off) with a kernel and 8 bytes back.
     */
    void requireWithin(Staging s, String arg, Tensor t, long address, float limit, String why) {
        if (t instanceof HostTensor h) {
            Check.within(arg, h, limit, why);
            return;
        }
        if (!backend.checksDeviceInputs()) {
            return;
        }
        long bad = firstOutside(s, address, t.numel(), limit);
        if (bad >= 0) {
            throw Check.outside(arg, bad, floatAt(address, bad), limit, why);
        }
    }

    /**
     * After the kernels: refuses an f32 output that overflowed (its inputs were finite), before it
     * is copied back. On a device tensor only while device checks are on: it waits for the kernels.
     */
    void requireRepresentable(Staging s, Tensor output, long address, float limit, Check.Refusal refusal) {
        if (!(output instanceof HostTensor) && !backend.checksDeviceInputs()) {
            return;
        }
        long bad = firstOutside(s, address, output.numel(), limit);
        if (bad >= 0) {
            throw refusal.at(bad, floatAt(address, bad));
        }
    }

    /** The first of n device floats that is NaN or beyond +-limit, or -1 (a kernel and 8 bytes back). */
    long firstOutside(Staging s, long address, long n, float limit) {
        if (n == 0) {
            return -1;
        }
        long first = deviceCell(s, n);
        launcher.launch("rlk_first_outside_f32", CudaBackend.elementwiseLaunch(n), new KernelArgs().ptr(address).i64(n).f32(limit).ptr(first));
        long bad = readCell(first);
        return bad < n ? bad : -1;
    }

    /** An 8-byte device cell holding {@code value} (a minimum the kernels lower with atomicMin). */
    long deviceCell(Staging s, long value) {
        long cell = s.scratch(8);
        try (HostTensor h = HostTensor.allocate(DType.I64, 1)) {
            h.setLong(0, value);
            launcher.copyToDevice(cell, h.segment(), 8);
        }
        return cell;
    }

    /** The value of a device cell, after the kernels launched so far. */
    long readCell(long cell) {
        try (HostTensor h = HostTensor.allocate(DType.I64, 1)) {
            launcher.copyToHost(h.segment(), cell, 8);
            return h.getLong(0);
        }
    }

    float floatAt(long address, long index) {
        try (HostTensor value = HostTensor.allocate(DType.F32, 1)) {
            launcher.copyToHost(value.segment(), address + 4 * index, 4);
            return value.getFloat(0);
        }
    }


    /**
     * Target ids are checked on the host before any kernel runs (in [0, V), or the ignore index when
     * one is given); device ids are copied back for it.
     */
    void checkTargets(Tensor targets, long vocab, Long ignoreIndex) {
        HostTensor h = targets instanceof HostTensor ht ? ht : null;
        if (h == null) {
            DeviceTensor dt = backend.device("targets", targets);
            if (!backend.checksDeviceInputs()) {
                return;
            }
            h = HostTensor.allocate(dt.dtype(), dt.shape());
            backend.download(dt, h);
        }
        try {
            if (ignoreIndex == null) {
                LogProbsChecks.checkTokenIds(h, vocab);
            } else {
                LogProbsChecks.checkTargets(h, vocab, ignoreIndex);
            }
        } finally {
            if (h != targets) {
                h.close();
            }
        }
    }
}
