package io.rlkernels.cli;

import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@code --out} folder of an op, written so that a failure leaves nothing behind: each output
 * goes to a temporary file beside its target and all are renamed into place by {@link #commit}
 * only when every one is complete; a failed write (a full disk, no permission) names the file and
 * removes the temporaries. An output whose path resolves to an input (the same file, through a
 * symbolic or a hard link) is refused before anything is written: the command never replaces
 * or truncates what it reads.
 */
final class OutputFiles implements AutoCloseable {
    /** Writes one output's bytes to a file (replaceable in tests, to fail like a full disk). */
    @FunctionalInterface
    interface Writer {
        void write(Path file) throws IOException;
    }

    private final Path dir;
    private final InputFiles inputs; // null when the command reads no file
    private final Map<Path, Path> pending = new LinkedHashMap<>(); // target -> temporary

    OutputFiles(Path dir, InputFiles inputs) throws IOException {
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new IOException("--out: expected a folder (created if absent), found a file that is not a folder: " + dir);
        }
        Files.createDirectories(dir);
        this.dir = dir;
        this.inputs = inputs;
    }

    void npy(String name, HostTensor t) throws IOException {
        write(name, file -> Npy.write(file, t));
    }

    void text(String name, String content) throws IOException {
        write(name, file -> Files.writeString(file, content, StandardCharsets.UTF_8));
    }

    /** Writes an output to its temporary file now (so its memory can go); it appears at {@link #commit}. */
    void write(String name, Writer writer) throws IOException {
        Path target = dir.resolve(name);
        refuseInputs(target);
        Path tmp;
        try {
            tmp = Files.createTempFile(dir, "." + name + ".", ".tmp",
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-r--r--")));
        } catch (IOException e) {
            throw failure(target, e);
        }
        pending.put(target, tmp);
        try {
            writer.write(tmp);
        } catch (IOException | UncheckedIOException e) {
            throw failure(target, e);
        }
    }

    /** Renames every output into place; afterwards nothing is pending. */
    List<Path> commit() throws IOException {
        for (Path target : pending.keySet()) {
            refuseInputs(target); // again: the folders may have changed meanwhile
        }
        List<Path> done = new ArrayList<>();
        for (Map.Entry<Path, Path> e : pending.entrySet()) {
            try {
                Files.move(e.getValue(), e.getKey(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (IOException ex) {
                throw new IOException(e.getKey() + ": cannot rename the finished output into place (" + reason(ex) + ")"
                        + (done.isEmpty() ? "; no output was replaced" : "; already in place: " + done), ex);
            }
            done.add(e.getKey());
        }
        pending.clear();
        return done;
    }

    private void refuseInputs(Path target) throws IOException {
        if (!Files.exists(target)) {
            return; // nothing there, or a dangling link, which the rename replaces (never its target)
        }
        if (!Files.isRegularFile(target)) {
            throw new IOException(target + ": expected a regular file or nothing to replace, found "
                    + (Files.isDirectory(target) ? "a directory" : "a FIFO, socket or device"));
        }
        for (Path input : inputs == null ? java.util.List.<Path>of() : inputs.files()) {
            if (Files.isSameFile(target, input)) {
                throw new IOException(target + ": expected an output path, found the input " + input
                        + (Files.isSymbolicLink(target) ? " (through a symbolic link)" : " (the same file)")
                        + ": writing it would destroy the input; choose another --out");
            }
        }
    }

    private IOException failure(Path target, Exception e) {
        deleteTemporaries();
        return new IOException(target + ": cannot write (" + reason(e) + "); no output was written", e);
    }

    private static String reason(Exception e) {
        Throwable t = e instanceof UncheckedIOException u ? u.getCause() : e;
        String m = t.getMessage();
        if (t instanceof java.nio.file.FileSystemException f && f.getReason() != null) {
            m = f.getReason();
        }
        return m == null ? t.getClass().getSimpleName() : m;
    }

    private void deleteTemporaries() {
        for (Path tmp : pending.values()) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // best effort: the original failure is what the user needs to see
            }
        }
        pending.clear();
    }

    /** Removes what was not committed (after a failure anywhere in the op). */
    @Override
    public void close() {
        deleteTemporaries();
    }
}
