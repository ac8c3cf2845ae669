package io.rlkernels.bench;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

/** Runs benchmarks with their baselines in one JMH run and prints ratios and bandwidth as a Markdown table. */
final class BenchReport {
    private BenchReport() {}

    /** One measured configuration. */
    private record Row(String op, String dtype, int vocab, int rows, String backend, double ms, double err) {}

    private static ChainedOptionsBuilder defaults() {
        return new OptionsBuilder()
                .forks(1)
                .jvmArgsAppend("--enable-native-access=ALL-UNNAMED", "-Xmx2g")
                .warmupIterations(2).warmupTime(TimeValue.seconds(2))
                .measurementIterations(5).measurementTime(TimeValue.seconds(2));
    }

    /** Benchmarks of one class beside the read-bandwidth probe, as a table with GB/s and the ratio to the reference. */
    interface Sizes {
        double bytesMoved(String op);

        String size(String op);
    }

    static void advantages() throws Exception {
        table(AdvantagesBenchmark.class, new Sizes() {
            @Override
            public double bytesMoved(String op) {
                return AdvantagesBenchmark.bytesMoved(op);
            }

            @Override
            public String size(String op) {
                return op.startsWith("group") ? "S = 2^20, groups of 16" : "B = 256, T = 4096";
            }
        });
    }

    static void policyLoss() throws Exception {
        table(PolicyLossBenchmark.class, new Sizes() {
            @Override
            public double bytesMoved(String op) {
                return PolicyLossBenchmark.bytesMoved(op);
            }

            @Override
            public String size(String op) {
                return "N = 2^20 tokens, sequences of 1024";
            }
        });
    }

    static void table(Class<?> benchmark, Sizes sizes) throws Exception {
        Collection<RunResult> results = new Runner(defaults()
                .include(benchmark.getName() + ".*")
                .include(ReadBandwidthBenchmark.class.getName() + ".*").build()).run();
        double readGbs = Double.NaN;
        Map<String, Double> referenceMs = new HashMap<>();
        List<RunResult> rows = new ArrayList<>();
        for (RunResult r : results) {
            if (r.getParams().getBenchmark().contains("ReadBandwidth")) {
                readGbs = Long.parseLong(r.getParams().getParam("elements")) * 4.0 / (r.getPrimaryResult().getScore() / 1e3) / 1e9;
                continue;
            }
            rows.add(r);
            if ("reference".equals(r.getParams().getParam("backend"))) {
                referenceMs.put(method(r), r.getPrimaryResult().getScore());
            }
        }
        System.out.printf("%nRead bandwidth (sum over 2 GiB, every core): %.1f GB/s%n%n", readGbs);
        System.out.println("| op | size | backend | ms/op (± 99.9%) | GB/s | of read bandwidth | vs reference |");
        System.out.println("|---|---|---|---|---|---|---|");
        for (RunResult r : rows) {
            String op = method(r);
            double ms = r.getPrimaryResult().getScore();
            double gbs = sizes.bytesMoved(op) / (ms / 1e3) / 1e9;
            String size = sizes.size(op);
            Double ref = referenceMs.get(op);
            System.out.printf("| %s | %s | %s | %.3f ± %.3f | %.1f | %.0f %% | %s |%n", op, size, r.getParams().getParam("backend"),
                    ms, r.getPrimaryResult().getScoreError(), gbs, 100 * gbs / readGbs,
                    ref == null ? "" : String.format("%.1fx", ref / ms));
        }
    }

    private static String method(RunResult r) {
        String b = r.getParams().getBenchmark();
        return b.substring(b.lastIndexOf('.') + 1);
    }

    static void logProbs(boolean quick) throws Exception {
        ChainedOptionsBuilder opts = new OptionsBuilder()
                .include(LogProbsBenchmark.class.getName() + ".*")
                .include(ReadBandwidthBenchmark.class.getName() + ".*")
                .forks(1)
                .jvmArgsAppend("--enable-native-access=ALL-UNNAMED", "-Xmx2g")
                .warmupIterations(2).warmupTime(TimeValue.seconds(2))
                .measurementIterations(5).measurementTime(TimeValue.seconds(2));
        if (quick) {
            opts.param("vocab", "32000").param("rows", "1024").warmupIterations(1).measurementIterations(3);
        }
        Collection<RunResult> results = new Runner(opts.build()).run();

        double readMs = Double.NaN;
        long readElements = 0;
        List<Row> rows = new ArrayList<>();
        for (RunResult r : results) {
            String method = r.getParams().getBenchmark().substring(r.getParams().getBenchmark().lastIndexOf('.') + 1);
            double ms = r.getPrimaryResult().getScore();
            double err = r.getPrimaryResult().getScoreError();
            if (r.getParams().getBenchmark().contains("ReadBandwidth")) {
                readMs = ms;
                readElements = Long.parseLong(r.getParams().getParam("elements"));
                continue;
            }
            rows.add(new Row(method, r.getParams().getParam("dtype"), Integer.parseInt(r.getParams().getParam("vocab")),
                    Integer.parseInt(r.getParams().getParam("rows")), r.getParams().getParam("backend"), ms, err));
        }
        double readGbs = readElements * 4.0 / (readMs / 1e3) / 1e9;
        Map<String, Double> referenceMs = new HashMap<>();
        for (Row r : rows) {
            if (r.backend().equals("reference")) {
                referenceMs.put(r.op() + r.dtype() + r.vocab(), r.ms());
            }
        }
        rows.sort(Comparator.comparing(Row::op).reversed().thenComparing(Row::vocab).thenComparing(Row::dtype)
                .thenComparing(Row::backend));

        System.out.printf("%nRead bandwidth (sum over %d MiB, every core): %.1f GB/s (%.2f ms)%n%n", readElements * 4 >> 20,
                readGbs, readMs);
        System.out.println("| op | logits | N x V | backend | ms/op (± 99.9%) | GB/s | of read bandwidth | vs reference |");
        System.out.println("|---|---|---|---|---|---|---|---|");
        for (Row r : rows) {
            double gbs = LogProbsBenchmark.bytesMoved(r.op(), r.rows(), r.vocab(), r.dtype()) / (r.ms() / 1e3) / 1e9;
            Double ref = referenceMs.get(r.op() + r.dtype() + r.vocab());
            System.out.printf("| %s | %s | %d x %d | %s | %.2f ± %.2f | %.1f | %.0f %% | %s |%n", r.op(), r.dtype(), r.rows(),
                    r.vocab(), r.backend(), r.ms(), r.err(), gbs, 100 * gbs / readGbs,
                    ref == null ? "" : String.format("%.1fx", ref / r.ms()));
        }
        System.out.println();
        System.out.println("GB/s = bytes the op must move / time: forward reads the logits once; backward reads them and"
                + " writes an f32 gradient (so its bandwidth counts reads and writes, against a read-only ceiling).");
    }
}
