package io.rlkernels.backend.reference;

import io.rlkernels.ops.internal.BgpoChecks;
import io.rlkernels.ops.internal.LogProbsChecks;
import io.rlkernels.backend.internal.BgpoWorkspace;
import static io.rlkernels.backend.reference.HostArgs.host;
import static io.rlkernels.backend.reference.HostArgs.finite;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.SequenceLayout;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * BGPO (contract: {@link io.rlkernels.ops.Bgpo}, ARCHITECTURE §5.4) in f64: the building blocks
 * (masked rows, per-sequence coefficients) and the whole sample fused, the latter directly from
 * the definition rather than through the blocks, so that each checks the other.
 */
final class BgpoReference {
    private BgpoReference() {}

    static void maskRows(Tensor targets, Tensor mask, long vocab, Tensor out) {
        BgpoChecks.checkMaskRows(targets, mask, vocab, out);
        HostTensor y = host("targets", targets);
        HostTensor m = host("mask", mask);
        HostTensor o = host("out", out);
        LogProbsChecks.checkTokenIds(y, vocab);
        for (long i = 0; i < y.numel(); i++) {
            o.setLong(i, m.getFloat(i) != 0 ? y.getLong(i) : Bgpo.UNMASKED);
        }
    }

    static void coefficients(Bgpo.Config c, Tensor logp, SequenceLayout rows, Tensor mask, Tensor weights, Tensor oldValues,
                                 Tensor advantages, Tensor values, Tensor upstream, Tensor state) {
        BgpoChecks.checkCoefficients(c, logp, rows, mask, weights, oldValues, advantages, values, upstream, state);
        HostTensor lp = host("logp", logp);
        HostTensor m = host("mask", mask);
        HostTensor w = host("weights", weights);
        BgpoChecks.checkWeights(w);
        HostTensor old = finite("oldValues", oldValues);
        HostTensor adv = finite("advantages", advantages);
        HostTensor out = host("values", values);
        HostTensor g = host("upstream", upstream);
        double scale = 1.0 / (c.denominatorFor(rows.sequences()) * c.samples());
        double[] st = Bgpo.Stats.initial();
        for (int s = 0; s < rows.sequences(); s++) {
            long b = rows.offsets().getLong(s);
            long e = rows.offsets().getLong(s + 1);
            double sum = 0;
            boolean any = false;
            for (long p = b; p < e; p++) {
                if (m.getFloat(p) != 0) {
                    sum += lp.getFloat(p);
                    any = true;
                }
            }
            Coefficient k = coefficient(c, adv.getFloat(s), w.getFloat(s) * sum - old.getFloat(s), st);
            st[Bgpo.STAT_LOSS] += k.f() * scale;
            st[Bgpo.STAT_EMPTY] += any ? 0 : 1;
            out.setFloat(s, (float) (w.getFloat(s) * sum));
            float up = (float) (-adv.getFloat(s) * k.dfdd() * w.getFloat(s) * scale);
            for (long p = b; p < e; p++) {
                g.setFloat(p, m.getFloat(p) != 0 ? up : 0f);
            }
        }
        requireRepresentable(c, out, g);
        addState(host("state", state), st);
    }

    /** f(A, d) of one sequence-sample and -df/dd / A = psi'(d) kappa; counts clipping and d into st. */
    private record Coefficient(double f, double dfdd) {}

    private static Coefficient coefficient(Bgpo.Config c, double a, double d, double[] st) {
        double psi;
        double dpsi;
        if (a >= 0) {
            psi = 1 + d;
            dpsi = 1;
        } else {
            double dc = Math.max(-20, Math.min(20, d));
            psi = Math.exp(dc);
            dpsi = dc == d ? psi : 0;
        }
        double clipped = Math.min(Math.max(psi, 1 - (double) c.clipLow()), 1 + (double) c.clipHigh());
        double unclippedLoss = -a * psi;
        double clippedLoss = -a * clipped;
        double f = Math.max(unclippedLoss, clippedLoss);
        double kappa = unclippedLoss >= clippedLoss ? 1 : 0;
        if (clippedLoss > unclippedLoss) {
            st[psi > 1 + (double) c.clipHigh() ? Bgpo.STAT_CLIP_HIGH : Bgpo.STAT_CLIP_LOW]++;
        }
        if (c.dualClip() > 0 && a < 0 && f > -c.dualClip() * a) {
            f = -c.dualClip() * a;
            kappa = 0;
            st[Bgpo.STAT_CLIP_DUAL]++;
        }
        st[Bgpo.STAT_SEEN]++;
        st[Bgpo.STAT_D_SUM] += d;
        st[Bgpo.STAT_D_MIN] = Math.min(st[Bgpo.STAT_D_MIN], d);
        st[Bgpo.STAT_D_MAX] = Math.max(st[Bgpo.STAT_D_MAX], d);
        st[Bgpo.STAT_PSI_SUM] += psi;
        return new Coefficient(f, kappa * dpsi);
    }

