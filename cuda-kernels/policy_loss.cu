// policy_loss.cu — clipped importance-ratio policy losses with dL/dlogp, fused (ARCHITECTURE §5.3).
// Formulas: io.rlkernels.ops.PolicyLoss; readable version: ReferenceBackend.java; CPU twin:
// native/src/policy_loss.c; a token's terms are rlk_token_terms (native/include/rlk_math.h), one
// function for both.
//
// One block per segment (a sequence, or a chunk of tokens when the op needs no sequences), grid-
// stride over segments: the block reduces what the sequence ratio needs, then each thread handles
// its tokens and keeps its statistics; one block reduction per block writes a partial, and
// rlk_policy_finish adds the partials in block order. Everything is f64 and in a fixed order, so
// the result is bitwise the same run after run; the loss of micro-batches given the global
// denominator adds up to the whole batch's. Launch shape: CudaBackend.runPolicyLoss (policyBlocks).
#include "common.cuh"

namespace {


// A segment's bounds: run k of the sequences, or chunk k of the tokens.
__device__ __forceinline__ void segment(const int *offsets, long long k, long long n, long long &b, long long &e) {
  if (offsets) {
    b = offsets[k];
    e = offsets[k + 1];
  } else {
    b = k * RLK_PL_CHUNK;
    e = b + RLK_PL_CHUNK < n ? b + RLK_PL_CHUNK : n;
  }
}

struct Pair {  // two sums reduced together
  double a, b;
  __device__ static Pair identity() { return Pair{0.0, 0.0}; }
  __device__ Pair shfl_xor(int o) const { return Pair{__shfl_xor_sync(0xffffffffu, a, o), __shfl_xor_sync(0xffffffffu, b, o)}; }
};
__device__ Pair add_pair(Pair x, Pair y) { return Pair{x.a + y.a, x.b + y.b}; }

struct Stats {  // the first ten statistics; the denominator is added by rlk_policy_finish
  double v[RLK_PL_DENOMINATOR];  // every slot before the denominator, which rlk_policy_finish sets
  __device__ static Stats identity() {
    Stats s;
    for (int j = 0; j < RLK_PL_DENOMINATOR; j++) s.v[j] = 0.0;
    s.v[RLK_PL_RATIO_MIN] = INFINITY;
    s.v[RLK_PL_RATIO_MAX] = -INFINITY;
    return s;
  }
  __device__ Stats shfl_xor(int o) const {
    Stats s;
    for (int j = 0; j < RLK_PL_DENOMINATOR; j++) s.v[j] = __shfl_xor_sync(0xffffffffu, v[j], o);
    return s;
  }
};
__device__ Stats add_stats(Stats x, Stats y) {
  Stats s;
  for (int j = 0; j < 8; j++) s.v[j] = x.v[j] + y.v[j];
  s.v[RLK_PL_RATIO_MIN] = fmin(x.v[RLK_PL_RATIO_MIN], y.v[RLK_PL_RATIO_MIN]);
  s.v[RLK_PL_RATIO_MAX] = fmax(x.v[RLK_PL_RATIO_MAX], y.v[RLK_PL_RATIO_MAX]);
  return s;
}

}  // namespace

// The denominator the mode implies for this batch (when none is given): one block, a thread per
// segment in turn, so that no segment needs a block-wide step.
extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_policy_denominator(const void *mask, int mask_u8, const int *offsets, long long sequences, long long n, int agg,
                           long long longest, double *denominator) {
  __shared__ Pair scratch[RLK_MAX_THREADS / RLK_WARP];
  Pair count{0.0, 0.0};  // kept tokens, sequences with a kept token
  const long long segments = offsets ? sequences : (n + RLK_PL_CHUNK - 1) / RLK_PL_CHUNK;
  for (long long k = threadIdx.x; k < segments; k += blockDim.x) {
    long long b, e;
    segment(offsets, k, n, b, e);
    double here = 0.0;
    for (long long i = b; i < e; i++) here += rlk_kept(mask, mask_u8, i);
    count.a += here;
    count.b += here > 0;
  }
  count = block_reduce(count, add_pair, scratch);  // integers: exact whatever the order
  if (threadIdx.x == 0) {
    const double d = agg == RLK_AGG_SEQ_MEAN_TOKEN_SUM_NORM ? (double)longest : agg == RLK_AGG_TOKEN_MEAN ? count.a : count.b;
    *denominator = d == 0 ? 1.0 : d;  // nothing kept: the loss is 0 either way
  }
}

