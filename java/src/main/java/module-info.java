/**
 * RLKernels: the hot loops of RL fine-tuning of language models (ARCHITECTURE §1).
 *
 * <p>The API is three packages: {@code tensor} (host and device tensors), {@code ops} (each op's
 * configuration, inputs and statistics) and {@code backend} ({@code Backend}, {@code Backends},
 * {@code BgpoAccumulator}). Everything else — the backends' implementations, their FFM and JCuda
 * bindings — is internal to the module (the command line and the trainer are another artifact,
 * rlkernels-cli). The backends use native code:
 * run with {@code --enable-native-access=io.rlkernels} on the module path
 * ({@code ALL-UNNAMED} on the class path).
 */
module io.rlkernels {
    exports io.rlkernels.tensor;
    exports io.rlkernels.ops;
    exports io.rlkernels.backend;

    requires java.logging;
    requires jcuda;
}
