package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.Backends;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code rlkernels demo}: token log-probs forward and backward on random logits, on the fastest
 * backend and on the f64 reference; prints their agreement and speed, and leaves the inputs as
 * .npy for {@code rlkernels op logprobs}.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Runs token log-probs on generated logits with the fastest backend and the reference, and compares them.")
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--rows", defaultValue = "512", description = "token rows N (default: ${DEFAULT-VALUE})")
    int rows;

    @Option(names = "--vocab", defaultValue = "32000", description = "vocabulary V (default: ${DEFAULT-VALUE})")
    int vocab;

    @Option(names = "--temperature", defaultValue = "0.7", description = "temperature (default: ${DEFAULT-VALUE})")
    float temperature;

    @Option(names = "--backend", defaultValue = "auto", description = "backend to compare with the reference (default: ${DEFAULT-VALUE})")
    String backend;

    @Option(names = "--dir", defaultValue = "target/demo", description = "where the .npy inputs go (default: ${DEFAULT-VALUE})")
    Path dir;

    @Option(names = "--seed", defaultValue = "1", description = "random seed (default: ${DEFAULT-VALUE})")
    long seed;

    /** Outputs of one backend, on the host. */
    private record Run(String name, double forwardMs, double backwardMs, HostTensor logp, HostTensor entropy, HostTensor grad) {}

    @Override
    public Integer call() throws Exception {
        LogProbs.Config config = LogProbs.Config.defaults().withTemperature(temperature);
        SplittableRandom rng = new SplittableRandom(seed);
        try (HostTensor logits = HostTensor.allocate(DType.F32, rows, vocab);
             HostTensor targets = HostTensor.allocate(DType.I64, rows);
             HostTensor gradLogp = HostTensor.allocate(DType.F32, rows)) {
            for (long i = 0; i < (long) rows * vocab; i++) {
                logits.setFloat(i, (float) (rng.nextGaussian() * 3.0));
            }
            for (int i = 0; i < rows; i++) {
                targets.setLong(i, rng.nextInt(vocab));
                gradLogp.setFloat(i, (float) rng.nextGaussian());
            }
            System.out.printf("token log-probs: logits f32[%d, %d], temperature %s; forward (logp, lse, entropy) and backward%n",
                    rows, vocab, temperature);
            Run fast;
            Run ref;
            try (Backend b = Backends.open(backend)) {
                fast = run(b, config, logits, targets, gradLogp, 3);
            }
            try (Backend b = Backends.open(BackendKind.REFERENCE)) {
                ref = run(b, config, logits, targets, gradLogp, 1);
            }
            double gb = (double) rows * vocab * 4 / 1e9;
            System.out.printf("%-34s %12s %12s %9s%n", "backend", "forward ms", "backward ms", "speed-up");
            for (Run r : new Run[] {fast, ref}) {
                String name = r.name().length() <= 34 ? r.name() : r.name().substring(0, r.name().indexOf(':'));
                System.out.printf("%-34s %12.2f %12.2f %8.1fx   (forward %.1f GB/s)%n", name, r.forwardMs(), r.backwardMs(),
                        (ref.forwardMs() + ref.backwardMs()) / (r.forwardMs() + r.backwardMs()), gb / (r.forwardMs() / 1e3));
            }
            boolean ok = agree("logp", ref.logp(), fast.logp()) & agree("entropy", ref.entropy(), fast.entropy())
                    & agree("grad_logits", ref.grad(), fast.grad());

            Path in = dir.resolve("in");
            try (OutputFiles files = new OutputFiles(in, null)) { // all three appear, or none
                files.npy("logits.npy", logits);
                files.npy("targets.npy", targets);
                files.npy("grad_logp.npy", gradLogp);
                files.commit();
            }
            System.out.printf("inputs saved; the same on files: bin/rlkernels op logprobs --in %s --out %s --param temperature=%s%n",
                    in, dir.resolve("out"), temperature);
            for (Run r : new Run[] {fast, ref}) {
                r.logp().close();
                r.entropy().close();
                r.grad().close();
            }
            return ok ? 0 : 2;
        }
    }

    /** Forward and backward on {@code b}, timed (best of {@code repeats}), outputs copied to the host. */
    private static Run run(Backend b, LogProbs.Config c, HostTensor logits, HostTensor targets, HostTensor gradLogp, int repeats) {
        long n = logits.dim(0);
        try (Tensor z = b.upload(logits); Tensor y = b.upload(targets); Tensor g = b.upload(gradLogp);
             Tensor logp = b.allocate(DType.F32, n); Tensor lse = b.allocate(DType.F32, n); Tensor lseParts = b.allocate(DType.F32, n, 2);
             Tensor entropy = b.allocate(DType.F32, n); Tensor grad = b.allocate(DType.F32, logits.shape());
             HostTensor sync = HostTensor.allocate(DType.F32, n)) {
            double fwd = Double.MAX_VALUE;
            double bwd = Double.MAX_VALUE;
            for (int r = 0; r < repeats; r++) {
                long t0 = System.nanoTime();
                b.logProbs(c, z, y, logp, lse, entropy, lseParts);
                b.download(lse, sync); // waits for a device
                long t1 = System.nanoTime();
                b.logProbsBackward(c, z, y, lseParts, null, g, null, grad);
                b.download(lse, sync);
                long t2 = System.nanoTime();
                fwd = Math.min(fwd, (t1 - t0) / 1e6);
                bwd = Math.min(bwd, (t2 - t1) / 1e6);
            }
            HostTensor outLogp = HostTensor.allocate(DType.F32, n);
            HostTensor outEntropy = HostTensor.allocate(DType.F32, n);
            HostTensor outGrad = HostTensor.allocate(DType.F32, logits.shape());
            b.download(logp, outLogp);
            b.download(entropy, outEntropy);
            b.download(grad, outGrad);
            return new Run(b.description(), fwd, bwd, outLogp, outEntropy, outGrad);
        }
    }

    private static boolean agree(String name, HostTensor ref, HostTensor fast) {
        double worst = 0;
        for (long i = 0; i < ref.numel(); i++) {
            double e = ref.getFloat(i);
            double err = Math.abs(fast.getFloat(i) - e) / (1e-6 + Math.abs(e));
            worst = Math.max(worst, Double.isNaN(err) ? Double.POSITIVE_INFINITY : err);
        }
        boolean ok = worst <= 1e-4;
        System.out.printf("%-12s max |fast - ref| / (1e-6 + |ref|) = %.1e  %s%n", name, worst, ok ? "agrees" : "MISMATCH");
        return ok;
    }
}
