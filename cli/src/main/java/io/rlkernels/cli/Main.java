package io.rlkernels.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code rlkernels}: the trainer, backend information, one op on .npy files, and a demo (ARCHITECTURE §6). */
@Command(name = "rlkernels", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Kernels for the hot loops of RL fine-tuning of language models.",
        subcommands = {TrainCommand.class, InfoCommand.class, OpCommand.class, DemoCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns its exit code (0 ok, 2 bad usage or input, 3 a bug: {@link #report}). */
    public static int run(String... args) {
        if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
            System.setProperty("java.util.logging.SimpleFormatter.format", "%5$s%6$s%n");
        }
        CommandLine cli = new CommandLine(new Main());
        cli.setExecutionExceptionHandler((e, cmd, parsed) -> report(e, cmd.getErr()));
        CommandLine op = cli.getSubcommands().get("op");
        OpCommand opCommand = op.getCommand();
        // op --help lists the ops, op NAME --help that op's files and params (OpDocs, the README's table)
        op.getHelpSectionMap().put(CommandLine.Model.UsageMessageSpec.SECTION_KEY_FOOTER, help -> OpDocs.help(opCommand.name));
        return cli.execute(args);
    }

    /**
     * Bad input (a refused argument, an unreadable file, memory that cannot be had) is one line,
     * "error: ..." naming what was wrong, and exit code 2: no stack trace. Anything else is a bug in
     * this program: its trace, with a line asking to report it, and exit code 3.
     */
    static int report(Throwable e, PrintWriter err) {
        if (e instanceof IllegalArgumentException || e instanceof IllegalStateException || e instanceof IOException
                || e instanceof UncheckedIOException || e instanceof OutOfMemoryError) {
            String m = e instanceof UncheckedIOException u && u.getCause() != null ? u.getCause().getMessage() : e.getMessage();
            err.println("error: " + (e instanceof OutOfMemoryError ? "out of memory: " : "") + m);
            err.flush();
            return 2;
        }
        err.println("internal error: this is a bug in rlkernels, not in your input; please report it with the command line"
                + " and the trace below");
        e.printStackTrace(err);
        err.flush();
        return 3;
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"rlkernels " + io.rlkernels.internal.BuildInfo.version()};
        }
    }
}
