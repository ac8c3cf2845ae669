// cuda_emu.h — compiles unmodified CUDA kernel sources with g++ and runs them on the CPU.
//
// The build force-includes this header (g++ -include emu/cuda_emu.h -x c++ kernels.cu); the
// runtime (runtime.cpp) runs every CUDA thread as a fiber and one block per worker thread.
//
//   threadIdx, blockIdx, blockDim, gridDim   the current fiber's and block's (not thread_local:
//                                            fibers of a block share one OS thread)
//   __shared__                               one storage per block: thread_local of the worker
//                                            thread running the block, poisoned (NaN bytes) at
//                                            each block's start; `extern __shared__` is the
//                                            dynamic shared memory of the launch
//   __syncthreads()                          a block barrier that reports divergence
//   __shfl_*_sync, votes, __syncwarp         per warp, with the full-warp mask only
//   atomic*                                  real atomics: blocks run concurrently
//
// Scheduling is randomised (see runtime.cpp) so that a missing __syncthreads changes results.
// Self-test: cuda-kernels/emu/selftest.cu, run by EmulatorSelfTest.java.
#pragma once

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cfloat>
#include <type_traits>

#define RLK_CUDA_EMULATOR 1

// ---- qualifiers ----
#define __global__ __attribute__((visibility("default"), used))
#define __device__
#define __host__
#define __constant__
#define __shared__ thread_local
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __grid_constant__

// ---- built-in types ----
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

#define RLK_EMU_VEC2(T, N, A) \
  struct __attribute__((aligned(A))) N { T x, y; }; \
  static inline N make_##N(T x, T y) { return N{x, y}; }
#define RLK_EMU_VEC4(T, N, A) \
  struct __attribute__((aligned(A))) N { T x, y, z, w; }; \
  static inline N make_##N(T x, T y, T z, T w) { return N{x, y, z, w}; }
RLK_EMU_VEC2(float, float2, 8)
RLK_EMU_VEC4(float, float4, 16)
RLK_EMU_VEC2(int, int2, 8)
RLK_EMU_VEC4(int, int4, 16)
RLK_EMU_VEC2(unsigned, uint2, 8)
RLK_EMU_VEC4(unsigned, uint4, 16)
RLK_EMU_VEC2(double, double2, 16)
RLK_EMU_VEC2(long long, longlong2, 16)
RLK_EMU_VEC2(unsigned short, ushort2, 4)
RLK_EMU_VEC4(unsigned short, ushort4, 8)
#undef RLK_EMU_VEC2
#undef RLK_EMU_VEC4

namespace emu {

// What a fiber sees of itself and of its block. The runtime points `current` at the running
// fiber on every switch.
struct ThreadView {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
extern __thread const ThreadView *current;

// A fiber's entry into the runtime: waits at a block barrier (`site` names the call site).
void syncthreads(const void *site);

enum class WarpOp { shfl_idx, shfl_up, shfl_down, shfl_xor, all, any, ballot, sync };
// Deposits `size` bytes of `value` for a warp-wide operation, waits for the warp, and returns the
// result in `out` (the value of the source lane, or the vote).
void warp_op(WarpOp op, unsigned mask, int param, int width, const void *value, void *out, int size, const char *name);

}  // namespace emu

#define threadIdx (::emu::current->thread_idx)
#define blockIdx (::emu::current->block_idx)
#define blockDim (::emu::current->block_dim)
#define gridDim (::emu::current->grid_dim)
#define warpSize 32

// Each call site has its own address, so threads waiting at different barriers are told apart.
#define __syncthreads()                        \
  do {                                         \
    static const char rlk_emu_barrier_site = 0; \
    ::emu::syncthreads(&rlk_emu_barrier_site);  \
  } while (0)

// ---- warp intrinsics ----
template <typename T>
static inline T rlk_emu_shfl(emu::WarpOp op, unsigned mask, T var, int param, int width, const char *name) {
  static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 4 || sizeof(T) == 8),
                "the emulator shuffles 4- and 8-byte values");
  T out;
  emu::warp_op(op, mask, param, width, &var, &out, (int)sizeof(T), name);
  return out;
}
template <typename T> static inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
  return rlk_emu_shfl(emu::WarpOp::shfl_idx, mask, var, src_lane, width, "__shfl_sync");
}
template <typename T> static inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return rlk_emu_shfl(emu::WarpOp::shfl_up, mask, var, (int)delta, width, "__shfl_up_sync");
}
template <typename T> static inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return rlk_emu_shfl(emu::WarpOp::shfl_down, mask, var, (int)delta, width, "__shfl_down_sync");
}
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  return rlk_emu_shfl(emu::WarpOp::shfl_xor, mask, var, lane_mask, width, "__shfl_xor_sync");
}
static inline int __all_sync(unsigned mask, int predicate) {
  int p = predicate != 0, out;
  emu::warp_op(emu::WarpOp::all, mask, 0, 32, &p, &out, 4, "__all_sync");
  return out;
}
static inline int __any_sync(unsigned mask, int predicate) {
  int p = predicate != 0, out;
  emu::warp_op(emu::WarpOp::any, mask, 0, 32, &p, &out, 4, "__any_sync");
  return out;
}
static inline unsigned __ballot_sync(unsigned mask, int predicate) {
  int p = predicate != 0;
  unsigned out;
  emu::warp_op(emu::WarpOp::ballot, mask, 0, 32, &p, &out, 4, "__ballot_sync");
  return out;
}
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
  int dummy = 0, out;
  emu::warp_op(emu::WarpOp::sync, mask, 0, 32, &dummy, &out, 4, "__syncwarp");
}

