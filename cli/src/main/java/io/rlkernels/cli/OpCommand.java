package io.rlkernels.cli;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.internal.Check;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code rlkernels op NAME --backend B --in DIR --out DIR [--param k=v]...} */
@Command(name = "op", mixinStandardHelpOptions = true,
        description = {"Runs one op on .npy files in --in and writes .npy outputs to --out.",
                "This is how to check parity with a PyTorch pipeline: dump its tensors, run here, compare.",
                "Inputs are never written; outputs appear only when all are complete.",
                "Ops: logprobs, linear_logprobs, advantages, gae, policy_loss, bgpo."})
final class OpCommand implements Callable<Integer> {
    static final List<CliOp> OPS = List.of(new LogProbsOp(), new LinearLogProbsOp(), new AdvantagesOp(), new GaeOp(), new PolicyLossOp(), new BgpoOp());

    @Parameters(index = "0", paramLabel = "NAME", description = "the op: logprobs, linear_logprobs, advantages, gae, policy_loss or bgpo")
    String name;

    @Option(names = "--backend", defaultValue = "auto", description = "auto, reference, native, cuda or emulated (the CUDA sources on the CPU, for tests) (default: ${DEFAULT-VALUE})")
    String backend;

    @Option(names = "--in", required = true, paramLabel = "DIR", description = "folder with the op's input .npy files")
    Path in;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "folder for the outputs (created)")
    Path out;

    @Option(names = "--param", paramLabel = "KEY=VALUE", description = "an op parameter, e.g. temperature=0.7 (each key once)")
    List<String> params;

    @Override
    public Integer call() throws Exception {
        CliOp op = find(name);
        Params p = new Params(params, op.paramKeys());
        try (InputFiles inputs = new InputFiles(in); OutputFiles outputs = new OutputFiles(out, inputs);
             Backend b = Backends.open(backend)) {
            long start = System.nanoTime();
            op.run(b, inputs, outputs, p);
            outputs.commit();
            System.out.printf("%s on %s: %.1f ms, outputs in %s%n", op.name(), b.description(),
                    (System.nanoTime() - start) / 1e6, out);
        }
        return 0;
    }

    static CliOp find(String name) {
        return OPS.stream().filter(o -> o.name().equals(name)).findFirst().orElseThrow(() -> Check.fail("NAME",
                "an op among " + OPS.stream().map(CliOp::name).collect(Collectors.joining(", ")), name));
    }
}
