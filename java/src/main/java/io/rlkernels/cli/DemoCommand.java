package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.Backends;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code rlkernels demo}: writes random logits as .npy, runs {@code op logprobs} on the fastest
 * backend and on the f64 reference, and prints their agreement and speed.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Runs op logprobs on generated data with the fastest backend and the reference, and compares them.")
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--rows", defaultValue = "512", description = "token rows N (default: ${DEFAULT-VALUE})")
    int rows;

    @Option(names = "--vocab", defaultValue = "32000", description = "vocabulary V (default: ${DEFAULT-VALUE})")
    int vocab;

    @Option(names = "--temperature", defaultValue = "0.7", description = "temperature (default: ${DEFAULT-VALUE})")
    float temperature;

    @Option(names = "--backend", defaultValue = "auto", description = "backend to compare with the reference (default: ${DEFAULT-VALUE})")
    String backend;

    @Option(names = "--dir", defaultValue = "target/demo", description = "where inputs and outputs go (default: ${DEFAULT-VALUE})")
    Path dir;

    @Option(names = "--seed", defaultValue = "1", description = "random seed (default: ${DEFAULT-VALUE})")
    long seed;

    @Override
    public Integer call() throws Exception {
        Path in = Files.createDirectories(dir.resolve("in"));
        writeInputs(in);
        System.out.printf("inputs: logits f32[%d, %d], targets, grad_logp in %s%n", rows, vocab, in);

        Params params = new Params(Map.of("temperature", Float.toString(temperature)), new LogProbsOp().paramKeys());
        Path fastOut = Files.createDirectories(dir.resolve("out-fast"));
        Path refOut = Files.createDirectories(dir.resolve("out-reference"));
        double fastMs;
        double refMs;
        String fastName;
        try (Backend fast = Backends.open(backend); Arena arena = Arena.ofShared()) {
            fastName = fast.description();
            fastMs = timed(() -> new LogProbsOp().run(fast, in, fastOut, params, arena));
        }
        try (Backend ref = Backends.open(BackendKind.REFERENCE); Arena arena = Arena.ofShared()) {
            refMs = timed(() -> new LogProbsOp().run(ref, in, refOut, params, arena));
        }

        System.out.printf("%-28s %10s %10s%n", "backend", "ms", "speed-up");
        System.out.printf("%-28s %10.1f %10s%n", truncate(fastName), fastMs, String.format("%.1fx", refMs / fastMs));
        System.out.printf("%-28s %10.1f %10s%n", "reference (f64)", refMs, "1.0x");
        boolean ok = true;
        try (Arena arena = Arena.ofShared()) {
            for (String out : new String[] {"logp", "entropy", "lse", "grad_logits"}) {
                HostTensor a = Npy.read(fastOut.resolve(out + ".npy"), arena);
                HostTensor b = Npy.read(refOut.resolve(out + ".npy"), arena);
                double worst = 0;
                for (long i = 0; i < a.numel(); i++) {
                    double err = Math.abs(a.getFloat(i) - b.getFloat(i)) / (1e-6 + Math.abs(b.getFloat(i)));
                    worst = Math.max(worst, Double.isNaN(err) ? Double.POSITIVE_INFINITY : err);
                }
                boolean pass = worst <= 1e-4;
                ok &= pass;
                System.out.printf("%-12s max |fast - ref| / (1e-6 + |ref|) = %.2e %s%n", out, worst, pass ? "ok" : "MISMATCH");
            }
        }
        System.out.printf("try it on your own tensors: bin/rlkernels op logprobs --in %s --out %s --param temperature=%s%n",
                in, dir.resolve("out"), temperature);
        return ok ? 0 : 2;
    }

    private void writeInputs(Path in) throws Exception {
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
            Npy.write(in.resolve("logits.npy"), logits);
            Npy.write(in.resolve("targets.npy"), targets);
            Npy.write(in.resolve("grad_logp.npy"), gradLogp);
        }
    }

    private interface Body {
        void run() throws Exception;
    }

    private static double timed(Body body) throws Exception {
        long start = System.nanoTime();
        body.run();
        return (System.nanoTime() - start) / 1e6;
    }

    private static String truncate(String s) {
        return s.length() <= 28 ? s : s.substring(0, 27) + "…";
    }
}
