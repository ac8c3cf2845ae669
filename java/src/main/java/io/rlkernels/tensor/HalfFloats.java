package io.rlkernels.tensor;

/**
 * The one place that converts between f32 and the 16-bit float formats on the Java side.
 * Widening is exact; narrowing rounds to nearest even (as the kernels do).
 */
public final class HalfFloats {
    private HalfFloats() {}

    /** The float a bfloat16 holds (exact). */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** {@code x} rounded to bfloat16, to nearest even (NaN stays NaN). */
    public static short floatToBf16(float x) {
        int w = Float.floatToRawIntBits(x);
        if ((w & 0x7FFFFFFF) > 0x7F800000) {
            return (short) ((w >>> 16) | 0x40); // quiet NaN, sign kept
        }
        return (short) ((w + 0x7FFF + ((w >>> 16) & 1)) >>> 16);
    }

    /** The float a float16 holds (exact). */
    public static float f16ToFloat(short bits) {
        return Float.float16ToFloat(bits);
    }

    /** {@code x} rounded to float16, to nearest even (overflow to infinity, NaN stays NaN). */
    public static short floatToF16(float x) {
        return Float.floatToFloat16(x);
    }

    /** Rounds x to the nearest value representable in {@code dtype} (identity for f32). */
    public static float roundTo(DType dtype, float x) {
        return switch (dtype) {
            case F32 -> x;
            case BF16 -> bf16ToFloat(floatToBf16(x));
            case F16 -> f16ToFloat(floatToF16(x));
            default -> throw new IllegalArgumentException("dtype: expected a floating-point type, found " + dtype);
        };
    }
}
