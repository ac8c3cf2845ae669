package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BgpoAccumulator;
import io.rlkernels.internal.Check;
import io.rlkernels.internal.Json;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Shapes;
import io.rlkernels.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.Set;

/**
 * {@code op bgpo}: in logits.npy [n_t, R, V] (float32, or uint16 holding bf16 bits), targets.npy
 * [R] int32, seq_ids.npy [R] int32, masks.npy [n_t, R] uint8, weights.npy and old.npy [n_t, S]
 * float32, advantages.npy [S] float32; params clip_low (0.2), clip_high (0.2), dual_clip (0 = off),
 * denom (default S); out loss.npy [1], grad_logits.npy [n_t, R, V] float32, values.npy [n_t, S]
 * float32, metrics.json (strict JSON: a non-finite value, such as min_d of a batch with no
 * sequence, is null and counted in non_finite_count). The samples go through the constant-memory
 * accumulator one at a time.
 */
final class BgpoOp implements CliOp {
    @Override
    public String name() {
        return "bgpo";
    }

    @Override
    public Set<String> paramKeys() {
        return Set.of("clip_low", "clip_high", "dual_clip", "denom");
    }

    @Override
    public void run(Backend backend, InputFiles in, OutputFiles out, Params p) throws IOException {
        HostTensor logits = in.npy("logits.npy");
        Check.rank("logits", logits, 3);
        if (logits.dim(0) > Integer.MAX_VALUE) {
            throw Check.fail("logits", "at most 2^31 - 1 samples (shape [n_t, R, V])", logits.dim(0));
        }
        int samples = (int) logits.dim(0);
        long r = logits.dim(1);
        long v = logits.dim(2);
        Bgpo.Config c = new Bgpo.Config(p.floatValue("clip_low", 0.2f), p.floatValue("clip_high", 0.2f),
                p.floatValue("dual_clip", 0f), samples, p.floatValue("denom", Float.NaN), 1f);
        HostTensor targets = in.npy("targets.npy");
        HostTensor masks = in.npy("masks.npy");
        HostTensor weights = in.npy("weights.npy");
        HostTensor old = in.npy("old.npy");
        HostTensor advantages = in.npy("advantages.npy");
        try (SequenceLayout rows = SequenceLayout.ofSeqIds(in.npy("seq_ids.npy"))) {
            int s = rows.sequences();
            Check.shape("masks", masks, samples, r);
            Check.shape("weights", weights, samples, s);
            Check.shape("old", old, samples, s);
            try (HostTensor grad = HostTensor.allocate(DType.F32, samples, r, v); HostTensor values = HostTensor.allocate(DType.F32, samples, s);
                 Tensor y = backend.upload(targets); Tensor adv = backend.upload(advantages);
                 BgpoAccumulator acc = new BgpoAccumulator(backend, c, rows, y, adv)) {
                for (int j = 0; j < samples; j++) {
                    try (Tensor z = backend.upload(slice(logits, j, r, v)); Tensor m = backend.upload(slice(masks, j, r));
                         Tensor w = backend.upload(slice(weights, j, s)); Tensor o = backend.upload(slice(old, j, s));
                         Tensor g = backend.allocate(DType.F32, r, v)) {
                        acc.step(z, m, w, o, g);
                        backend.download(g, slice(grad, j, r, v));
                        backend.download(acc.lastValues(), slice(values, j, s));
                    }
                }
                Bgpo.Stats st = acc.stats();
                try (HostTensor loss = HostTensor.allocate(DType.F32, 1)) {
                    loss.setFloat(0, LossOutput.toFloat32("loss", st.loss()));
                    out.npy("loss.npy", loss);
                }
                out.npy("grad_logits.npy", grad);
                out.npy("values.npy", values);
                out.text("metrics.json", new Json().put("loss", st.loss()).put("clip_fraction", st.clipFraction())
                        .put("clip_high", (long) st.clipHigh()).put("clip_low", (long) st.clipLow())
                        .put("clip_dual", (long) st.clipDual()).put("mean_d", st.meanD()).put("min_d", st.dMin())
                        .put("max_d", st.dMax()).put("sequence_samples", (long) st.seen()).put("empty", (long) st.empty())
                        .put("accumulator_bytes", acc.allocatedBytes()).pretty());
            }
        }
    }

    /** Sample j of a [n_t, ...] tensor, without a copy. */
    private static HostTensor slice(HostTensor t, int j, long... shape) {
        long bytes = Shapes.byteSize("shape", t.dtype(), shape);
        MemorySegment seg = t.segment().asSlice(j * bytes, bytes);
        return HostTensor.wrap(seg, t.dtype(), shape);
    }
}
