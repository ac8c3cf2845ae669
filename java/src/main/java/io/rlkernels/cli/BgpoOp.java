package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BgpoAccumulator;
import io.rlkernels.internal.Check;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Set;

/**
 * {@code op bgpo}: in logits.npy [n_t, R, V] (float32, or uint16 holding bf16 bits), targets.npy
 * [R] int32, seq_ids.npy [R] int32, masks.npy [n_t, R] uint8, weights.npy and old.npy [n_t, S]
 * float32, advantages.npy [S] float32; params clip_low (0.2), clip_high (0.2), dual_clip (0 = off),
 * denom (default S); out loss.npy [1], grad_logits.npy [n_t, R, V] float32, values.npy [n_t, S]
 * float32, metrics.json. The samples go through the constant-memory accumulator one at a time.
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
    public void run(Backend backend, Path in, Path out, Params p, Arena arena) throws IOException {
        HostTensor logits = Npy.read(in.resolve("logits.npy"), arena);
        Check.rank("logits", logits, 3);
        int samples = (int) logits.dim(0);
        long r = logits.dim(1);
        long v = logits.dim(2);
        Bgpo.Config c = new Bgpo.Config(p.floatValue("clip_low", 0.2f), p.floatValue("clip_high", 0.2f),
                p.floatValue("dual_clip", 0f), samples, p.floatValue("denom", Float.NaN), 1f);
        HostTensor targets = Npy.read(in.resolve("targets.npy"), arena);
        HostTensor masks = Npy.read(in.resolve("masks.npy"), arena);
        HostTensor weights = Npy.read(in.resolve("weights.npy"), arena);
        HostTensor old = Npy.read(in.resolve("old.npy"), arena);
        HostTensor advantages = Npy.read(in.resolve("advantages.npy"), arena);
        try (SequenceLayout rows = SequenceLayout.ofSeqIds(Npy.read(in.resolve("seq_ids.npy"), arena))) {
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
                    loss.setFloat(0, (float) st.loss());
                    Npy.write(out.resolve("loss.npy"), loss);
                }
                Npy.write(out.resolve("grad_logits.npy"), grad);
                Npy.write(out.resolve("values.npy"), values);
                Files.writeString(out.resolve("metrics.json"), String.format(Locale.ROOT,
                        "{%n  \"loss\": %s,%n  \"clip_fraction\": %s,%n  \"clip_high\": %d,%n  \"clip_low\": %d,%n  \"clip_dual\": %d,%n"
                                + "  \"mean_d\": %s,%n  \"min_d\": %s,%n  \"max_d\": %s,%n  \"sequence_samples\": %d,%n  \"empty\": %d,%n"
                                + "  \"accumulator_bytes\": %d%n}%n", st.loss(), st.clipFraction(), (long) st.clipHigh(),
                        (long) st.clipLow(), (long) st.clipDual(), st.meanD(), st.dMin(), st.dMax(), (long) st.seen(),
                        (long) st.empty(), acc.allocatedBytes()));
            }
        }
    }

    /** Sample j of a [n_t, ...] tensor, without a copy. */
    private static HostTensor slice(HostTensor t, int j, long... shape) {
        long elements = io.rlkernels.tensor.Shapes.numel(shape);
        long bytes = elements * t.dtype().byteSize();
        MemorySegment seg = t.segment().asSlice(j * bytes, bytes);
        return HostTensor.wrap(seg, t.dtype(), shape);
    }
}
