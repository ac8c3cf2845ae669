package io.rlkernels.bench;

import java.util.Arrays;

/**
 * Entry point of benchmarks.jar: {@code logprobs [--quick]} runs the token log-probs benchmarks
 * beside the read-bandwidth probe and prints the RESULTS.md table, {@code advantages} the same for
 * group advantages, GAE and whitening, {@code policy} for the policy loss, {@code bgpo [options]} BGPO's
 * memory and time against n_t beside the retain-all baseline; anything else goes to JMH
 * ({@code -h} for its options, {@code -l} to list benchmarks).
 */
public final class BenchMain {
    private BenchMain() {}

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("logprobs")) {
            BenchReport.logProbs(Arrays.asList(args).contains("--quick"));
            return;
        }
        if (args.length > 0 && args[0].equals("advantages")) {
            BenchReport.advantages();
            return;
        }
        if (args.length > 0 && args[0].equals("bgpo")) {
            BgpoMemoryBench.main(Arrays.copyOfRange(args, 1, args.length));
            return;
        }
        if (args.length > 0 && args[0].equals("policy")) {
            BenchReport.policyLoss();
            return;
        }
        org.openjdk.jmh.Main.main(args);
    }
}
