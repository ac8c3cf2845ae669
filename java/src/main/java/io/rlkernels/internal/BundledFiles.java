package io.rlkernels.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Optional;

/**
 * Files the build puts inside the jar (the native library, the CUDA fatbin). Read in place when
 * the classes come from a directory; extracted once to a private temporary folder when they come
 * from a jar, because the dynamic loader needs a real file.
 */
public final class BundledFiles {
    private BundledFiles() {}

    private static Path extractDir;

    /** The resource's bytes, or empty if the build did not produce it. */
    public static Optional<byte[]> read(String resource) {
        try (InputStream in = BundledFiles.class.getResourceAsStream(resource)) {
            return in == null ? Optional.empty() : Optional.of(in.readAllBytes());
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + resource, e);
        }
    }

    /** A file holding the resource, or empty if the build did not produce it. */
    public static synchronized Optional<Path> file(String resource) {
        URL url = BundledFiles.class.getResource(resource);
        if (url == null) {
            return Optional.empty();
        }
        try {
            if ("file".equals(url.getProtocol())) {
                return Optional.of(Path.of(url.toURI()));
            }
            if (extractDir == null) {
                extractDir = Files.createTempDirectory("rlkernels-");
                extractDir.toFile().deleteOnExit();
            }
            Path target = extractDir.resolve(resource.substring(resource.lastIndexOf('/') + 1));
            if (!Files.exists(target)) {
                try (InputStream in = url.openStream()) {
                    Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
                }
                target.toFile().deleteOnExit();
            }
            return Optional.of(target);
        } catch (IOException e) {
            throw new UncheckedIOException("extracting " + resource, e);
        } catch (URISyntaxException e) {
            throw new IllegalStateException("bad resource URL " + url, e);
        }
    }
}
