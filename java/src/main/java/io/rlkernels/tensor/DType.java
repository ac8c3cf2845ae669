package io.rlkernels.tensor;

/**
 * Element types. Floating-point inputs may be f32, bf16 or f16 (16-bit types are held as raw
 * 16-bit words); every floating-point output is f32. {@link #code()} is the value the native and
 * CUDA kernels receive (see native/include/rlkernels.h).
 */
public enum DType {
    /** IEEE single precision (4 bytes). */
    F32(4, 0, "float32"),
    /** bfloat16: 8 exponent bits, 7 mantissa bits (2 bytes). */
    BF16(2, 1, "bfloat16"),
    /** IEEE half precision (2 bytes). */
    F16(2, 2, "float16"),
    /** Statistics and other f64 results (never logits). */
    F64(8, 3, "float64"),
    /** 32-bit signed integers (token ids, sequence and group ids). */
    I32(4, 0, "int32"),
    /** 64-bit signed integers (token ids, as PyTorch stores them). */
    I64(8, 1, "int64"),
    /** Unsigned bytes (masks: 0 or 1). */
    U8(1, 2, "uint8");

    private final int byteSize;
    private final int code;
    private final String displayName;

    DType(int byteSize, int code, String displayName) {
        this.byteSize = byteSize;
        this.code = code;
        this.displayName = displayName;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** The kernels' code for this type: enum rlk_dtype for floats, enum rlk_itype for integers. */
    public int code() {
        return code;
    }

    /** Whether this is F32, BF16 or F16 (BF16 and F16: 16-bit floats, widened exactly to f32). */
    public boolean isFloatingPoint() {
        return this == F32 || this == BF16 || this == F16 || this == F64;
    }

    /** Whether this is I32, I64 or U8. */
    public boolean isInteger() {
        return !isFloatingPoint();
    }

    /** Short lower-case name used in kernel names and messages: f32, bf16, f16, i32, i64, u8. */
    public String shortName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }

    @Override
    public String toString() {
        return displayName;
    }
}