// Launched with RLK_PL_THREADS threads (PolicyLossLaunch): the bound lets ptxas keep every f64 in registers.
extern "C" __global__ void __launch_bounds__(RLK_PL_THREADS)
    rlk_policy_loss(const float *logp, const float *old, const float *adv, const void *mask, int mask_u8,
                    const float *ref, const float *entropy, const int *offsets, long long sequences, long long n,
                    int loss_type, int ratio_level, int agg, int kl, float clip_low, float clip_high, float dual_clip,
                    double denominator_value, const double *denominator, float kl_coef, float ent_coef, float *grad,
                    float *grad_entropy, double *partial) {
  __shared__ Pair pair_scratch[RLK_MAX_THREADS / RLK_WARP];
  __shared__ Stats stats_scratch[RLK_MAX_THREADS / RLK_WARP];
  const rlk_pl_config c{loss_type, ratio_level, agg, kl, clip_low, clip_high, dual_clip, kl_coef, ent_coef};
  const double denom = denominator ? *denominator : denominator_value;  // computed on the device, or given
  const long long segments = offsets ? sequences : (n + RLK_PL_CHUNK - 1) / RLK_PL_CHUNK;
  Stats st = Stats::identity();

  for (long long k = blockIdx.x; k < segments; k += gridDim.x) {
    long long b, e;
    segment(offsets, k, n, b, e);
    // the sequence's kept tokens and summed log-ratio (every thread gets the block's totals)
    Pair own{0.0, 0.0};
    for (long long i = b + threadIdx.x; i < e; i += blockDim.x)
      if (rlk_kept(mask, mask_u8, i)) {
        own.a += 1.0;
        own.b += (double)logp[i] - old[i];
      }
    __shared__ Pair totals;
    Pair sums = block_reduce(own, add_pair, pair_scratch);
    if (threadIdx.x == 0) totals = sums;
    __syncthreads();  // the totals are in shared memory before anyone reads them
    const double n_kept = totals.a;
    const double seq_log = n_kept > 0 ? totals.b / n_kept : 0.0;
    const bool seq_clamped = fabs(seq_log) > 20;
    const double seq_ratio = exp(rlk_clamp(seq_log, -20, 20));
    const double w = agg == RLK_AGG_SEQ_MEAN_TOKEN_MEAN ? 1.0 / ((n_kept > 0 ? n_kept : 1.0) * denom) : 1.0 / denom;
    if (threadIdx.x == 0 && offsets && n_kept > 0) st.v[RLK_PL_SEQUENCES] += 1.0;

    double seq_coef = 0.0;
    for (long long i = b + threadIdx.x; i < e; i += blockDim.x) {
      if (!rlk_kept(mask, mask_u8, i)) {
        grad[i] = 0.0f;
        if (grad_entropy) grad_entropy[i] = 0.0f;
        continue;
      }
      const double raw = (double)logp[i] - old[i], d = rlk_clamp(raw, -20, 20);
      const double r = ratio_level == RLK_RATIO_TOKEN ? exp(d) : seq_ratio;
      const bool clamped = ratio_level == RLK_RATIO_TOKEN ? d != raw : seq_clamped;
      const rlk_terms t = rlk_token_terms(&c, r, adv[i], logp[i], ref ? ref[i] : 0.0, entropy ? entropy[i] : 0.0);
      st.v[RLK_PL_LOSS] += w * t.loss;
      st.v[RLK_PL_TOKENS] += 1.0;
      st.v[RLK_PL_CLIP_HIGH] += t.high;
      st.v[RLK_PL_CLIP_LOW] += t.low;
      st.v[RLK_PL_CLIP_DUAL] += t.dual;
      st.v[RLK_PL_NEG_APPROX_KL_SUM] += -d;
      st.v[RLK_PL_RATIO_SUM] += r;
      st.v[RLK_PL_RATIO_MIN] = fmin(st.v[RLK_PL_RATIO_MIN], r);
      st.v[RLK_PL_RATIO_MAX] = fmax(st.v[RLK_PL_RATIO_MAX], r);
      double g = w * t.d_direct;
      if (!clamped) {
        if (ratio_level == RLK_RATIO_TOKEN)
          g += w * t.d_ratio * r;  // dr/dlogp = r
        else
          seq_coef += w * t.d_ratio;
      }
      grad[i] = (float)g;
      if (grad_entropy) grad_entropy[i] = (float)(-w * ent_coef);
    }
    if (ratio_level == RLK_RATIO_SEQUENCE) {
      // dr_s/dlogp_j = r_s m_j / n_s: a share of sum(w dl/dr) for every kept token, added to the
      // direct term recomputed in double, so that each gradient is rounded once
      Pair coef = block_reduce(Pair{seq_coef, 0.0}, add_pair, pair_scratch);
      if (threadIdx.x == 0) totals = coef;
      __syncthreads();  // the sequence's coefficient is in shared memory before anyone reads it
      const double share = n_kept > 0 ? totals.a * seq_ratio / n_kept : 0.0;
      for (long long i = b + threadIdx.x; i < e; i += blockDim.x) {
        if (!rlk_kept(mask, mask_u8, i)) continue;
        const rlk_terms t = rlk_token_terms(&c, seq_ratio, adv[i], logp[i], ref ? ref[i] : 0.0, 0.0);
        grad[i] = (float)(w * t.d_direct + share);
      }
    }
    __syncthreads();  // totals is rewritten by the next segment
  }
  st = block_reduce(st, add_stats, stats_scratch);
  if (threadIdx.x == 0)
    for (int j = 0; j < RLK_PL_DENOMINATOR; j++) partial[(long long)blockIdx.x * (RLK_PL_DENOMINATOR) + j] = st.v[j];
}

