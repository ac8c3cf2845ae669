package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Set;

/** One op of {@code rlkernels op NAME}: reads its .npy inputs, runs, writes its .npy outputs. */
interface CliOp {
    String name();

    /** The keys its {@code --param}s may use. */
    Set<String> paramKeys();

    /** Runs the op; inputs are mapped into {@code arena}, which the caller closes afterwards. */
    void run(Backend backend, Path in, Path out, Params params, Arena arena) throws IOException;
}
