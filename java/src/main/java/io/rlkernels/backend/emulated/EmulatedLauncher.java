package io.rlkernels.backend.emulated;

import io.rlkernels.backend.cuda.CudaException;
import io.rlkernels.backend.cuda.KernelArgs;
import io.rlkernels.backend.cuda.KernelLauncher;
import io.rlkernels.backend.cuda.LaunchShape;
import io.rlkernels.backend.emulated.internal.EmulatorLibrary;
import io.rlkernels.internal.SplitMix64;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The CUDA backend's launcher on the CPU: the same kernel sources, compiled with the emulator
 * (cuda-kernels/emu), launched through FFM; device memory is host memory.
 *
 * <p>Schedules are seeded: launch k of a sequence uses a seed mixed from the sequence's base and
 * k. The base is {@code -Drlk.emu.seed=S} when given, else random; tests start a sequence per
 * test ({@link #startSequence}) and print its base when they fail, so that one test replays
 * exactly with that property. A failed launch names the base too.
 */
public final class EmulatedLauncher implements KernelLauncher {
    private static final Object SEEDS = new Object();
    private static long base = initialBase();
    private static long launches;

    private final EmulatorLibrary lib;

    public EmulatedLauncher(EmulatorLibrary lib) {
        this.lib = lib;
    }

    public EmulatorLibrary library() {
        return lib;
    }

    @Override
    public String describe() {
        return "CUDA emulator on the CPU (" + lib.workers() + " workers, randomised schedule), " + lib.kernels().size()
                + " kernels";
    }

    @Override
    public long allocate(long bytes) {
        long address = lib.malloc(bytes);
        if (address == 0) {
            throw new CudaException("emu_malloc(" + bytes + " bytes)", 2, "out of memory");
        }
        return address;
    }

    @Override
    public void free(long address) {
        int status = lib.free(address);
        if (status != 0) {
            throw new CudaException("emu_free(0x" + Long.toHexString(address) + ")", status,
                    status == 1 ? "not a live allocation" : "a kernel wrote past the end of this allocation");
        }
    }

    @Override
    public void checkForeign(String arg, long address, long bytes) {
        long[] a = lib.allocationOf(address);
        if (a == null) {
            throw io.rlkernels.internal.Check.fail(arg, "device memory of " + bytes + " bytes inside one allocation of this device",
                    "address 0x" + Long.toHexString(address) + ", which no live allocation holds");
        }
        if (bytes > a[0] + a[1] - address) {
            throw io.rlkernels.internal.Check.fail(arg, "device memory of " + bytes + " bytes inside one allocation of this device",
                    "address 0x" + Long.toHexString(address) + " with " + (a[0] + a[1] - address) + " bytes left in its allocation of "
                            + a[1] + " bytes at 0x" + Long.toHexString(a[0]));
        }
    }

    @Override
    public void copyToDevice(long dst, MemorySegment src, long bytes) {
        MemorySegment.copy(src, 0, MemorySegment.ofAddress(dst).reinterpret(bytes), 0, bytes);
    }

    @Override
    public void copyToHost(MemorySegment dst, long src, long bytes) {
        MemorySegment.copy(MemorySegment.ofAddress(src).reinterpret(bytes), 0, dst, 0, bytes);
    }

    /** {@code rlk.emu.seed} when set, else a random base. */
    public static long initialBase() {
        String fixed = System.getProperty("rlk.emu.seed");
        return fixed != null ? Long.decode(fixed) : new SplittableRandom().nextLong();
    }

    /** Starts a sequence of launch seeds from {@code base}. */
    public static void startSequence(long base) {
        synchronized (SEEDS) {
            EmulatedLauncher.base = base;
            launches = 0;
        }
    }

    /** The base of the current sequence. */
    public static long sequenceBase() {
        synchronized (SEEDS) {
            return base;
        }
    }

    private record Seed(long seed, long base, long index) {}

    private static Seed nextSeed() {
        synchronized (SEEDS) {
            long k = launches++;
            return new Seed(SplitMix64.mix(base + (k + 1) * SplitMix64.GOLDEN_GAMMA), base, k);
        }
    }

    @Override
    public void launch(String kernel, LaunchShape shape, KernelArgs args) {
        Seed seed = nextSeed();
        List<KernelArgs.Arg> list = args.list();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment slots = arena.allocate(8L * Math.max(1, list.size()), 8);
            MemorySegment sizes = arena.allocate(4L * Math.max(1, list.size()), 4);
            for (int i = 0; i < list.size(); i++) {
                long at = 8L * i;
                int size = switch (list.get(i)) {
                    case KernelArgs.Ptr p -> {
                        slots.set(ValueLayout.JAVA_LONG, at, p.address());
                        yield 8;
                    }
                    case KernelArgs.I64 v -> {
                        slots.set(ValueLayout.JAVA_LONG, at, v.value());
                        yield 8;
                    }
                    case KernelArgs.I32 v -> {
                        slots.set(ValueLayout.JAVA_INT, at, v.value());
                        yield 4;
                    }
                    case KernelArgs.F32 v -> {
                        slots.set(ValueLayout.JAVA_FLOAT, at, v.value());
                        yield 4;
                    }
                    case KernelArgs.F64 v -> {
                        slots.set(ValueLayout.JAVA_DOUBLE, at, v.value());
                        yield 8;
                    }
                };
                sizes.setAtIndex(ValueLayout.JAVA_INT, i, size);
            }
            MemorySegment error = arena.allocate(2048);
            int rc = lib.launch(arena.allocateFrom(kernel), shape.gridX(), 1, 1, shape.blockX(), 1, 1, shape.sharedBytes(),
                    slots, sizes, list.size(), seed.seed(), error);
            if (rc != 0) {
                throw new CudaException("emu_launch(" + kernel + ")", rc, error.getString(0) + "; replay with -Drlk.emu.seed=0x"
                        + Long.toHexString(seed.base()) + " (launch " + seed.index() + " of that sequence)");
            }
        }
    }

    @Override
    public void synchronize() {
        // launches run to completion before they return
    }

    @Override
    public void close() {
        // the module stays loaded for the process; there is no context to release
    }
}
