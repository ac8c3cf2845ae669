// policy_loss.cu — clipped importance-ratio policy losses with dL/dlogp, fused (DESIGN §5.3).
// Formulas: io.rlkernels.ops.PolicyLoss; readable version: ReferenceBackend.java; CPU twin:
// native/src/policy_loss.c (token_terms is the same function there).
//
// One block per segment (a sequence, or a chunk of tokens when the op needs no sequences), grid-
// stride over segments: the block reduces what the sequence ratio needs, then each thread handles
// its tokens and keeps its statistics; one block reduction per block writes a partial, and
// rlk_policy_finish adds the partials in block order. Everything is f64 and in a fixed order, so
// the result is bitwise the same run after run; the loss of micro-batches given the global
// denominator adds up to the whole batch's. Launch shapes: CudaBackend.policyLaunch.
#include "common.cuh"

namespace {

enum { LOSS_PPO = 0, LOSS_CISPO = 1, LOSS_REINFORCE = 2 };
enum { RATIO_TOKEN = 0, RATIO_SEQUENCE = 1 };
enum { AGG_TOKEN_MEAN = 0, AGG_SEQ_MEAN_TOKEN_MEAN = 1, AGG_SEQ_MEAN_TOKEN_SUM = 2, AGG_SEQ_MEAN_TOKEN_SUM_NORM = 3 };
enum { KL_NONE = 0, KL_K1 = 1, KL_K2 = 2, KL_K3 = 3, KL_ABS = 4 };
constexpr int kChunk = 4096;  // tokens per segment when the op needs no sequences
constexpr int kStats = 11;    // loss, tokens, sequences, clip high, low, dual, sum(old - logp), ratio sum, min, max, denominator

struct Config {
  int loss, ratio, agg, kl;
  double clip_low, clip_high, dual, kl_coef, ent_coef;
};

__device__ __forceinline__ double clampd(double x, double lo, double hi) { return fmin(fmax(x, lo), hi); }

struct Terms {
  double loss, d_ratio, d_direct;
  int high, low, dual;
};

// One kept token's loss l, dl/dr (through the ratio) and dl/dlogp (directly); counts clipping.
__device__ Terms token_terms(const Config &c, double r, double a, double lp, double ref, double h) {
  Terms t{0, 0, 0, 0, 0, 0};
  const double clipped = fmin(fmax(r, 1.0 - c.clip_low), 1.0 + c.clip_high);
  if (c.loss == LOSS_PPO) {
    const double unclipped_loss = -a * r, clipped_loss = -a * clipped;
    t.loss = fmax(unclipped_loss, clipped_loss);
    t.d_ratio = unclipped_loss >= clipped_loss ? -a : 0.0;
    if (clipped_loss > unclipped_loss) {
      t.high = r > 1.0 + c.clip_high;
      t.low = !t.high;
    }
    if (c.dual > 0 && a < 0 && t.loss > -c.dual * a) {
      t.loss = -c.dual * a;
      t.d_ratio = 0.0;
      t.dual = 1;
    }
  } else if (c.loss == LOSS_CISPO) {
    t.loss = -clipped * a * lp;
    t.d_direct = -clipped * a;
    t.high = r > 1.0 + c.clip_high;
    t.low = r < 1.0 - c.clip_low;
  } else {
    t.loss = -a * lp;
    t.d_direct = -a;
  }
  if (c.kl != KL_NONE && c.kl_coef != 0) {
    const double diff = lp - ref;
    double k, dk;
    switch (c.kl) {
      case KL_K1: k = diff; dk = 1; break;
      case KL_K2: k = 0.5 * diff * diff; dk = diff; break;
      case KL_K3: {
        const double x = clampd(-diff, -20, 20), ex = exp(x);
        k = ex - x - 1;
        dk = fabs(x) < 20 ? 1 - ex : 0;
        if (k > 10) {
          k = 10;
          dk = 0;
        }
        break;
      }
      default: k = fabs(diff); dk = diff > 0 ? 1 : (diff < 0 ? -1 : 0); break;
    }
    t.loss += c.kl_coef * k;
    t.d_direct += c.kl_coef * dk;
  }
  t.loss -= c.ent_coef * h;
  return t;
}

// A segment's bounds: run k of the sequences, or chunk k of the tokens.
__device__ __forceinline__ void segment(const int *offsets, long long k, long long n, long long &b, long long &e) {
  if (offsets) {
    b = offsets[k];
    e = offsets[k + 1];
  } else {
    b = k * kChunk;
    e = b + kChunk < n ? b + kChunk : n;
  }
}

struct Pair {  // two sums reduced together
  double a, b;
  __device__ static Pair identity() { return Pair{0.0, 0.0}; }
  __device__ Pair shfl_xor(int o) const { return Pair{__shfl_xor_sync(0xffffffffu, a, o), __shfl_xor_sync(0xffffffffu, b, o)}; }
};
__device__ Pair add_pair(Pair x, Pair y) { return Pair{x.a + y.a, x.b + y.b}; }

struct Stats {  // the first ten statistics; the denominator is added by rlk_policy_finish
  double v[kStats - 1];
  __device__ static Stats identity() {
    Stats s;
    for (int j = 0; j < kStats - 1; j++) s.v[j] = 0.0;
    s.v[8] = INFINITY;
    s.v[9] = -INFINITY;
    return s;
  }
  __device__ Stats shfl_xor(int o) const {
    Stats s;
    for (int j = 0; j < kStats - 1; j++) s.v[j] = __shfl_xor_sync(0xffffffffu, v[j], o);
    return s;
  }
};
__device__ Stats add_stats(Stats x, Stats y) {
  Stats s;
  for (int j = 0; j < 8; j++) s.v[j] = x.v[j] + y.v[j];
  s.v[8] = fmin(x.v[8], y.v[8]);
  s.v[9] = fmax(x.v[9], y.v[9]);
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
  const long long segments = offsets ? sequences : (n + kChunk - 1) / kChunk;
  for (long long k = threadIdx.x; k < segments; k += blockDim.x) {
    long long b, e;
    segment(offsets, k, n, b, e);
    double here = 0.0;
    for (long long i = b; i < e; i++) here += kept(mask, mask_u8, i);
    count.a += here;
    count.b += here > 0;
  }
  count = block_reduce(count, add_pair, scratch);  // integers: exact whatever the order
  if (threadIdx.x == 0) {
    const double d = agg == AGG_SEQ_MEAN_TOKEN_SUM_NORM ? (double)longest : agg == AGG_TOKEN_MEAN ? count.a : count.b;
    *denominator = d == 0 ? 1.0 : d;  // nothing kept: the loss is 0 either way
  }
}

// Launched with 256 threads (CudaBackend.policyLoss): the bound lets ptxas keep every f64 in registers.
extern "C" __global__ void __launch_bounds__(256)
    rlk_policy_loss(const float *logp, const float *old, const float *adv, const void *mask, int mask_u8,
                    const float *ref, const float *entropy, const int *offsets, long long sequences, long long n,
                    int loss_type, int ratio_level, int agg, int kl, float clip_low, float clip_high, float dual_clip,
                    double denominator_value, const double *denominator, float kl_coef, float ent_coef, float *grad,
                    float *grad_entropy, double *partial) {
  __shared__ Pair pair_scratch[RLK_MAX_THREADS / RLK_WARP];
  __shared__ Stats stats_scratch[RLK_MAX_THREADS / RLK_WARP];
  const Config c{loss_type, ratio_level, agg, kl, clip_low, clip_high, dual_clip, kl_coef, ent_coef};
  const double denom = denominator ? *denominator : denominator_value;  // computed on the device, or given
  const long long segments = offsets ? sequences : (n + kChunk - 1) / kChunk;
  Stats st = Stats::identity();

  for (long long k = blockIdx.x; k < segments; k += gridDim.x) {
    long long b, e;
    segment(offsets, k, n, b, e);
    // the sequence's kept tokens and summed log-ratio (every thread gets the block's totals)
    Pair own{0.0, 0.0};
    for (long long i = b + threadIdx.x; i < e; i += blockDim.x)
      if (kept(mask, mask_u8, i)) {
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
    const double seq_ratio = exp(clampd(seq_log, -20, 20));
    const double w = agg == AGG_SEQ_MEAN_TOKEN_MEAN ? 1.0 / ((n_kept > 0 ? n_kept : 1.0) * denom) : 1.0 / denom;
    if (threadIdx.x == 0 && offsets && n_kept > 0) st.v[2] += 1.0;

    double seq_coef = 0.0;
    for (long long i = b + threadIdx.x; i < e; i += blockDim.x) {
      if (!kept(mask, mask_u8, i)) {
        grad[i] = 0.0f;
        if (grad_entropy) grad_entropy[i] = 0.0f;
        continue;
      }
      const double raw = (double)logp[i] - old[i], d = clampd(raw, -20, 20);
      const double r = ratio_level == RATIO_TOKEN ? exp(d) : seq_ratio;
      const bool clamped = ratio_level == RATIO_TOKEN ? d != raw : seq_clamped;
      const Terms t = token_terms(c, r, adv[i], logp[i], ref ? ref[i] : 0.0, entropy ? entropy[i] : 0.0);
      st.v[0] += w * t.loss;
      st.v[1] += 1.0;
      st.v[3] += t.high;
      st.v[4] += t.low;
      st.v[5] += t.dual;
      st.v[6] += -d;
      st.v[7] += r;
      st.v[8] = fmin(st.v[8], r);
      st.v[9] = fmax(st.v[9], r);
      double g = w * t.d_direct;
      if (!clamped) {
        if (ratio_level == RATIO_TOKEN)
          g += w * t.d_ratio * r;  // dr/dlogp = r
        else
          seq_coef += w * t.d_ratio;
      }
      grad[i] = (float)g;
      if (grad_entropy) grad_entropy[i] = (float)(-w * ent_coef);
    }
    if (ratio_level == RATIO_SEQUENCE) {
      // dr_s/dlogp_j = r_s m_j / n_s: a share of sum(w dl/dr) for every kept token, added to the
      // direct term recomputed in double, so that each gradient is rounded once
      Pair coef = block_reduce(Pair{seq_coef, 0.0}, add_pair, pair_scratch);
      if (threadIdx.x == 0) totals = coef;
      __syncthreads();  // the sequence's coefficient is in shared memory before anyone reads it
      const double share = n_kept > 0 ? totals.a * seq_ratio / n_kept : 0.0;
      for (long long i = b + threadIdx.x; i < e; i += blockDim.x) {
        if (!kept(mask, mask_u8, i)) continue;
        const Terms t = token_terms(c, seq_ratio, adv[i], logp[i], ref ? ref[i] : 0.0, 0.0);
        grad[i] = (float)(w * t.d_direct + share);
      }
    }
    __syncthreads();  // totals is rewritten by the next segment
  }
  st = block_reduce(st, add_stats, stats_scratch);
  if (threadIdx.x == 0)
    for (int j = 0; j < kStats - 1; j++) partial[(long long)blockIdx.x * (kStats - 1) + j] = st.v[j];
}

// Adds the blocks' partials in block order: the statistics, loss first.
extern "C" __global__ void rlk_policy_finish(const double *partial, int blocks, double denominator_value,
                                             const double *denominator, double *stats) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double s[kStats];
  for (int j = 0; j < kStats; j++) s[j] = 0.0;
  s[8] = INFINITY;
  s[9] = -INFINITY;
  for (int k = 0; k < blocks; k++) {
    const double *p = partial + (long long)k * (kStats - 1);
    for (int j = 0; j < 8; j++) s[j] += p[j];
    s[8] = fmin(s[8], p[8]);
    s[9] = fmax(s[9], p[9]);
  }
  if (s[1] == 0) s[8] = s[9] = 0.0;
  s[10] = denominator ? *denominator : denominator_value;
  for (int j = 0; j < kStats; j++) stats[j] = s[j];
}
