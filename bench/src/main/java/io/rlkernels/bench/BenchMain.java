package io.rlkernels.bench;

public final class BenchMain {
    public static void main(String[] args) throws Exception {
        org.openjdk.jmh.Main.main(args);
    }
}
