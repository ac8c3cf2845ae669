// logprobs.cu — token log-probs, entropy and their backward (ARCHITECTURE §5.1).
//
//   forward:  lse = log sum_v exp(z_v/T) = m/T + ln s,  logp = z_y/T - lse,  H = lse - sum_v p_v z_v/T
//   backward: dz_v = (g (1[v=y] - p_v) - h p_v (log p_v + H)) / T,  log p_v = (z_v - m)/T - ln s
//
// One block per row (grid-stride over rows), one pass over the row: 16-byte streaming loads,
// each thread keeps an online (max, sum, weighted sum) in base 2 relative to its running raw
// max m, so nothing overflows and logits of magnitude 1e4 lose no digits to a common offset:
//   a_v = (z_v - m) log2(e)/T,  s = sum 2^a_v,  t = sum 2^a_v a_v,
//   lse = m/T + ln s,  logp = (z_y - m)/T - ln s,  H = ln s - ln2 t/s.
// Precision (float32's, near-certain tokens too: p_y = 1 - 1e-7 has ln s = 1e-7): each 2^a_v is
// a float, but s = ties + eps is kept as its two parts, ties = #{v : z_v = m} (each 2^0 = 1,
// counted exactly) and eps, the rest, summed in double with t, so ln s = ln(ties) +
// log1p(eps/ties) keeps eps's digits however small (in float, 1 + eps rounds eps away, and in
// double below 1e-16); the outputs are formed in double. The double work is a few operations an element in a memory-bound kernel. The forward
// writes lse_parts = (m, ln s) per row, which the backward takes instead of lse: its float32
// rounding would reach every p; at the target, 1 - p_y = -expm1(logp_y).
// Batch invariance: a row's elements go to its block's threads by their index in the row, W at a
// time (W = 16 bytes of logits), whatever the row's alignment (a row that does not start on 16
// bytes is read with scalar loads, in the same groups), and the block reduction is a fixed tree:
// the outputs of a row do not depend on N, its position or the grid size.
// The CPU reference is ReferenceBackend.java; the native twin is native/src/logprobs.c.
// Row offsets are 64-bit: N*V exceeds 2^31 at real sizes (16,384 x 151,936).
// Launch configuration: CudaBackend.rowLaunch (one place). Results: bench/RESULTS.md.
// Non-finite logits: a NaN or +inf logit, or a row of -inf only, gives NaN outputs for the row (and
// a NaN gradient row, through its NaN lse_parts); the forward reports the first row whose finite
// logits overflow float32 into overflow_row (when not null: *overflow_row = n before the launch).
#include "common.cuh"

namespace {

// max(a, -127) that lets NaN through (fmaxf would drop it): a NaN or +inf logit must reach s, so
// that its row's outputs are NaN, as on every backend.
__device__ __forceinline__ float clamp_exponent(float a) { return a < -127.0f ? -127.0f : a; }
__device__ __forceinline__ double clamp_exponent(double a) { return a < -127.0 ? -127.0 : a; }
// 2^a of a clamped exponent: the clamp's 2^-127 is exactly 0, as on the CPU (exp2 would leave a
// denormal that shows up as a spurious 1e-37 in an entropy or a gradient).
__device__ __forceinline__ double exp2_clamped(double a) { return a == -127.0 ? 0.0 : exp2(a); }

// Online softmax state of part of a row: s = ties + eps relative to m (see the file comment). m
// starts at -FLT_MAX (finite) so that (z - m) is never inf - inf; the exponent deltas are clamped
// at -127 so a vanishing factor never multiplies an infinity (2^-127, taken as 0, is nothing next
// to a sum >= 1). Non-finite logits: -inf adds 0; NaN, and +inf (inf - inf once it is the max),
// make eps NaN; a row of -inf only has no tie, since the maximum of a row with a finite logit is
// one (a = 0 exactly).
struct Online {
  float m;
  double ties, eps, t;  // double: see the file comment
  float k;              // log2(e) / T

  __device__ static Online identity() { return Online{-3.402823466e38f, 0.0, 0.0, 0.0, 0.0f}; }

  __device__ Online shfl_xor(int offset) const {
    return Online{__shfl_xor_sync(0xffffffffu, m, offset), __shfl_xor_sync(0xffffffffu, ties, offset),
                  __shfl_xor_sync(0xffffffffu, eps, offset), __shfl_xor_sync(0xffffffffu, t, offset), k};
  }

