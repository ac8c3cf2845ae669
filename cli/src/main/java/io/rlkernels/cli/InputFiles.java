package io.rlkernels.cli;

import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The {@code --in} folder of an op: each .npy it reads is mapped read-only (never copied, never
 * written) and remembered, so that {@link OutputFiles} can refuse to replace it.
 */
final class InputFiles implements AutoCloseable {
    private final Path dir;
    private final Arena arena = Arena.ofShared();
    private final List<Path> read = new ArrayList<>();

    InputFiles(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            arena.close();
            throw new IOException("--in: expected a folder with the op's .npy inputs, found "
                    + (Files.exists(dir, LinkOption.NOFOLLOW_LINKS) ? "a file that is not a folder: " : "nothing at ") + dir);
        }
        this.dir = dir;
    }

    /** A required input. */
    HostTensor npy(String name) throws IOException {
        Path file = dir.resolve(name);
        HostTensor t = Npy.read(file, arena);
        read.add(file);
        return t;
    }

    /** An optional input, or null when the file is absent. */
    HostTensor optionalNpy(String name) throws IOException {
        return Files.exists(dir.resolve(name), LinkOption.NOFOLLOW_LINKS) ? npy(name) : null;
    }

    /** The files read so far. */
    List<Path> files() {
        return List.copyOf(read);
    }

    @Override
    public void close() {
        arena.close();
    }
}
