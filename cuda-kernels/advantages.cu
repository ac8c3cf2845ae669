// advantages.cu — group-normalised advantages, GAE, discounted returns and masked whitening
// (ARCHITECTURE §5.2). The CPU twins are native/src/advantages.c and ReferenceBackend.java.
//
// Determinism: no floating-point atomics. Every sum is a fixed tree (shuffles, then shared memory)
// or a sequential loop over partials in index order, so a given input gives bitwise the same
// output run after run. Means and variances are two-pass in double: a sum-of-squares variance in
// f32 loses every digit on a group such as {1000.0001, 1000.0002, 1000.0003, 1000.0004}.
// Launch shapes: CudaBackend (groupLaunch, gaeLaunch, elementwiseLaunch). Results: bench/RESULTS.md.
#include "common.cuh"

namespace {


struct Sum {
  double v;
  __device__ static Sum identity() { return Sum{0.0}; }
  __device__ Sum shfl_xor(int offset) const { return Sum{__shfl_xor_sync(0xffffffffu, v, offset)}; }
};
__device__ Sum add(Sum a, Sum b) { return Sum{a.v + b.v}; }

__device__ __forceinline__ double warp_sum(double v) {
  for (int offset = RLK_WARP / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;  // every lane holds the same total: the same tree in every lane
}

// a member's advantage: rlk_advantage (native/include/rlk_math.h), shared with advantages.c

}  // namespace

// gpg's alpha: the batch's sequences over its nonzero rewards, into *scale (one block; a count,
// exact whatever the order).
extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_gpg_scale(const float *rewards, long long s, double *scale) {
  __shared__ Sum scratch[RLK_MAX_THREADS / RLK_WARP];
  Sum nonzero{0.0};
  for (long long i = threadIdx.x; i < s; i += blockDim.x) nonzero.v += rewards[i] != 0.0f;
  nonzero = block_reduce(nonzero, add, scratch);
  if (threadIdx.x == 0) *scale = (double)s / (nonzero.v > 0 ? nonzero.v : 1.0);
}

namespace {

struct Top {  // a maximum and where it is (the first of equal maxima)
  double v;
  long long k;
  __device__ static Top identity() { return Top{-INFINITY, 1LL << 62}; }
  __device__ Top shfl_xor(int o) const { return Top{__shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, k, o)}; }
};
__device__ Top better(Top a, Top b) { return a.v > b.v || (a.v == b.v && a.k < b.k) ? a : b; }

__device__ __forceinline__ Top warp_top(Top t) {
  for (int offset = RLK_WARP / 2; offset > 0; offset /= 2) t = better(t, t.shfl_xor(offset));
  return t;
}

}  // namespace

// One warp per group (groups up to a few hundred members): lanes stride over the members.
// weights: opo's lengths (or null); scale: gpg's alpha on the device (or null: 1).
extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_group_advantages_warp(const float *rewards, const float *weights, const int *order, const int *offsets, long long groups,
                              int mode, int unbiased, float eps, int by_std, const double *scale, float *advantages) {
  const int lane = threadIdx.x % RLK_WARP, warps = blockDim.x / RLK_WARP;
  const double alpha = scale ? *scale : 1.0;
  for (long long g = (long long)blockIdx.x * warps + threadIdx.x / RLK_WARP; g < groups; g += (long long)gridDim.x * warps) {
    const int *members = order + offsets[g];
    const long long n = offsets[g + 1] - offsets[g];
    double sum = 0.0, wsum = 0.0;
    for (long long k = lane; k < n; k += RLK_WARP) {
      const double w = mode == RLK_ADV_OPO ? weights[members[k]] : 1.0;
      sum += w * rewards[members[k]];
      wsum += w;
    }
    sum = warp_sum(sum);
    wsum = warp_sum(wsum);
    const double mean = mode == RLK_ADV_OPO ? (wsum > 0 ? sum / wsum : 0.0) : sum / (double)n;
    double squares = 0.0;
    for (long long k = lane; k < n; k += RLK_WARP) {
      const double d = rewards[members[k]] - mean;
      squares += d * d;
    }
    squares = warp_sum(squares);
    const double std = n > 1 ? sqrt(squares / (double)(unbiased ? n - 1 : n)) : 0.0;
    if (mode == RLK_ADV_PASSK) {  // the first maximum, then the largest of the others
      Top top = Top::identity(), second = Top::identity();
      for (long long k = lane; k < n; k += RLK_WARP) top = better(top, Top{rewards[members[k]], k});
      top = warp_top(top);
      for (long long k = lane; k < n; k += RLK_WARP)
        if (k != top.k) second = better(second, Top{rewards[members[k]], k});
      second = warp_top(second);
      for (long long k = lane; k < n; k += RLK_WARP)
        advantages[members[k]] = rlk_passk_advantage(k == top.k, top.v, second.v, std, eps, by_std);
      continue;
    }
    for (long long k = lane; k < n; k += RLK_WARP)
      advantages[members[k]] = rlk_advantage(mode, rewards[members[k]], mean, std, n, eps, alpha);
  }
}

