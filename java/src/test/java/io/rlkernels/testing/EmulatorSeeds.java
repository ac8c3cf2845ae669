package io.rlkernels.testing;

import io.rlkernels.backend.emulated.EmulatedLauncher;
import java.util.Optional;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * Gives every test its own sequence of emulator schedules and, when the test fails, prints the
 * property that replays them: {@code -Drlk.emu.seed=0x...}. Registered for every test through
 * META-INF/services (junit-platform.properties turns autodetection on).
 */
public final class EmulatorSeeds implements BeforeEachCallback, TestWatcher {
    private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(EmulatorSeeds.class);

    @Override
    public void beforeEach(ExtensionContext context) {
        long base = EmulatedLauncher.initialBase();
        EmulatedLauncher.startSequence(base);
        context.getStore(NS).put("base", base);
    }

    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
        Long base = context.getStore(NS).get("base", Long.class);
        if (base != null) {
            System.err.printf("%s failed; its emulated launches replay with -Drlk.emu.seed=0x%x%n",
                    context.getDisplayName(), base);
        }
    }

    @Override
    public void testDisabled(ExtensionContext context, Optional<String> reason) {}
}