  // the old ties become terms 2^delta below the new max
  __device__ void rescale_to(float new_m) {
    const double delta = clamp_exponent(((double)m - new_m) * k);
    const double scale = exp2_clamped(delta);
    t = scale * (t + delta * (ties + eps));
    eps = scale * (eps + ties);
    ties = 0.0;
    m = new_m;
  }

  __device__ void add(float z) {  // z <= m, or NaN
    const float a = clamp_exponent((z - m) * k);
    if (a == 0.0f) {  // z = m: 2^0 = 1, counted apart (t gains 1 * 0)
      ties += 1.0;
      return;
    }
    const float e = a == -127.0f ? 0.0f : exp2f(a);  // the clamp's 2^-127 is exactly 0, as on the CPU
    eps += e;
    t += (double)e * a;
  }

  // The first `count` of z, in order (the rest is padding of a short group).
  template <int N> __device__ void add_all(const float (&z)[N], int count) {
    float top = z[0];
#pragma unroll
    for (int i = 1; i < N; i++) top = i < count ? fmaxf(top, z[i]) : top;
    if (top > m) rescale_to(top);
#pragma unroll
    for (int i = 0; i < N; i++)
      if (i < count) add(z[i]);
  }
};

// x and y relative to the larger max: the ties of the one below it become terms of its eps.
__device__ Online combine(Online x, Online y) {
  const float m = fmaxf(x.m, y.m);
  const bool x_top = x.m == m, y_top = y.m == m;
  const double dx = clamp_exponent(((double)x.m - m) * x.k), dy = clamp_exponent(((double)y.m - m) * x.k);
  const double ex = exp2_clamped(dx), ey = exp2_clamped(dy);
  const double ties = (x_top ? x.ties : 0.0) + (y_top ? y.ties : 0.0);
  const double eps = ex * (x.eps + (x_top ? 0.0 : x.ties)) + ey * (y.eps + (y_top ? 0.0 : y.ties));
  const double t = ex * (x.t + dx * (x.ties + x.eps)) + ey * (y.t + dy * (y.ties + y.eps));
  return Online{m, ties, eps, t, x.k};
}

__device__ __forceinline__ long long target_at(const void *targets, int targets_i64, long long row) {
  return targets_i64 ? static_cast<const long long *>(targets)[row] : static_cast<const int *>(targets)[row];
}

// Splits row `row` of a [n, v] tensor into a scalar head, 16-byte vectors, and a scalar tail, for
// the backward (element-wise: how it is split does not change any value). Vectors start where the
// flat index row*v + j is a multiple of the vector width, so input and output rows of different
// element sizes are split alike; `vectorize` is false when a base pointer is not 16-byte aligned
// (the host checks), and then every element is scalar.
struct RowSplit {
  long long head, body_end;
  __device__ RowSplit(long long row, long long v, int width, int vectorize) {
    if (!vectorize) {
      head = body_end = v;
      return;
    }
    const long long mis = (row * v) % width;
    head = mis == 0 ? 0 : (width - mis < v ? width - mis : v);
    body_end = head + (v - head) / width * width;
  }
};

template <typename T>
__device__ void logprobs_fwd(const T *__restrict__ logits, const void *__restrict__ targets, int targets_i64,
                             long long n, long long v, float inv_t, long long ignore_index, float *__restrict__ logp,
                             float *__restrict__ lse, float *__restrict__ entropy, float *__restrict__ lse_parts,
                             int vectorize, unsigned long long *overflow_row) {
  __shared__ Online scratch[RLK_MAX_THREADS / RLK_WARP];
  constexpr int W = Vec<T>::N;
  const float k = inv_t * RLK_LOG2E;
  const float nan = __int_as_float(0x7fc00000);

  for (long long row = blockIdx.x; row < n; row += gridDim.x) {
    const long long y = target_at(targets, targets_i64, row);
    if (y == ignore_index || y < 0 || y >= v) {  // the same branch for the whole block
      if (threadIdx.x == 0) {
        // ignored rows are not read; an out-of-range id (refused by the host) gives NaN, never a fault
        const float out = y == ignore_index ? 0.0f : nan;
        logp[row] = out;
        if (lse) lse[row] = out;
        if (entropy) entropy[row] = out;
        if (lse_parts) lse_parts[2 * row] = lse_parts[2 * row + 1] = out;
      }
      continue;
    }
    const T *z = logits + row * v;  // 64-bit offset
    // group q = elements [qW, qW + W) of the row goes to thread q % blockDim: the same groups and
    // the same order for a row wherever it sits (vector loads when the row starts on 16 bytes)
    const bool aligned = vectorize && (row * v) % W == 0;

    Online st = Online::identity();
    st.k = k;
    for (long long j = (long long)threadIdx.x * W; j < v; j += (long long)blockDim.x * W) {
      float x[W];
      const int count = v - j < W ? (int)(v - j) : W;
      if (aligned && count == W) {
        const Vec<T> raw = load_stream(z + j);
#pragma unroll
        for (int i = 0; i < W; i++) x[i] = to_float(raw.v[i]);
      } else {
#pragma unroll
        for (int i = 0; i < W; i++) x[i] = i < count ? to_float(z[j + i]) : -INFINITY;
      }
      st.add_all(x, count);
    }

    st = block_reduce(st, combine, scratch);
    if (threadIdx.x == 0) {
      if (st.ties >= 1.0 && !isnan(st.eps)) {
        const double s = st.ties + st.eps, ln_s = log(st.ties) + log1p(st.eps / st.ties), zy = to_float(z[y]);
        const double row_lse = st.m * (double)inv_t + ln_s, row_logp = (zy - st.m) * (double)inv_t - ln_s;
        const float out_lse = (float)row_lse, out_logp = (float)row_logp;
        logp[row] = out_logp;
        if (lse) lse[row] = out_lse;
        if (entropy) entropy[row] = (float)(ln_s - RLK_LN2 * st.t / s);
        if (lse_parts) {
          lse_parts[2 * row] = st.m;
          lse_parts[2 * row + 1] = (float)ln_s;
        }
        // finite logits whose lse or logp float32 cannot hold; a -inf target's logp is -inf by right
        if (overflow_row && (isinf(out_lse) || (isinf(out_logp) && isfinite(zy))))
          atomicMin(overflow_row, (unsigned long long)row);  // an integer minimum: order does not matter
      } else {  // a NaN or +inf logit (s is NaN), or no finite logit at all: no distribution
        logp[row] = nan;
        if (lse) lse[row] = nan;
        if (entropy) entropy[row] = nan;
        if (lse_parts) lse_parts[2 * row] = lse_parts[2 * row + 1] = nan;
      }
    }
  }
}

// dz for one logit: -p (g + h (a ln2 + H)) / T, with p = 2^a from m and ln s; at the target the
// whole term, in double with 1 - p_y = -expm1(logp_y); rounded once to G. A NaN logit gives NaN
// (the clamp lets it through).
struct GradRow {
  float m, l, inv_t, k, g, h, entropy;  // l = ln s log2(e)
  double ln_s;
  long long y;
  __device__ float operator()(float z, long long j) const {
    if (j == y) {
      const double logp_y = ((double)z - m) * inv_t - ln_s, p_y = exp(logp_y);
      const double entropy_term = p_y == 0 ? 0.0 : (double)h * p_y * (logp_y + entropy);  // 0 for a banned target
      return (float)((double)inv_t * ((double)g * -expm1(logp_y) - entropy_term));
    }
    const float a = clamp_exponent(fmaf(z - m, k, -l));  // (z - m) log2(e)/T - ln s log2(e)
    const float p = a == -127.0f ? 0.0f : exp2f(a);      // an underflow is 0, as on the CPU (exp2f(-127) is not)
    return -inv_t * p * fmaf(h, fmaf(a, RLK_LN2, entropy), g);
  }
};

template <typename T, typename G>
__device__ void logprobs_bwd(const T *logits, const void *__restrict__ targets, int targets_i64, long long n,
                             long long v, float temperature, float inv_t, long long ignore_index,
                             const float *__restrict__ lse_parts, const float *__restrict__ entropy,
                             const float *__restrict__ grad_logp, const float *__restrict__ grad_entropy,
                             G *grad_logits, int vectorize) {
  // logits and grad_logits may be the same buffer (in place): each element is read, then written,
  // by the same thread, so they are not __restrict__.
  constexpr int W = Vec<T>::N > Vec<G>::N ? Vec<T>::N : Vec<G>::N;  // a whole vector of the wider type
  constexpr int IN_VECS = W / Vec<T>::N, OUT_VECS = W / Vec<G>::N;

  for (long long row = blockIdx.x; row < n; row += gridDim.x) {
    const T *z = logits + row * v;
    G *out = grad_logits + row * v;
    const long long y = target_at(targets, targets_i64, row);
    GradRow f;
    f.m = lse_parts[2 * row];
    f.ln_s = lse_parts[2 * row + 1];
    f.l = (float)(f.ln_s * (double)RLK_LOG2E);
    f.inv_t = inv_t;
    f.k = inv_t * RLK_LOG2E;
    f.g = grad_logp ? grad_logp[row] : 0.0f;
    f.h = grad_entropy ? grad_entropy[row] : 0.0f;
    f.entropy = grad_entropy ? entropy[row] : 0.0f;
    f.y = y;
    // a bad id (refused by the host) or a row without a distribution (its lse_parts are NaN: the
    // forward's answer to a NaN or +inf logit, or to a row of -inf) gives a NaN row, never a fault
    const bool ignored = y == ignore_index;
    const bool bad = !ignored && (y < 0 || y >= v || !isfinite(f.m) || !isfinite(f.ln_s));
    const float fill = ignored ? 0.0f : __int_as_float(0x7fc00000);
    const RowSplit split(row, v, W, vectorize);

    for (long long j = threadIdx.x; j < split.head; j += blockDim.x)
      out[j] = from_float<G>(ignored || bad ? fill : f(to_float(z[j]), j));
    for (long long j = split.head + (long long)threadIdx.x * W; j < split.body_end; j += (long long)blockDim.x * W) {
      float x[W];
#pragma unroll
      for (int c = 0; c < IN_VECS; c++) {
        const Vec<T> raw = load_stream(z + j + c * Vec<T>::N);
#pragma unroll
        for (int i = 0; i < Vec<T>::N; i++) x[c * Vec<T>::N + i] = to_float(raw.v[i]);
      }
#pragma unroll
      for (int c = 0; c < OUT_VECS; c++) {
        Vec<G> o;
#pragma unroll
        for (int i = 0; i < Vec<G>::N; i++) {
          const int e = c * Vec<G>::N + i;
          o.v[i] = from_float<G>(ignored || bad ? fill : f(x[e], j + e));
        }
        store_vec(out + j + c * Vec<G>::N, o);
      }
    }
    for (long long j = split.body_end + threadIdx.x; j < v; j += blockDim.x)
      out[j] = from_float<G>(ignored || bad ? fill : f(to_float(z[j]), j));
  }
}

}  // namespace