// ---- memory fences, cache-hinted loads and stores (plain accesses on the CPU) ----
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
template <typename T> static inline T __ldg(const T *p) { return *p; }
template <typename T> static inline T __ldcs(const T *p) { return *p; }
template <typename T> static inline T __ldcg(const T *p) { return *p; }
template <typename T> static inline T __ldlu(const T *p) { return *p; }
template <typename T> static inline void __stcs(T *p, T v) { *p = v; }
template <typename T> static inline void __stcg(T *p, T v) { *p = v; }
template <typename T> static inline void __stwt(T *p, T v) { *p = v; }

// ---- atomics: real ones, blocks run on several OS threads at once ----
template <typename T> static inline T atomicAdd(T *p, T v) {
  if constexpr (std::is_floating_point<T>::value) {
    T old;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    T desired = old + v;
    while (!__atomic_compare_exchange(p, &old, &desired, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
      desired = old + v;
    }
    return old;
  } else {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
  }
}
template <typename T> static inline T atomicSub(T *p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
template <typename T> static inline T atomicExch(T *p, T v) {
  T old;
  __atomic_exchange(p, &v, &old, __ATOMIC_SEQ_CST);
  return old;
}
template <typename T> static inline T atomicCAS(T *p, T compare, T v) {
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;  // the old value, whether or not it was swapped
}
template <typename T> static inline T atomicMax(T *p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename T> static inline T atomicMin(T *p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old > v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename T> static inline T atomicAnd(T *p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }
template <typename T> static inline T atomicOr(T *p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
template <typename T> static inline T atomicXor(T *p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST); }

// ---- bit casts and intrinsic math ----
template <typename To, typename From> static inline To rlk_emu_bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From), "same size");
  To to;
  memcpy(&to, &from, sizeof to);
  return to;
}
static inline float __int_as_float(int x) { return rlk_emu_bit_cast<float>(x); }
static inline int __float_as_int(float x) { return rlk_emu_bit_cast<int>(x); }
static inline float __uint_as_float(unsigned x) { return rlk_emu_bit_cast<float>(x); }
static inline unsigned __float_as_uint(float x) { return rlk_emu_bit_cast<unsigned>(x); }
static inline double __longlong_as_double(long long x) { return rlk_emu_bit_cast<double>(x); }
static inline long long __double_as_longlong(double x) { return rlk_emu_bit_cast<long long>(x); }
// __expf, __logf and friends: glibc's math.h declares them already, with the same meaning.
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }

template <typename A, typename B> static inline typename std::common_type<A, B>::type min(A a, B b) {
  return b < a ? b : a;
}
template <typename A, typename B> static inline typename std::common_type<A, B>::type max(A a, B b) {
  return a < b ? b : a;
}
