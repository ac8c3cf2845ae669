package io.rlkernels.bench;

import io.rlkernels.backend.internal.BackendBase;
import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.backend.BgpoAccumulator;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Peak memory and time of one BGPO step against the number of Monte Carlo samples n_t:
 * the accumulator (one sample at a time) beside the retain-all baseline, which optimises the
 * non-linear ELBO objective exp(mean_j d_ij) A_i directly and so must hold every sample's logits
 * (and hidden states) until all n_t values are known. Both run a linear head, logits = H_j W^T,
 * and produce dW; hidden states H_j are made per sample from a seed (the model's forward).
 *
 * <pre>BgpoMemoryBench [--backend native] [--rows 512] [--vocab 4096] [--hidden 128] [--samples 1,2,4,...,64]</pre>
 *
 * Memory is counted from the tensors each method allocates (a ledger of live bytes, peak kept):
 * exact and repeatable, unlike the process's resident size.
 */
public final class BgpoMemoryBench {
    private BgpoMemoryBench() {}

    /** Live bytes and their peak. */
    static final class Ledger {
        long live;
        long peak;

        <T extends Tensor> T add(T t) {
            live += t.byteSize();
            peak = Math.max(peak, live);
            return t;
        }

        void add(long bytes) {
            live += bytes;
            peak = Math.max(peak, live);
        }

        void free(Tensor t) {
            live -= t.byteSize();
            t.close();
        }
    }

    public static void main(String[] args) {
        String backendName = "native";
        int r = 512;
        int v = 4096;
        int d = 128;
        int[] counts = {1, 2, 4, 8, 16, 32, 64};
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--backend" -> backendName = args[i + 1];
                case "--rows" -> r = Integer.parseInt(args[i + 1]);
                case "--vocab" -> v = Integer.parseInt(args[i + 1]);
                case "--hidden" -> d = Integer.parseInt(args[i + 1]);
                case "--samples" -> counts = Arrays.stream(args[i + 1].split(",")).mapToInt(Integer::parseInt).toArray();
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        try (Backend b = Backends.open(backendName)) {
            System.out.printf("BGPO step against n_t: %s; R = %d response rows (sequences of 64), V = %d, hidden %d, linear head%n%n",
                    b.description(), r, v, d);
            System.out.println("| n_t | BGPO peak MiB | retain-all peak MiB | BGPO s/step | retain-all s/step | BGPO loss | retain-all loss |");
            System.out.println("|---|---|---|---|---|---|---|");
            for (int samples : counts) {
                Result bgpo = run(b, samples, r, v, d, true);
                Result all = run(b, samples, r, v, d, false);
                System.out.printf("| %d | %.1f | %.1f | %.3f | %.3f | %.6f | %.6f |%n", samples, bgpo.peak / 1048576.0,
                        all.peak / 1048576.0, bgpo.seconds, all.seconds, bgpo.loss, all.loss);
            }
        }
    }

    record Result(long peak, double seconds, double loss) {}

    /** One step with n_t samples, by the accumulator ({@code bgpo}) or by retaining every sample. */
    static Result run(Backend b, int samples, int r, int v, int d, boolean bgpo) {
        Ledger ledger = new Ledger();
        int[] lengths = new int[r / 64];
        Arrays.fill(lengths, 64);
        SplittableRandom rng = new SplittableRandom(11);
        try (SequenceLayout rows = SequenceLayout.ofLengths(lengths);
             Bgpo.Samples masks = Bgpo.sample(5, samples, rows, Bgpo.Weighting.PER_MASKED_TOKEN);
             HostTensor yHost = HostTensor.allocate(DType.I32, r); HostTensor advHost = HostTensor.allocate(DType.F32, lengths.length);
             HostTensor oldHost = HostTensor.allocate(DType.F32, lengths.length);
             HostTensor wHost = Fill.normal(DType.F32, 0.05, v, d); HostTensor zeros = HostTensor.allocate(DType.F32, v, d)) {
            for (int i = 0; i < r; i++) {
                yHost.setLong(i, rng.nextInt(v));
            }
            for (int i = 0; i < lengths.length; i++) {
                advHost.setFloat(i, (float) rng.nextGaussian());
                oldHost.setFloat(i, -9f); // a little off-policy: l is about -ln(V) = -8.3 per position
            }
            Tensor y = ledger.add(b.upload(yHost));
            Tensor adv = ledger.add(b.upload(advHost));
            Tensor old = ledger.add(b.upload(oldHost));
            Tensor w = ledger.add(b.upload(wHost));
            Tensor gradW = ledger.add(b.upload(zeros)); // accumulated over the samples from 0
            Tensor gradH = ledger.add(b.allocate(DType.F32, r, d));
            Bgpo.Config c = Bgpo.Config.defaults(samples);
            long start = System.nanoTime();
            double loss;
            if (bgpo) {
                try (BgpoAccumulator acc = new BgpoAccumulator(b, c, rows, y, adv)) {
                    for (int j = 0; j < samples; j++) {
                        Tensor h = ledger.add(hidden(b, j, r, d));
                        Tensor m = ledger.add(b.upload(slice(masks.masks(), j, r)));
                        Tensor wt = ledger.add(b.upload(slice(masks.weights(), j, lengths.length)));
                        acc.stepLinear(h, w, m, wt, old, gradW, gradH);
                        if (j == 0) {
                            ledger.add(acc.allocatedBytes()); // its workspace and logits buffer, made once
                        }
                        ledger.free(h);
                        ledger.free(m);
                        ledger.free(wt);
                    }
                    loss = acc.stats().loss();
                }
            } else {
                loss = retainAll(b, c, rows, masks, y, adv, old, w, gradW, gradH, samples, r, d, ledger);
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            for (Tensor t : new Tensor[] {y, adv, old, w, gradW, gradH}) {
                ledger.free(t);
            }
            return new Result(ledger.peak, seconds, loss);
        }
    }

    /** The non-linear objective L = -1/D sum_i A_i exp(mean_j d_ij): every sample held until the end. */
    static double retainAll(Backend b, Bgpo.Config c, SequenceLayout rows, Bgpo.Samples masks, Tensor y, Tensor adv, Tensor old,
                            Tensor w, Tensor gradW, Tensor gradH, int samples, int r, int d, Ledger ledger) {
        int s = rows.sequences();
        long v = w.dim(0);
        LogProbs.Config lp = Bgpo.logProbsConfig(c);
        List<Tensor[]> kept = new ArrayList<>(); // per sample: hidden, logits, targets, lseParts, logp, mask
        double[][] values = new double[samples][s];
        for (int j = 0; j < samples; j++) {
            Tensor h = ledger.add(hidden(b, j, r, d));
            Tensor z = ledger.add(b.allocate(DType.F32, r, v));
            b.matmul(false, true, 1f, h, w, 0f, z);
            Tensor m = ledger.add(b.upload(slice(masks.masks(), j, r)));
            Tensor t = ledger.add(b.allocate(y.dtype(), r));
            BackendBase.of("b", b).maskRows(y, m, v, t);
            Tensor lseParts = ledger.add(b.allocate(DType.F32, r, 2));
            Tensor logp = ledger.add(b.allocate(DType.F32, r));
            b.logProbs(lp, z, t, logp, null, null, lseParts);
            try (HostTensor lh = HostTensor.allocate(DType.F32, r)) {
                b.download(logp, lh);
                for (int i = 0; i < s; i++) {
                    double sum = 0;
                    for (long p = rows.offsets().getLong(i); p < rows.offsets().getLong(i + 1); p++) {
                        sum += masks.masks().getLong((long) j * r + p) != 0 ? lh.getFloat(p) : 0;
                    }
                    values[j][i] = masks.weights().getFloat((long) j * s + i) * sum;
                }
            }
            kept.add(new Tensor[] {h, z, t, lseParts, logp, m});
        }
        double dd = c.denominatorFor(s);
        double loss = 0;
        double[] coef = new double[s];
        try (HostTensor a = HostTensor.allocate(DType.F32, s); HostTensor o = HostTensor.allocate(DType.F32, s)) {
            b.download(adv, a);
            b.download(old, o);
            for (int i = 0; i < s; i++) {
                double mean = 0;
                for (int j = 0; j < samples; j++) {
                    mean += (values[j][i] - o.getFloat(i)) / samples;
                }
                loss -= a.getFloat(i) * Math.exp(mean) / dd;
                coef[i] = -a.getFloat(i) * Math.exp(mean) / (dd * samples); // dL/dl_ij without w_ij
            }
        }
        for (int j = 0; j < samples; j++) {
            Tensor[] k = kept.get(j);
            try (HostTensor up = HostTensor.allocate(DType.F32, r)) {
                for (int i = 0; i < s; i++) {
                    float g = (float) (coef[i] * masks.weights().getFloat((long) j * s + i));
                    for (long p = rows.offsets().getLong(i); p < rows.offsets().getLong(i + 1); p++) {
                        up.setFloat(p, masks.masks().getLong((long) j * r + p) != 0 ? g : 0f);
                    }
                }
                Tensor upstream = ledger.add(b.upload(up));
                b.logProbsBackward(lp, k[1], k[2], k[3], null, upstream, null, k[1]);
                b.matmul(true, false, 1f, k[1], k[0], 1f, gradW);
                b.matmul(false, false, 1f, k[1], w, 0f, gradH);
                ledger.free(upstream);
            }
        }
        for (Tensor[] k : kept) {
            for (Tensor t : k) {
                ledger.free(t);
            }
        }
        return loss;
    }

    /** Sample j's hidden states: what the model's forward would produce, here from a seed. */
    static Tensor hidden(Backend b, int j, int r, int d) {
        try (HostTensor h = HostTensor.allocate(DType.F32, r, d)) {
            SplittableRandom rng = new SplittableRandom(1000 + j);
            for (long i = 0; i < (long) r * d; i++) {
                h.setFloat(i, (float) rng.nextGaussian());
            }
            return b.upload(h);
        }
    }

    private static HostTensor slice(HostTensor t, int j, long n) {
        long bytes = n * t.dtype().byteSize();
        return HostTensor.wrap(t.segment().asSlice(j * bytes, bytes), t.dtype(), n);
    }
}
