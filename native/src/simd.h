/*
 * simd.h — width-generic vectors (GCC vector extensions) and the few vector routines the
 * kernels need: exp2, bf16/f16 <-> f32, loads and stores with a scalar tail.
 *
 * Each kernel source is compiled once per instruction-set variant with RLK_W lanes
 * (4 for x86-64, 8 for AVX2, 16 for AVX-512) and RLK_SUFFIX naming its symbols;
 * dispatch.c picks the variant at run time. No -ffast-math: the magic-number rounding
 * below needs IEEE addition, and crtfastmath would change the JVM's MXCSR.
 */
#ifndef RLK_SIMD_H
#define RLK_SIMD_H

#include <float.h>
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#ifndef RLK_W
#error "RLK_W (lanes) must be defined by the build"
#endif
#if RLK_W != 4 && RLK_W != 8 && RLK_W != 16
#error "RLK_W must be 4, 8 or 16"
#endif

#define RLK_CAT_(a, b) a##_##b
#define RLK_CAT(a, b) RLK_CAT_(a, b)
#define RLK_FN(name) RLK_CAT(name, RLK_SUFFIX)

typedef float vf __attribute__((vector_size(RLK_W * 4)));
typedef int32_t vi __attribute__((vector_size(RLK_W * 4)));
typedef uint32_t vu __attribute__((vector_size(RLK_W * 4)));
typedef uint16_t vh __attribute__((vector_size(RLK_W * 2)));
typedef double vd __attribute__((vector_size(RLK_W * 4))); /* half a vf's lanes in double: the same register width */
/* Views of memory at element alignment, for unaligned loads and stores. */
typedef float vf_mem __attribute__((vector_size(RLK_W * 4), aligned(4), may_alias));
typedef uint16_t vh_mem __attribute__((vector_size(RLK_W * 2), aligned(2), may_alias));

static inline vf vf_splat(float x) { return (vf){0} + x; }
static inline vu vu_splat(uint32_t x) { return (vu){0} + x; }
static inline vf vf_bits(vu x) { return (vf)x; }
static inline vu vu_bits(vf x) { return (vu)x; }

/* Lane select: m is all-ones or all-zeros per lane. */
static inline vf vf_select(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

/* MAXPS(a, b) = (a > b) ? a : b in one instruction: where either is NaN the result is b. */
static inline vf vf_maxps(vf a, vf b) {
#if RLK_W == 16
  return (vf)_mm512_max_ps((__m512)a, (__m512)b);
#elif RLK_W == 8
  return (vf)_mm256_max_ps((__m256)a, (__m256)b);
#else
  return (vf)_mm_max_ps((__m128)a, (__m128)b);
#endif
}
/* Running max: a NaN in x is skipped (it reaches the output through the exponentials). */
static inline vf vf_max(vf x, vf running) { return vf_maxps(x, running); }
/* max(a, lo), letting NaN through so that it reaches the output. */
static inline vf vf_clamp_below(vf a, float lo) { return vf_maxps(vf_splat(lo), a); }

static inline float vf_hmax(vf a) {
  float m = a[0];
  for (int i = 1; i < RLK_W; i++) m = a[i] > m ? a[i] : m;
  return m;
}
static inline float vf_hsum(vf a) {
  /* pairwise, so the order does not depend on the compiler's choice */
  for (int w = RLK_W / 2; w >= 1; w /= 2)
    for (int i = 0; i < w; i++) a[i] += a[i + w];
  return a[0];
}
/* a + the lanes of x in double, the low half's lanes added to the high half's: a vf's lanes
   widened without losing a digit (two conversions and two additions, in registers) */
static inline vd vd_add_widened(vd a, vf x) {
  typedef float half __attribute__((vector_size(RLK_W * 2)));
#if RLK_W == 16
  const half lo = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7);
  const half hi = __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
#elif RLK_W == 8
  const half lo = __builtin_shufflevector(x, x, 0, 1, 2, 3), hi = __builtin_shufflevector(x, x, 4, 5, 6, 7);
#else
  const half lo = __builtin_shufflevector(x, x, 0, 1), hi = __builtin_shufflevector(x, x, 2, 3);
#endif
  return a + (__builtin_convertvector(lo, vd) + __builtin_convertvector(hi, vd));
}
static inline double vd_hsum(vd a) {
  for (int w = RLK_W / 4; w >= 1; w /= 2)
    for (int i = 0; i < w; i++) a[i] += a[i + w];
  return a[0];
}

