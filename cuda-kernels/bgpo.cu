// bgpo.cu — BGPO's per-sequence step (ARCHITECTURE §5.4), the row masking it needs, and the f32 matrix
// product of its linear head. A Monte Carlo sample is: rlk_mask_rows, the log-probs forward
// (logprobs.cu, unmasked rows skipped), rlk_bgpo_coefficients (+ rlk_bgpo_finish), and the
// log-probs backward with the upstream gradients written here. Formulas: io.rlkernels.ops.Bgpo;
// CPU twin: native/src/bgpo.c and matmul.c. Launch shapes: CudaBackend (bgpoLaunch, matmulLaunch).
#include "common.cuh"

namespace {


__device__ __forceinline__ double warp_sum_d(double v) {
  for (int offset = RLK_WARP / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

}  // namespace

extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_mask_rows(const void *targets, int targets_i64, const void *mask, int mask_u8, long long n, long long ignore,
                  void *out) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const bool keep = rlk_kept(mask, mask_u8, i);
    if (targets_i64)
      static_cast<long long *>(out)[i] = keep ? static_cast<const long long *>(targets)[i] : ignore;
    else
      static_cast<int *>(out)[i] = keep ? static_cast<const int *>(targets)[i] : (int)ignore;
  }
}

// One warp per sequence; each warp's lane 0 keeps its statistics, the block adds its warps' in
// warp order into partial[block], and rlk_bgpo_finish adds the partials into the state in order.
extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_bgpo_coefficients(const float *logp, const int *offsets, long long sequences, const void *mask, int mask_u8,
                          const float *weights, const float *old, const float *adv, float clip_low, float clip_high,
                          float dual_clip, double scale, float *values, float *upstream, double *partial) {
  __shared__ double warp_stats[RLK_MAX_THREADS / RLK_WARP][RLK_BGPO_STATS];
  const int lane = threadIdx.x % RLK_WARP, warp = threadIdx.x / RLK_WARP, warps = blockDim.x / RLK_WARP;
  double st[RLK_BGPO_STATS] = {0};
  st[RLK_BGPO_D_MIN] = INFINITY;
  st[RLK_BGPO_D_MAX] = -INFINITY;
  for (long long s = (long long)blockIdx.x * warps + warp; s < sequences; s += (long long)gridDim.x * warps) {
    const long long b = offsets[s], e = offsets[s + 1];
    double total = 0.0, count = 0.0;
    for (long long p = b + lane; p < e; p += RLK_WARP)
      if (rlk_kept(mask, mask_u8, p)) {
        total += logp[p];
        count += 1.0;
      }
    total = warp_sum_d(total);  // the same tree in every lane: every lane holds the sum
    count = warp_sum_d(count);
    const double a = adv[s], w = weights[s];
    const double l = w * total, d = l - old[s];
    const rlk_psi ps = rlk_bgpo_psi(d, a);  // the per-sample ratio and its slope in d (rlk_math.h)
    const double psi = ps.psi, dpsi = ps.dpsi;
    const rlk_clip k = rlk_ppo_clip(psi, a, clip_low, clip_high, dual_clip);
    const double kappa = k.through_ratio ? 1.0 : 0.0;
    if (lane == 0) {
      st[RLK_BGPO_LOSS] += k.loss * scale;
      st[RLK_BGPO_SEEN] += 1.0;
      st[RLK_BGPO_CLIP_HIGH] += k.high;
      st[RLK_BGPO_CLIP_LOW] += k.low;
      st[RLK_BGPO_CLIP_DUAL] += k.dual;
      st[RLK_BGPO_EMPTY] += count == 0.0;
      st[RLK_BGPO_D_SUM] += d;
      st[RLK_BGPO_D_MIN] = fmin(st[RLK_BGPO_D_MIN], d);
      st[RLK_BGPO_D_MAX] = fmax(st[RLK_BGPO_D_MAX], d);
      st[RLK_BGPO_PSI_SUM] += psi;
      values[s] = (float)l;
    }
    // dL/dlogp_p = scale * df/dpsi * dpsi/dd * dl/dlogp_p = -a kappa psi' w scale
    const float g = (float)(-a * kappa * dpsi * w * scale);
    for (long long p = b + lane; p < e; p += RLK_WARP) upstream[p] = rlk_kept(mask, mask_u8, p) ? g : 0.0f;
  }
  if (lane == 0)
    for (int j = 0; j < RLK_BGPO_STATS; j++) warp_stats[warp][j] = st[j];
  __syncthreads();  // every warp's statistics are in shared memory before thread 0 adds them
  if (threadIdx.x == 0) {
    for (int k = 1; k < warps; k++)
      for (int j = 0; j < RLK_BGPO_STATS; j++)
        st[j] = j == RLK_BGPO_D_MIN ? fmin(st[j], warp_stats[k][j]) : j == RLK_BGPO_D_MAX ? fmax(st[j], warp_stats[k][j]) : st[j] + warp_stats[k][j];
    for (int j = 0; j < RLK_BGPO_STATS; j++) partial[(long long)blockIdx.x * RLK_BGPO_STATS + j] = st[j];
  }
}

