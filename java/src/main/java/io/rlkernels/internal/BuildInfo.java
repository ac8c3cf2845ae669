package io.rlkernels.internal;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;

/** The library's version, as the build wrote it into the jar (io/rlkernels/version.properties). Not API. */
public final class BuildInfo {
    private static final String VERSION = read();

    private BuildInfo() {}

    /** The Maven version of the library this class came from, e.g. 0.1.0-SNAPSHOT; "unknown" if the file is missing. */
    public static String version() {
        return VERSION;
    }

    private static String read() {
        try (InputStream in = BuildInfo.class.getResourceAsStream("/io/rlkernels/version.properties")) {
            if (in == null) {
                return "unknown";
            }
            Properties p = new Properties();
            p.load(in);
            String v = p.getProperty("version", "unknown");
            return v.contains("${") ? "unknown" : v;
        } catch (IOException e) {
            return "unknown";
        }
    }
}
