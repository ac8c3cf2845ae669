package io.rlkernels.backend.reference;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/** The reference's arguments: host tensors only, some required finite. */
final class HostArgs {
    private HostArgs() {}

    static HostTensor host(String arg, Tensor t) {
        return Check.host(arg, t, "reference");
    }

    static HostTensor finite(String arg, Tensor t) {
        HostTensor h = host(arg, t);
        Check.finite(arg, h);
        return h;
    }
}