// One block per group (large groups, batch mode).
extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_group_advantages_block(const float *rewards, const float *weights, const int *order, const int *offsets,
                               long long groups, int mode, int unbiased, float eps, int by_std, const double *scale,
                               float *advantages) {
  __shared__ Sum scratch[RLK_MAX_THREADS / RLK_WARP];
  __shared__ Top top_scratch[RLK_MAX_THREADS / RLK_WARP];
  __shared__ double stats[2];
  __shared__ Top tops[2];
  const double alpha = scale ? *scale : 1.0;
  for (long long g = blockIdx.x; g < groups; g += gridDim.x) {
    const int *members = order + offsets[g];
    const long long n = offsets[g + 1] - offsets[g];
    Sum sum{0.0}, wsum{0.0};
    for (long long k = threadIdx.x; k < n; k += blockDim.x) {
      const double w = mode == RLK_ADV_OPO ? weights[members[k]] : 1.0;
      sum.v += w * rewards[members[k]];
      wsum.v += w;
    }
    sum = block_reduce(sum, add, scratch);
    wsum = block_reduce(wsum, add, scratch);
    if (threadIdx.x == 0) stats[0] = mode == RLK_ADV_OPO ? (wsum.v > 0 ? sum.v / wsum.v : 0.0) : sum.v / (double)n;
    __syncthreads();  // the mean is in shared memory before anyone subtracts it
    const double mean = stats[0];
    Sum squares{0.0};
    for (long long k = threadIdx.x; k < n; k += blockDim.x) {
      const double d = rewards[members[k]] - mean;
      squares.v += d * d;
    }
    squares = block_reduce(squares, add, scratch);
    if (threadIdx.x == 0) stats[1] = n > 1 ? sqrt(squares.v / (double)(unbiased ? n - 1 : n)) : 0.0;
    __syncthreads();  // the std is in shared memory before anyone divides by it
    const double std = stats[1];
    if (mode == RLK_ADV_PASSK) {  // the first maximum, then the largest of the others
      Top top = Top::identity(), second = Top::identity();
      for (long long k = threadIdx.x; k < n; k += blockDim.x) top = better(top, Top{rewards[members[k]], k});
      top = block_reduce(top, better, top_scratch);
      if (threadIdx.x == 0) tops[0] = top;
      __syncthreads();  // the maximum is in shared memory before anyone excludes it
      top = tops[0];
      for (long long k = threadIdx.x; k < n; k += blockDim.x)
        if (k != top.k) second = better(second, Top{rewards[members[k]], k});
      second = block_reduce(second, better, top_scratch);
      if (threadIdx.x == 0) tops[1] = second;
      __syncthreads();  // the second is in shared memory before anyone reads it
      for (long long k = threadIdx.x; k < n; k += blockDim.x)
        advantages[members[k]] = rlk_passk_advantage(k == top.k, top.v, tops[1].v, std, eps, by_std);
    } else {
      for (long long k = threadIdx.x; k < n; k += blockDim.x)
        advantages[members[k]] = rlk_advantage(mode, rewards[members[k]], mean, std, n, eps, alpha);
    }
    __syncthreads();  // stats and tops are rewritten by the next group
  }
}

extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_sequence_to_tokens(const float *per_sequence, const void *mask, int mask_u8, long long s, long long t,
                           float *per_token) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < s * t; i += (long long)gridDim.x * blockDim.x)
    per_token[i] = rlk_kept(mask, mask_u8, i) ? per_sequence[i / t] : 0.0f;
}

// ---- GAE and discounted returns: one block per row, a reverse scan in tiles ----
//
// For a kept position t, x_t = d_t + c * x_next (GAE: d = r + gamma V_next - V, c = gamma lambda;
// returns-to-go: d = r, c = gamma); dropped positions pass x through. The maps compose, so a tile
// of blockDim * RLK_GAE_ITEMS positions is scanned in parallel: each thread composes the maps of
// its items, thread 0 chains the threads' maps right to left, each thread replays its items.
// V_next needs the same treatment first: the value of the next kept position.

extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_gae(const float *rewards, const float *values, const void *mask, int mask_u8, long long b, long long t,
            float gamma, float lambda, float *advantages, float *returns) {
  __shared__ double first_value[RLK_MAX_THREADS];  // value at a thread's first kept position...
  __shared__ int has_kept[RLK_MAX_THREADS];        // ...if it has one
  __shared__ double map_a[RLK_MAX_THREADS], map_b[RLK_MAX_THREADS];  // a thread's composed map x -> a x + b
  const double c = values ? (double)gamma * lambda : (double)gamma;
  const long long tile = (long long)blockDim.x * RLK_GAE_ITEMS;

  for (long long row = blockIdx.x; row < b; row += gridDim.x) {
    const long long base = row * t;
    double carry_value = 0.0, carry_x = 0.0;  // V and x at the first kept position after this tile
    for (long long end = t; end > 0; end -= tile) {
      const long long start = end - tile > 0 ? end - tile : 0;
      const long long lo = start + (long long)threadIdx.x * RLK_GAE_ITEMS;
      const long long hi = lo + RLK_GAE_ITEMS < end ? lo + RLK_GAE_ITEMS : end;

      // 1. the next kept value after each thread's items
      int mine = 0;
      double value = 0.0;
      for (long long j = hi - 1; j >= lo; j--)
        if (rlk_kept(mask, mask_u8, base + j)) {
          mine = 1;
          value = values ? values[base + j] : 0.0;
        }
      has_kept[threadIdx.x] = mine;
      first_value[threadIdx.x] = value;
      __syncthreads();  // every thread's first kept value is in shared memory before the chain
      if (threadIdx.x == 0) {
        double next = carry_value;
        for (int k = blockDim.x - 1; k >= 0; k--) {  // right to left: replace by the value after thread k
          const double own = first_value[k];
          const int had = has_kept[k];
          first_value[k] = next;
          if (had) next = own;
        }
        carry_value = next;  // thread 0 alone needs it for the next tile
      }
      __syncthreads();  // the values after each thread are written before they are read
      const double value_after = first_value[threadIdx.x];

      // 2. compose each thread's maps, right to left
      double a = 1.0, bb = 0.0, next_value = value_after;
      for (long long j = hi - 1; j >= lo; j--) {
        if (!rlk_kept(mask, mask_u8, base + j)) continue;
        const double v = values ? values[base + j] : 0.0;
        const double d = values ? rewards[base + j] + (double)gamma * next_value - v : rewards[base + j];
        bb = d + c * bb;
        a = c * a;
        next_value = v;
      }
      map_a[threadIdx.x] = a;
      map_b[threadIdx.x] = bb;
      __syncthreads();  // every thread's map is in shared memory before the chain
      if (threadIdx.x == 0) {
        double x = carry_x;
        for (int k = blockDim.x - 1; k >= 0; k--) {  // x after thread k, then through its map
          const double ak = map_a[k], bk = map_b[k];
          map_b[k] = x;
          x = ak * x + bk;
        }
        carry_x = x;
      }
      __syncthreads();  // the x after each thread is written before it is read

      // 3. replay the items with the x that follows them
      double x = map_b[threadIdx.x];
      next_value = value_after;
      for (long long j = hi - 1; j >= lo; j--) {
        const long long i = base + j;
        if (!rlk_kept(mask, mask_u8, i)) {
          if (advantages) advantages[i] = 0.0f;
          returns[i] = 0.0f;
          continue;
        }
        const double v = values ? values[i] : 0.0;
        const double d = values ? rewards[i] + (double)gamma * next_value - v : rewards[i];
        x = d + c * x;
        next_value = v;
        if (advantages) advantages[i] = (float)x;
        returns[i] = (float)(values ? x + v : x);
      }
      __syncthreads();  // shared memory is reused by the next tile
    }
  }
}

// ---- the optimal token baseline (io.rlkernels.ops.OptimalTokenBaseline): two kernels ----
//
// rlk_otb_scan, a thread per row: G (reverse sums of kept rewards) into returns, W (forward sums
// of rlk_otb_energy) into advantages, the kept length into lengths. rlk_otb_apply, a thread per
// (group, position): the group's sums over its members in member order, then each member's
// advantage over the W it was computed from (the thread owns that column of the group's rows).

extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_otb_scan(const float *rewards, const void *mask, int mask_u8, const float *old_logp, const float *sum_pi_sq,
                 const float *is_weights, long long s, long long t, float *returns, float *advantages, long long *lengths) {
  for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < s; row += (long long)gridDim.x * blockDim.x) {
    const long long base = row * t;
    double sum = 0.0, cumulative = 0.0;
    long long len = 0;
    for (long long j = t - 1; j >= 0; j--) {
      const int kept = rlk_kept(mask, mask_u8, base + j);
      if (kept) sum += rewards[base + j];
      returns[base + j] = kept ? (float)sum : 0.0f;
    }
    for (long long j = 0; j < t; j++) {
      const long long i = base + j;
      if (rlk_kept(mask, mask_u8, i)) {
        cumulative += rlk_otb_energy(old_logp[i], sum_pi_sq[i], is_weights ? is_weights[i] : 1.0);
        len++;
      }
      advantages[i] = (float)cumulative;
    }
    lengths[row] = len;
  }
}

extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_otb_apply(const void *mask, int mask_u8, const int *order, const int *offsets, long long groups, long long t, float eps,
                  int zero_tail, const long long *lengths, const float *returns, float *advantages) {
  for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < groups * t;
       idx += (long long)gridDim.x * blockDim.x) {
    const long long g = idx / t, j = idx % t;
    const int *members = order + offsets[g];
    const long long n = offsets[g + 1] - offsets[g];
    long long max = -1, second = -1, longest = -1;  // as in rlk_otb: the first longest member's row
    for (long long k = 0; k < n; k++) {
      const long long len = lengths[members[k]];
      if (len > max) {
        second = max;
        max = len;
        longest = members[k];
      } else if (len > second) {
        second = len;
      }
    }
    double num = 0.0, den = 0.0;
    for (long long k = 0; k < n; k++) {
      const long long i = (long long)members[k] * t + j;
      if (!rlk_kept(mask, mask_u8, i)) continue;
      num += (double)returns[i] * advantages[i];
      den += advantages[i];
    }
    const double baseline = n > 1 ? rlk_otb_baseline(num, den, eps) : 0.0;
    for (long long k = 0; k < n; k++) {
      const long long i = (long long)members[k] * t + j;
      if (!rlk_kept(mask, mask_u8, i)) {
        advantages[i] = 0.0f;
        continue;
      }
      const double b = rlk_otb_zero_tail(zero_tail, n, members[k] == longest, max, second, j) ? 0.0 : baseline;
      advantages[i] = (float)((double)returns[i] - b);
    }
  }
}

// ---- masked whitening: fixed-grid partial sums, then one block adds them in order ----

// pass 0: partial[block] = (sum, count) of kept x; pass 1: partial[block] = sum of (x - mean)^2.
extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_whiten_partials(const float *x, const void *mask, int mask_u8, long long n, int pass, const double *stats,
                        double *partial) {
  __shared__ Sum scratch[RLK_MAX_THREADS / RLK_WARP];
  const double mean = pass == 1 ? stats[0] : 0.0;
  Sum s{0.0}, count{0.0};
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    if (rlk_kept(mask, mask_u8, i)) {
      const double d = x[i] - mean;
      s.v += pass == 1 ? d * d : (double)x[i];
      count.v += 1.0;
    }
  s = block_reduce(s, add, scratch);
  count = block_reduce(count, add, scratch);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = s.v;
    partial[2 * blockIdx.x + 1] = count.v;
  }
}

// One thread adds the partials in block order: stats = (mean, count) after pass 0, std after pass 1.
extern "C" __global__ void rlk_whiten_finish(const double *partial, int blocks, int pass, float eps, int unbiased,
                                             double *stats) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double s = 0.0, count = 0.0;
  for (int k = 0; k < blocks; k++) {
    s += partial[2 * k];
    count += partial[2 * k + 1];
  }
  if (pass == 0) {
    stats[0] = count > 0 ? s / count : 0.0;
    stats[1] = count;
  } else {
    const double dof = unbiased ? count - 1.0 : count;
    stats[2] = sqrt((dof > 0 ? s / dof : 0.0) + eps);
  }
}

extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_whiten_apply(const float *x, const void *mask, int mask_u8, long long n, const double *stats, float *out) {
  const double mean = stats[0], std = stats[2];
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    out[i] = rlk_kept(mask, mask_u8, i) && std > 0 ? (float)((x[i] - mean) / std) : 0.0f;
}

// ---- the index of the first float outside a bound, for the checks of device tensors: a non-finite
// input (limit FLT_MAX), an input too large for its output, an output that overflowed ----

// *first must hold n (or more) before the launch; it ends at the smallest such index.
extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_first_outside_f32(const float *x, long long n, float limit, unsigned long long *first) {
  // NaN, or |x| > limit (FLT_MAX: every NaN and infinity)
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    if (!(fabsf(x[i]) <= limit)) atomicMin(first, (unsigned long long)i);  // an integer minimum: order does not matter
}
