// common.cuh — what every kernel shares: 16-bit float conversions, 16-byte vector loads,
// streaming loads, and one block-wide reduction.
//
// Only plain CUDA C++ is used (no inline PTX), so the same source also compiles for the CPU
// emulator (cuda-kernels/emu). Where a hardware intrinsic is faster it is used under
// __CUDA_ARCH__ and the portable bit-level form is the readable specification beside it.
#pragma once

#include <stdint.h>

#include "../native/include/rlk_contract.h"  // codes, stats slots, shared constants: declared once
#include "../native/include/rlk_math.h"      // the per-token math, shared with native/src

#define RLK_LOG2E 1.4426950408889634f
#define RLK_LN2 0.6931471805599453f


// ---- element types: f32, bf16 and f16 (the latter two held as raw 16-bit words) ----

struct bf16_t { uint16_t bits; };
struct f16_t { uint16_t bits; };

__device__ __forceinline__ float bits_as_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}

__device__ __forceinline__ uint32_t float_as_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
#endif
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16_t x) { return bits_as_float((uint32_t)x.bits << 16); }
__device__ __forceinline__ float to_float(f16_t x) {
#ifdef __CUDA_ARCH__
  return __half2float(__ushort_as_half(x.bits));
#else
  // exact widening (after M. Dukhan's FP16 library): normals, subnormals, inf, NaN
  const uint32_t w = (uint32_t)x.bits << 16, sign = w & 0x80000000u, two_w = w + w;
  const float normalized = bits_as_float((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float denormalized = bits_as_float((two_w >> 17) | (126u << 23)) - 0.5f;
  return bits_as_float(sign | float_as_bits(two_w < (1u << 27) ? denormalized : normalized));
#endif
}

/* Element i of f32 (dtype 0), bf16 (1) or f16 (2) memory, as f32 (exact). */
__device__ __forceinline__ float load_as_float(const void *p, int dtype, long long i) {
  if (dtype == 0) return static_cast<const float *>(p)[i];
  if (dtype == 1) return to_float(static_cast<const bf16_t *>(p)[i]);
  return to_float(static_cast<const f16_t *>(p)[i]);
}

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16_t from_float<bf16_t>(float x) {
  // round to nearest even; NaN stays a (quiet) NaN
  const uint32_t w = float_as_bits(x);
  if ((w & 0x7FFFFFFFu) > 0x7F800000u) return bf16_t{(uint16_t)((w >> 16) | 0x40u)};
  return bf16_t{(uint16_t)((w + 0x7FFFu + ((w >> 16) & 1u)) >> 16)};
}
template <> __device__ __forceinline__ f16_t from_float<f16_t>(float x) {
#ifdef __CUDA_ARCH__
  return f16_t{__half_as_ushort(__float2half_rn(x))};
#else
  // round to nearest even, overflow to inf, NaN to NaN (M. Dukhan's FP16 library)
  const uint32_t w = float_as_bits(x), shl1_w = w + w, sign = w & 0x80000000u;
  float base = (fabsf(x) * 0x1.0p+112f) * 0x1.0p-110f;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = bits_as_float((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = float_as_bits(base);
  const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
  return f16_t{(uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign))};
#endif
}

// ---- 16-byte vectors: 4 f32 or 8 16-bit values per load ----

template <typename T> struct Vec {
  static constexpr int N = 16 / sizeof(T);
  static_assert(N * sizeof(T) == RLK_VECTOR_BYTES, "a vector is RLK_VECTOR_BYTES (the alignment Java checks)");
  T v[N];
};
static_assert(sizeof(Vec<float>) == RLK_VECTOR_BYTES && sizeof(Vec<bf16_t>) == RLK_VECTOR_BYTES, "vectors are packed");
static_assert(RLK_MAX_THREADS % RLK_WARP == 0, "blocks are whole warps");

// A read-once load that should not displace reused data from L2.
template <typename T> __device__ __forceinline__ Vec<T> load_stream(const T *p) {
  Vec<T> out;
#ifdef __CUDA_ARCH__
  const uint4 raw = __ldcs(reinterpret_cast<const uint4 *>(p));
  memcpy(&out, &raw, 16);
#else
  memcpy(&out, p, 16);
#endif
  return out;
}

template <typename T> __device__ __forceinline__ void store_vec(T *p, const Vec<T> &x) {
  *reinterpret_cast<Vec<T> *>(p) = x;
}

// masks, f32 (nonzero keeps) or u8: rlk_kept in native/include/rlk_math.h

// ---- one block-wide reduction ----

// Reduces `value` over the block with `combine` (associative, commutative); the result is valid
// in thread 0. `scratch` holds one value per warp. Every thread of the block must call it.
template <typename S, typename Combine>
__device__ __forceinline__ S block_reduce(S value, Combine combine, S *scratch) {
  const int lane = threadIdx.x % RLK_WARP, warp = threadIdx.x / RLK_WARP;
  const int warps = (blockDim.x + RLK_WARP - 1) / RLK_WARP;
  for (int offset = RLK_WARP / 2; offset > 0; offset /= 2) value = combine(value, value.shfl_xor(offset));
  if (lane == 0) scratch[warp] = value;
  __syncthreads();  // every warp's partial is in scratch before warp 0 reads them
  if (warp == 0) {
    value = lane < warps ? scratch[lane] : S::identity();
    for (int offset = RLK_WARP / 2; offset > 0; offset /= 2) value = combine(value, value.shfl_xor(offset));
  }
  __syncthreads();  // scratch is free again for the next call (the next row)
  return value;
}
