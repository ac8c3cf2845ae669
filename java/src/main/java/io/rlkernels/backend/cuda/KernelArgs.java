package io.rlkernels.backend.cuda;

import java.util.ArrayList;
import java.util.List;

/**
 * The parameters of one kernel launch, in the order of the kernel's signature. Pointers are raw
 * 64-bit device addresses; {@code i64} is C's {@code long long}.
 */
public final class KernelArgs {

    /** One parameter: its kind and its value. */
    public sealed interface Arg permits Ptr, I32, I64, F32, F64 {}

    public record Ptr(long address) implements Arg {}

    public record I32(int value) implements Arg {}

    public record I64(long value) implements Arg {}

    public record F32(float value) implements Arg {}

    public record F64(double value) implements Arg {}

    private final List<Arg> args = new ArrayList<>();

    public KernelArgs ptr(long address) {
        args.add(new Ptr(address));
        return this;
    }

    public KernelArgs i32(int value) {
        args.add(new I32(value));
        return this;
    }

    public KernelArgs i64(long value) {
        args.add(new I64(value));
        return this;
    }

    public KernelArgs f32(float value) {
        args.add(new F32(value));
        return this;
    }

    public KernelArgs f64(double value) {
        args.add(new F64(value));
        return this;
    }

    public List<Arg> list() {
        return List.copyOf(args);
    }
}