    /** state += st (min and max combined). */
    private static void addState(HostTensor state, double[] st) {
        for (int j = 0; j < Bgpo.STATS_LENGTH; j++) {
            double v = state.getDouble(j);
            state.setDouble(j, j == Bgpo.STAT_D_MIN ? Math.min(v, st[j]) : j == Bgpo.STAT_D_MAX ? Math.max(v, st[j]) : v + st[j]);
        }
    }

    /** The whole sample in f64, directly from the definition (not through the primitives above). */
    static void step(Bgpo.Config c, Bgpo.Sample in, BgpoWorkspace ws, Tensor gradLogits, Tensor state) {
        BgpoChecks.checkStep(c, in.logits(), in.targets(), in.rows(), in.mask(), in.weights(), in.oldValues(), in.advantages(),
                gradLogits, ws.values(), state);
        HostTensor z = host("logits", in.logits());
        HostTensor y = host("targets", in.targets());
        HostTensor m = host("mask", in.mask());
        HostTensor w = host("weights", in.weights());
        BgpoChecks.checkWeights(w);
        HostTensor old = finite("oldValues", in.oldValues());
        HostTensor adv = finite("advantages", in.advantages());
        HostTensor out = host("gradLogits", gradLogits);
        HostTensor values = host("values", ws.values());
        SequenceLayout rows = in.rows();
        long v = z.dim(1);
        LogProbsChecks.checkTokenIds(y, v);
        double t = c.temperature();
        double scale = 1.0 / (c.denominatorFor(rows.sequences()) * c.samples());
        double[] st = Bgpo.Stats.initial();
        double[] row = new double[LogProbsReference.rowLength(v)];
        double[] dz = new double[row.length];
        for (int s = 0; s < rows.sequences(); s++) {
            long b = rows.offsets().getLong(s);
            long e = rows.offsets().getLong(s + 1);
            double sum = 0;
            boolean any = false;
            LogProbsReference.Row[] rowsOfSeq = new LogProbsReference.Row[(int) (e - b)];
            for (long p = b; p < e; p++) {
                if (m.getFloat(p) != 0) {
                    LogProbsReference.Row r = LogProbsReference.logProbsRow(LogProbsReference.readRow(z, p, row), (int) y.getLong(p), t);
                    sum += r.logp();
                    rowsOfSeq[(int) (p - b)] = r;
                    any = true;
                }
            }
            Coefficient k = coefficient(c, adv.getFloat(s), w.getFloat(s) * sum - old.getFloat(s), st);
            st[Bgpo.STAT_LOSS] += k.f() * scale;
            st[Bgpo.STAT_EMPTY] += any ? 0 : 1;
            values.setFloat(s, (float) (w.getFloat(s) * sum));
            if (Float.isInfinite(values.getFloat(s))) {
                throw BgpoChecks.overflow(c, "values", s, values.getFloat(s));
            }
            double g = -adv.getFloat(s) * k.dfdd() * w.getFloat(s) * scale; // dL/dlogp of a masked row
            for (long p = b; p < e; p++) {
                if (m.getFloat(p) != 0 && !(Math.abs((float) g) <= BgpoChecks.upstreamLimit(c))) {
                    throw BgpoChecks.overflow(c, "upstream", p, (float) g);
                }
                if (m.getFloat(p) != 0) {
                    LogProbsReference.Row r = rowsOfSeq[(int) (p - b)];
                    LogProbsReference.logProbsGradRow(LogProbsReference.readRow(z, p, row), (int) y.getLong(p), t, r.max(), r.logSum(), 0, g, 0, dz);
                } else {
                    java.util.Arrays.fill(dz, 0);
                }
                for (int j = 0; j < v; j++) {
                    out.setFloat(p * v + j, (float) dz[j]);
                }
            }
        }
        addState(host("state", state), st);
    }

    /** BGPO's values and per-row upstream gradients within float32 and the gradient's bound. */
    private static void requireRepresentable(Bgpo.Config c, HostTensor values, HostTensor upstream) {
        long bad = Check.firstOutside(values, Float.MAX_VALUE);
        if (bad >= 0) {
            throw BgpoChecks.overflow(c, "values", bad, values.getFloat(bad));
        }
        bad = Check.firstOutside(upstream, BgpoChecks.upstreamLimit(c));
        if (bad >= 0) {
            throw BgpoChecks.overflow(c, "upstream", bad, upstream.getFloat(bad));
        }
    }
}
