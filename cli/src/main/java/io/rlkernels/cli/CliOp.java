package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import java.io.IOException;
import java.util.Set;

/**
 * One op of {@code rlkernels op NAME}: reads its .npy inputs, runs, writes its .npy outputs
 * (which appear only when all are complete: {@link OutputFiles}).
 */
interface CliOp {
    String name();

    /** The keys its {@code --param}s may use. */
    Set<String> paramKeys();

    /** Runs the op: reads from {@code in}, writes every output to {@code out}; the caller commits them. */
    void run(Backend backend, InputFiles in, OutputFiles out, Params params) throws IOException;
}