/*
 * Exponentials, base 2. The kernels pass exponents in "units" of 1/RLK_EXP2_UNITS octave and
 * clamp them below at RLK_EXP2_MIN (2^-127, which gives exactly 0): they only raise 2 to
 * non-positive powers (up to rounding), and below 2^-126 nothing matters next to a sum >= 1.
 *
 * With 8 or 16 lanes the fraction is split as j/W + r: 2^(j/W) comes from a W-entry table by one
 * lane permute (vpermps), and 2^r, |r| <= 1/(2W), from a cubic. That keeps the multiply-add
 * pipes, which bound these kernels, at 4 operations per exponential instead of 6. With 4 lanes
 * (no variable permute in SSE) a degree-5 polynomial covers [-0.5, 0.5].
 * Both are fitted for relative error: below 2e-7 (about 1.6 ulp). NaN gives NaN.
 */
#if RLK_W >= 8
#define RLK_EXP2_UNITS ((float)RLK_W)
#else
#define RLK_EXP2_UNITS 1.0f
#endif
#define RLK_EXP2_MIN (-127.0f * RLK_EXP2_UNITS)

static inline vf vf_exp2u(vf x) {
  /* adding 1.5 * 2^23 rounds x to an integer m, which then sits in the low mantissa bits */
  const vf rounded = x + 12582912.0f;
  const vf r = x - (rounded - 12582912.0f); /* in [-0.5, 0.5] units */
  const vi m = (vi)vu_bits(rounded) - 0x4B400000; /* >= -127 * units by the clamp */
#if RLK_W >= 8
#if RLK_W == 16
  const vf table = {0x1.000000p+0f, 0x1.0b5586p+0f, 0x1.172b84p+0f, 0x1.2387a6p+0f, 0x1.306fe0p+0f, 0x1.3dea64p+0f,
                    0x1.4bfdaep+0f, 0x1.5ab07ep+0f, 0x1.6a09e6p+0f, 0x1.7a1148p+0f, 0x1.8ace54p+0f, 0x1.9c4918p+0f,
                    0x1.ae89fap+0f, 0x1.c199bep+0f, 0x1.d5818ep+0f, 0x1.ea4afap+0f}; /* 2^(j/16) */
  const int shift = 4;
  vf p = vf_splat(1.355032600e-05f);
  p = p * r + 9.384151781e-04f;
  p = p * r + 4.332169890e-02f;
#else
  const vf table = {0x1.000000p+0f, 0x1.172b84p+0f, 0x1.306fe0p+0f, 0x1.4bfdaep+0f,
                    0x1.6a09e6p+0f, 0x1.8ace54p+0f, 0x1.ae89fap+0f, 0x1.d5818ep+0f}; /* 2^(j/8) */
  const int shift = 3;
  vf p = vf_splat(1.083910611e-04f);
  p = p * r + 3.754025558e-03f;
  p = p * r + 8.664340526e-02f;
#endif
  p = p * r + 1.0f;
  /* m = n*W + j: 2^(m/W) = 2^n * table[j]; n is added to the table entry's exponent field */
  const vf t = __builtin_shuffle(table, m & (RLK_W - 1));
  return vf_bits(vu_bits(t) + (vu)((m >> shift) << 23)) * p;
#else
  vf p = vf_splat(1.3264727e-3f);
  p = p * r + 9.6715130e-3f;
  p = p * r + 5.5507336e-2f;
  p = p * r + 2.4022242e-1f;
  p = p * r + 6.9314700e-1f;
  p = p * r + 1.0f;
  /* 2^m: m is added to the exponent field of 1.0; m = -127 gives 0 */
  return p * vf_bits((vu)((m + 127) << 23));
#endif
}

/* ---- 16-bit float formats (exact widening; round-to-nearest-even narrowing) ---- */

static inline vf vf_from_bf16(vh h) { return vf_bits(__builtin_convertvector(h, vu) << 16); }

static inline vh vh_bf16_from(vf x) {
  vu w = vu_bits(x);
  vu rounded = (w + 0x7FFFu + ((w >> 16) & 1u)) >> 16;
  vi is_nan = (vi)((w & 0x7FFFFFFFu) > 0x7F800000u);
  vu out = (vu)vf_select(is_nan, vf_bits((w >> 16) | 0x40u), vf_bits(rounded));
  return __builtin_convertvector(out, vh);
}

