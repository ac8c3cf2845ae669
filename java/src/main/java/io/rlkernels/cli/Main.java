package io.rlkernels.cli;

import java.io.IOException;
import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code rlkernels}: the trainer, backend information, one op on .npy files, and a demo (DESIGN §6). */
@Command(name = "rlkernels", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Kernels for the hot loops of RL fine-tuning of language models.",
        subcommands = {TrainCommand.class, InfoCommand.class, OpCommand.class, DemoCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns its exit code (0 ok, 1 usage, 2 bad input or failure). */
    public static int run(String... args) {
        if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
            System.setProperty("java.util.logging.SimpleFormatter.format", "%5$s%6$s%n");
        }
        CommandLine cli = new CommandLine(new Main());
        cli.setExecutionExceptionHandler((e, cmd, parsed) -> {
            if (e instanceof IllegalArgumentException || e instanceof IllegalStateException || e instanceof IOException) {
                PrintWriter err = cmd.getErr();
                err.println("error: " + e.getMessage());
                err.flush();
                return 2;
            }
            throw e;
        });
        return cli.execute(args);
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"rlkernels " + (v == null ? "(development build)" : v)};
        }
    }
}