// Adds the blocks' partials in block order: the statistics, loss first.
extern "C" __global__ void rlk_policy_finish(const double *partial, int blocks, double denominator_value,
                                             const double *denominator, double *stats) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double s[RLK_PL_STATS];
  for (int j = 0; j < RLK_PL_STATS; j++) s[j] = 0.0;
  s[RLK_PL_RATIO_MIN] = INFINITY;
  s[RLK_PL_RATIO_MAX] = -INFINITY;
  for (int k = 0; k < blocks; k++) {
    const double *p = partial + (long long)k * (RLK_PL_DENOMINATOR);
    for (int j = 0; j < RLK_PL_RATIO_MIN; j++) s[j] += p[j];  // the sums come before min and max
    s[RLK_PL_RATIO_MIN] = fmin(s[RLK_PL_RATIO_MIN], p[RLK_PL_RATIO_MIN]);
    s[RLK_PL_RATIO_MAX] = fmax(s[RLK_PL_RATIO_MAX], p[RLK_PL_RATIO_MAX]);
  }
  if (s[RLK_PL_TOKENS] == 0) s[RLK_PL_RATIO_MIN] = s[RLK_PL_RATIO_MAX] = 0.0;
  s[RLK_PL_DENOMINATOR] = denominator ? *denominator : denominator_value;
  for (int j = 0; j < RLK_PL_STATS; j++) stats[j] = s[j];
}
