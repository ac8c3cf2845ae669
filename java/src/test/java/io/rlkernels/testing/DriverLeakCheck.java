package io.rlkernels.testing;

import io.rlkernels.backend.cuda.internal.CudaProbe;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Every test, on the emulated CUDA driver: what the test's cuda backends left behind when their
 * last primary-context reference was released (allocations, modules, streams, events) fails it.
 * The driver counts them (emu_driver_take_leaks); where the system's real driver runs, or the
 * cuda backend never opened, there is nothing to ask.
 */
public final class DriverLeakCheck implements AfterEachCallback {
    private static MethodHandle take;

    /** The leaks counted since the last call, resetting the count; 0 without the emulated driver. */
    public static synchronized long takeLeaks() {
        if (!CudaProbe.emulatedDriver() || !CudaProbe.result().available()) {
            return 0;
        }
        try {
            if (take == null) {
                SymbolLookup driver = SymbolLookup.libraryLookup("libcuda.so.1", Arena.global());
                take = Linker.nativeLinker().downcallHandle(driver.find("emu_driver_take_leaks").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_LONG));
            }
            return (long) take.invokeExact();
        } catch (Throwable e) {
            throw new AssertionError("the emulated driver's leak count", e);
        }
    }

    @Override
    public void afterEach(ExtensionContext context) {
        long leaks = takeLeaks();
        if (leaks > 0) {
            throw new AssertionError(context.getDisplayName() + ": the cuda backend was closed with " + leaks
                    + " driver objects still live (allocations, modules, streams or events; the driver said which on stderr)");
        }
    }
}
