package io.rlkernels.backend.internal;

import io.rlkernels.tensor.Tensor;

/**
 * Per-row and per-sequence scratch of one sample, reused by every sample: sized by R and S,
 * never by n_t. {@code values} receives l_ij of the last sample.
 */
public record BgpoWorkspace(Tensor rowTargets, Tensor logp, Tensor lseParts, Tensor upstream, Tensor values)
        implements AutoCloseable {
    public long bytes() {
        return rowTargets.byteSize() + logp.byteSize() + lseParts.byteSize() + upstream.byteSize() + values.byteSize();
    }

    @Override
    public void close() {
        rowTargets.close();
        logp.close();
        lseParts.close();
        upstream.close();
        values.close();
    }
}