// Adds the blocks' partials, in block order, into the running state (min and max combined).
extern "C" __global__ void rlk_bgpo_finish(const double *partial, int blocks, double *state) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  for (int k = 0; k < blocks; k++)
    for (int j = 0; j < RLK_BGPO_STATS; j++) {
      const double v = partial[(long long)k * RLK_BGPO_STATS + j];
      state[j] = j == RLK_BGPO_D_MIN ? fmin(state[j], v) : j == RLK_BGPO_D_MAX ? fmax(state[j], v) : state[j] + v;
    }
}

// ---- C = alpha op(A) op(B) + beta C, f32, row-major: 16 x 16 tiles through shared memory ----
// One block of RLK_MM_TILE^2 threads per tile of C (blocks numbered row of tiles by row); each element sums
// over k tile by tile, in order. A readable kernel for BGPO's linear head; cuBLAS would be faster.

extern "C" __global__ void __launch_bounds__(RLK_MM_TILE * RLK_MM_TILE)
    rlk_matmul(int trans_a, int trans_b, long long m, long long n, long long k, float alpha, const void *a, int a_dtype,
               const void *b, int b_dtype, float beta, float *c) {
  __shared__ float tile_a[RLK_MM_TILE][RLK_MM_TILE + 1];  // +1: no bank conflicts on the transposed reads
  __shared__ float tile_b[RLK_MM_TILE][RLK_MM_TILE + 1];
  const long long tiles_n = (n + RLK_MM_TILE - 1) / RLK_MM_TILE;
  const int tx = threadIdx.x % RLK_MM_TILE, ty = threadIdx.x / RLK_MM_TILE;
  for (long long t = blockIdx.x; t < ((m + RLK_MM_TILE - 1) / RLK_MM_TILE) * tiles_n; t += gridDim.x) {
    const long long row = (t / tiles_n) * RLK_MM_TILE + ty, col = (t % tiles_n) * RLK_MM_TILE + tx;
    float sum = 0.0f;
    for (long long k0 = 0; k0 < k; k0 += RLK_MM_TILE) {
      const long long ka = k0 + tx, kb = k0 + ty;
      // A(row, ka) and B(kb, col) as stored: A is [m, k] or, transposed, [k, m]; B is [k, n] or [n, k]
      tile_a[ty][tx] = row < m && ka < k ? load_as_float(a, a_dtype, trans_a ? ka * m + row : row * k + ka) : 0.0f;
      tile_b[ty][tx] = kb < k && col < n ? load_as_float(b, b_dtype, trans_b ? col * k + kb : kb * n + col) : 0.0f;
      __syncthreads();  // both tiles are loaded before anyone multiplies them
      for (int q = 0; q < RLK_MM_TILE; q++) sum += tile_a[ty][q] * tile_b[q][tx];
      __syncthreads();  // everyone is done with the tiles before the next k0 overwrites them
    }
    if (row < m && col < n) c[row * n + col] = alpha * sum + (beta == 0.0f ? 0.0f : beta * c[row * n + col]);
  }
}
