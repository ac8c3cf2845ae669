package io.rlkernels.backend.emulated.internal;

import io.rlkernels.internal.BundledFiles;
import io.rlkernels.internal.Contract;
import io.rlkernels.internal.Downcalls;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * FFM bindings of an emulator module (cuda-kernels/emu/runtime.cpp): the kernel sources compiled
 * for the CPU, plus the runtime that runs them. The build packs the project's kernels into the jar
 * as librlkernels_emu.so; tests load other modules (the emulator's self-test) the same way.
 */
public final class EmulatorLibrary {
    /** The project's kernels. */
    public static final String KERNELS = "/io/rlkernels/emu/librlkernels_emu.so";

    private static final ConcurrentHashMap<String, Object> LOADED = new ConcurrentHashMap<>();

    private final String resource;
    private final MethodHandle launch;
    private final MethodHandle malloc;
    private final MethodHandle free;
    private final MethodHandle allocationOf;
    private final MethodHandle kernelCount;
    private final MethodHandle kernelName;
    private final MethodHandle workers;

    private EmulatorLibrary(String resource, SymbolLookup lib) {
        this.resource = resource;
        Linker linker = Linker.nativeLinker();
        launch = linker.downcallHandle(find(lib, "emu_launch"), FunctionDescriptor.of(JAVA_INT,
                ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG));
        malloc = linker.downcallHandle(find(lib, "emu_malloc"), FunctionDescriptor.of(ADDRESS, JAVA_LONG));
        free = linker.downcallHandle(find(lib, "emu_free"), FunctionDescriptor.of(JAVA_INT, ADDRESS));
        allocationOf = linker.downcallHandle(find(lib, "emu_allocation_of"), FunctionDescriptor.of(JAVA_INT,
                JAVA_LONG, ADDRESS, ADDRESS));
        kernelCount = linker.downcallHandle(find(lib, "emu_kernel_count"), FunctionDescriptor.of(JAVA_INT));
        kernelName = linker.downcallHandle(find(lib, "emu_kernel_name"), FunctionDescriptor.of(ADDRESS, JAVA_INT));
        workers = linker.downcallHandle(find(lib, "emu_workers"), FunctionDescriptor.of(JAVA_INT));
    }

    private static MemorySegment find(SymbolLookup lib, String name) {
        return lib.find(name).orElseThrow(() -> new IllegalStateException("emulator module lacks the symbol " + name));
    }

    /** The module built from {@code resource}, or empty ({@link #unavailableReason} says why). */
    public static Optional<EmulatorLibrary> get(String resource) {
        return LOADED.computeIfAbsent(resource, EmulatorLibrary::load) instanceof EmulatorLibrary l
                ? Optional.of(l) : Optional.empty();
    }

    public static String unavailableReason(String resource) {
        return LOADED.computeIfAbsent(resource, EmulatorLibrary::load) instanceof String reason ? reason : null;
    }

    private static Object load(String resource) {
        try {
            Optional<Path> file = BundledFiles.file(resource);
            if (file.isEmpty()) {
                return resource.substring(resource.lastIndexOf('/') + 1)
                        + " is not in the jar: the build did not compile the kernels for the emulator (is g++ installed?)";
            }
            // Loaded for the life of the process: global arena.
            SymbolLookup lib = SymbolLookup.libraryLookup(file.get(), Arena.global());
            int crc = (int) Linker.nativeLinker().downcallHandle(find(lib, "emu_contract_crc"),
                    FunctionDescriptor.of(JAVA_INT)).invokeExact();
            String mismatch = Contract.mismatch(resource.substring(resource.lastIndexOf('/') + 1), crc);
            return mismatch != null ? mismatch : new EmulatorLibrary(resource, lib);
        } catch (IllegalCallerException e) {
            return "native access is disabled: run java with --enable-native-access=ALL-UNNAMED";
        } catch (Throwable e) {
            return "cannot load the emulator module " + resource + ": " + e.getMessage();
        }
    }

    public String resource() {
        return resource;
    }

    /** Worker threads: blocks that run at once. */
    public int workers() {
        try {
            return (int) workers.invokeExact();
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    public List<String> kernels() {
        try {
            int n = (int) kernelCount.invokeExact();
            List<String> names = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                names.add(((MemorySegment) kernelName.invokeExact(i)).reinterpret(256).getString(0));
            }
            return names;
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /** Host memory standing for device memory: 256-byte aligned, poisoned with 0xFF (NaN). */
    public long malloc(long bytes) {
        try {
            return ((MemorySegment) malloc.invokeExact(bytes)).address();
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /**
     * Frees an allocation: 0; 1 (and nothing freed) when the address is not a live allocation; 2
     * when it was freed but a kernel had written past its end, inside its 256-byte rounding.
     */
    public int free(long address) {
        try {
            return (int) free.invokeExact(MemorySegment.ofAddress(address));
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /** The live allocation holding {@code address}: {start, bytes}, or null. */
    public long[] allocationOf(long address) {
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment start = arena.allocate(JAVA_LONG);
            MemorySegment bytes = arena.allocate(JAVA_LONG);
            int found = (int) allocationOf.invokeExact(address, start, bytes);
            return found == 0 ? null : new long[] {start.get(JAVA_LONG, 0), bytes.get(JAVA_LONG, 0)};
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }

    /** emu_launch; returns 0, or non-zero with a message in {@code error}. */
    public int launch(MemorySegment name, int gx, int gy, int gz, int bx, int by, int bz, int sharedBytes,
                      MemorySegment args, MemorySegment argSizes, int nargs, long seed, MemorySegment error) {
        try {
            return (int) launch.invokeExact(name, gx, gy, gz, bx, by, bz, sharedBytes, args, argSizes, nargs, seed,
                    error, error.byteSize());
        } catch (Throwable t) {
            throw Downcalls.rethrow(t);
        }
    }
}