/* After M. Dukhan's FP16 library: exact for normals, subnormals, infinities and NaN. */
static inline vf vf_from_f16(vh h) {
  vu w = __builtin_convertvector(h, vu) << 16;
  vu sign = w & 0x80000000u;
  vu two_w = w + w;
  vf normalized = vf_bits((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  vf denormalized = vf_bits((two_w >> 17) | (126u << 23)) - 0.5f;
  vi is_denormal = (vi)(two_w < (1u << 27));
  return vf_bits(sign | vu_bits(vf_select(is_denormal, denormalized, normalized)));
}

static inline vh vh_f16_from(vf x) {
  vf absx = vf_bits(vu_bits(x) & 0x7FFFFFFFu);
  vf base = (absx * 0x1.0p+112f) * 0x1.0p-110f;
  vu w = vu_bits(x);
  vu shl1_w = w + w;
  vu sign = w & 0x80000000u;
  vu bias = shl1_w & 0xFF000000u;
  bias = (vu)vf_select((vi)(bias < 0x71000000u), vf_bits(vu_splat(0x71000000u)), vf_bits(bias));
  base = vf_bits((bias >> 1) + 0x07800000u) + base;
  vu bits = vu_bits(base);
  vu nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
  vu out = (vu)vf_select((vi)(shl1_w > 0xFF000000u), vf_bits(vu_splat(0x7E00u)), vf_bits(nonsign));
  return __builtin_convertvector((sign >> 16) | out, vh);
}

/* ---- loads and stores of a whole vector at element offset i ---- */

static inline vf vf_load(const void *base, int dtype, int64_t i) {
  if (dtype == 0) return *(const vf_mem *)((const float *)base + i);
  vh h = *(const vh_mem *)((const uint16_t *)base + i);
  return dtype == 1 ? vf_from_bf16(h) : vf_from_f16(h);
}

static inline void vf_store(void *base, int dtype, int64_t i, vf x) {
  if (dtype == 0) {
    *(vf_mem *)((float *)base + i) = x;
    return;
  }
  *(vh_mem *)((uint16_t *)base + i) = dtype == 1 ? vh_bf16_from(x) : vh_f16_from(x);
}

/* Two vectors of finite floats to bf16 at p[0 .. 2W), rounded to nearest even, in one pack: the
   narrowing of vf_store without its NaN path (5 integer ops a vector, then one pack and one lane
   permute for both, against 14 ops a vector): what the in-place bf16 backward stores, whose every
   value is finite (checked inputs, clamped exponents). A NaN here would not stay a NaN. */
static inline void vh_store_bf16_pair_finite(uint16_t *p, vf a, vf b) {
#if RLK_W == 8 || RLK_W == 16
  const vu wa = vu_bits(a), wb = vu_bits(b);
  const vu ra = (wa + 0x7FFFu + ((wa >> 16) & 1u)) >> 16, rb = (wb + 0x7FFFu + ((wb >> 16) & 1u)) >> 16;
#if RLK_W == 8
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32((__m256i)ra, (__m256i)rb), 0xD8);
  _mm256_storeu_si256((__m256i *)p, packed);
#else
  const __m512i packed = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7),
                                                  _mm512_packus_epi32((__m512i)ra, (__m512i)rb));
  _mm512_storeu_si512((void *)p, packed);
#endif
#else
  /* SSE2 has no unsigned 32-to-16 pack: the general path */
  *(vh_mem *)p = vh_bf16_from(a);
  *(vh_mem *)(p + RLK_W) = vh_bf16_from(b);
#endif
}

/* A streaming (non-temporal) store of an aligned vector: to memory, without reading the line first.
   Weakly ordered: an _mm_sfence() must follow before other stores to the same memory are relied on. */
static inline void vf_stream(float *p, vf x) {
#if RLK_W == 16
  _mm512_stream_ps(p, (__m512)x);
#elif RLK_W == 8
  _mm256_stream_ps(p, (__m256)x);
#else
  _mm_stream_ps(p, (__m128)x);
#endif
}

/* A partial vector: lanes past `count` read as `fill`. */
static inline vf vf_load_partial(const void *base, int dtype, int64_t i, int count, float fill) {
  vf x = vf_splat(fill);
  if (dtype == 0) {
    memcpy(&x, (const float *)base + i, (size_t)count * 4);
    return x;
  }
  vh h = {0};
  memcpy(&h, (const uint16_t *)base + i, (size_t)count * 2);
  vf y = dtype == 1 ? vf_from_bf16(h) : vf_from_f16(h);
  for (int l = 0; l < count; l++) x[l] = y[l];
  return x;
}

static inline void vf_store_partial(void *base, int dtype, int64_t i, int count, vf x) {
  if (dtype == 0) {
    memcpy((float *)base + i, &x, (size_t)count * 4);
    return;
  }
  vh h = dtype == 1 ? vh_bf16_from(x) : vh_f16_from(x);
  memcpy((uint16_t *)base + i, &h, (size_t)count * 2);
}

static inline float scalar_load(const void *base, int dtype, int64_t i) {
  return vf_load_partial(base, dtype, i, 1, 0.0f)[0];
}

#endif