// ---- entry points: one per logits dtype (forward) and per (logits, gradient) dtype pair ----

#define RLK_FWD(NAME, T)                                                                                         \
  extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)                                                  \
      NAME(const T *logits, const void *targets, int targets_i64, long long n, long long v, float inv_t,         \
           long long ignore_index, float *logp, float *lse, float *entropy, float *lse_parts, int vectorize,     \
           unsigned long long *overflow_row) {                                                                   \
    logprobs_fwd<T>(logits, targets, targets_i64, n, v, inv_t, ignore_index, logp, lse, entropy, lse_parts,      \
                    vectorize, overflow_row);                                                                    \
  }
RLK_FWD(rlk_logprobs_fwd_f32, float)
RLK_FWD(rlk_logprobs_fwd_bf16, bf16_t)
RLK_FWD(rlk_logprobs_fwd_f16, f16_t)

#define RLK_BWD(NAME, T, G)                                                                                      \
  extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)                                                  \
      NAME(const T *logits, const void *targets, int targets_i64, long long n, long long v, float temperature,   \
           float inv_t, long long ignore_index, const float *lse_parts, const float *entropy,                    \
           const float *grad_logp, const float *grad_entropy, G *grad_logits, int vectorize) {                   \
    logprobs_bwd<T, G>(logits, targets, targets_i64, n, v, temperature, inv_t, ignore_index, lse_parts, entropy, \
                       grad_logp, grad_entropy, grad_logits, vectorize);                                         \
  }
RLK_BWD(rlk_logprobs_bwd_f32_f32, float, float)
RLK_BWD(rlk_logprobs_bwd_f32_bf16, float, bf16_t)
RLK_BWD(rlk_logprobs_bwd_f32_f16, float, f16_t)
RLK_BWD(rlk_logprobs_bwd_bf16_f32, bf16_t, float)
RLK_BWD(rlk_logprobs_bwd_bf16_bf16, bf16_t, bf16_t)
RLK_BWD(rlk_logprobs_bwd_bf16_f16, bf16_t, f16_t)
RLK_BWD(rlk_logprobs_bwd_f16_f32, f16_t, float)
RLK_BWD(rlk_logprobs_bwd_f16_bf16, f16_t, bf16_t)
RLK_BWD(rlk_logprobs_bwd_f16_f16, f16_t, f16_t)
