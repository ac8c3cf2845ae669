// policy_loss.cu — clipped importance-ratio policy losses with dL/dlogp and the rollout
// correction, fused (ARCHITECTURE §5.3). Formulas: io.rlkernels.ops.PolicyLoss; readable version:
// PolicyLossReference.java; CPU twin: native/src/policy_loss.c; a token's terms, the correction's
// weights and its rejection are native/include/rlk_math.h, one set of functions for both.
//
// One block per segment (a sequence, or a chunk of tokens when the op needs no sequences), grid-
// stride over segments: the block reduces its first look at the segment (rlk_pl_scan: what the
// sequence ratio and the rejection need), then each thread handles its tokens and keeps its
// statistics; one block reduction per block writes a partial, and rlk_policy_finish combines the
// partials in block order. Everything is f64 and in a fixed order, so the result is bitwise the
// same run after run; the loss of micro-batches given the global denominator adds up to the whole
// batch's. Launch shape: PolicyLossLaunch.
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

__device__ __forceinline__ double shfl(double v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }

struct Scan {  // rlk_pl_scan, reduced over a block
  rlk_pl_scan s;
  __device__ static Scan identity() { return Scan{rlk_pl_scan_zero()}; }
  __device__ Scan shfl_xor(int o) const {
    Scan x;
    x.s.rc = rlk_rc_seq{shfl(s.rc.n, o),      shfl(s.rc.sum_d, o),  shfl(s.rc.sum_k1, o), shfl(s.rc.sum_k2, o),
                        shfl(s.rc.sum_k3, o), shfl(s.rc.max_k2, o), shfl(s.rc.max_k3, o)};
    x.s.n_kept = shfl(s.n_kept, o);
    x.s.sum_log_ratio = shfl(s.sum_log_ratio, o);
    x.s.token_weight_sum = shfl(s.token_weight_sum, o);
    x.s.sum_opsm = shfl(s.sum_opsm, o);
    x.s.sum_geo = shfl(s.sum_geo, o);
    x.s.sum_adv = shfl(s.sum_adv, o);
    x.s.sum_log_w = shfl(s.sum_log_w, o);
    x.s.sum_vespo = shfl(s.sum_vespo, o);
    return x;
  }
};
__device__ Scan merge_scan(Scan a, Scan b) { return Scan{rlk_pl_scan_merge(a.s, b.s)}; }

struct Triple {  // three sums reduced together
  double a, b, c;
  __device__ static Triple identity() { return Triple{0.0, 0.0, 0.0}; }
  __device__ Triple shfl_xor(int o) const { return Triple{shfl(a, o), shfl(b, o), shfl(c, o)}; }
};
__device__ Triple add_triple(Triple x, Triple y) { return Triple{x.a + y.a, x.b + y.b, x.c + y.c}; }

struct Stats {  // the slots before the values (RLK_PLS_FIRST_SET), which rlk_policy_finish sets
  double v[RLK_PLS_FIRST_SET];
  __device__ static Stats identity() {
    Stats s;
    for (int j = 0; j < RLK_PLS_FIRST_SET; j++) s.v[j] = j < RLK_PLS_FIRST_MIN ? 0.0 : j < RLK_PLS_FIRST_MAX ? INFINITY : -INFINITY;
    return s;
  }
  __device__ Stats shfl_xor(int o) const {
    Stats s;
    for (int j = 0; j < RLK_PLS_FIRST_SET; j++) s.v[j] = shfl(v[j], o);
    return s;
  }
};
__device__ Stats add_stats(Stats x, Stats y) {  // sums, minima, maxima (rlk_policy_stat_section)
  Stats s;
  for (int j = 0; j < RLK_PLS_FIRST_MIN; j++) s.v[j] = x.v[j] + y.v[j];
  for (int j = RLK_PLS_FIRST_MIN; j < RLK_PLS_FIRST_MAX; j++) s.v[j] = fmin(x.v[j], y.v[j]);
  for (int j = RLK_PLS_FIRST_MAX; j < RLK_PLS_FIRST_SET; j++) s.v[j] = fmax(x.v[j], y.v[j]);
  return s;
}

// The block's first look at tokens b .. e: every thread gets the totals (through `shared`).
__device__ rlk_pl_scan scan_segment(const rlk_pl_config &c, const float *logp, const float *old, const float *rollout,
                                    const float *adv, const void *mask, int mask_u8, long long b, long long e, Scan *scratch,
                                    Scan &shared) {
  Scan own = Scan::identity();
  for (long long i = b + threadIdx.x; i < e; i += blockDim.x)
    if (rlk_kept(mask, mask_u8, i)) rlk_pl_scan_add(&c, &own.s, logp[i], old[i], rollout ? rollout[i] : 0.0, adv[i]);
  Scan total = block_reduce(own, merge_scan, scratch);
  if (threadIdx.x == 0) shared = total;
  __syncthreads();  // the totals are in shared memory before anyone reads them
  return shared.s;
}

}  // namespace

// What the batch implies where the caller did not say (implied[0] the denominator, implied[1] the
// weights' mean): one block, a thread per segment in turn, so that no segment needs a block-wide step.
extern "C" __global__ void __launch_bounds__(RLK_MAX_THREADS)
    rlk_policy_prepass(const float *logp, const float *old, const float *rollout, const float *adv, const void *mask,
                       int mask_u8, const int *offsets, long long sequences, long long n, const double *params, double *implied) {
  __shared__ Triple scratch[RLK_MAX_THREADS / RLK_WARP];
  const rlk_pl_config c = rlk_pl_config_load(params, rollout != nullptr);
  Triple sums{0.0, 0.0, 0.0};  // the denominator's count, the weights' sum and count
  const long long segments = offsets ? sequences : (n + RLK_PL_CHUNK - 1) / RLK_PL_CHUNK;
  for (long long k = threadIdx.x; k < segments; k += blockDim.x) {
    long long b, e;
    segment(offsets, k, n, b, e);
    rlk_pl_scan s = rlk_pl_scan_zero();
    for (long long i = b; i < e; i++)
      if (rlk_kept(mask, mask_u8, i)) rlk_pl_scan_add(&c, &s, logp[i], old[i], rollout ? rollout[i] : 0.0, adv[i]);
    rlk_pl_scan_finish(&c, &s);
    double ns, nc;
    rlk_pl_scan_norm(&c, &s, &ns, &nc);
    sums.a += c.agg == RLK_AGG_TOKEN_MEAN ? s.n_kept : (s.n_kept > 0);
    sums.b += ns;
    sums.c += nc;
  }
  sums = block_reduce(sums, add_triple, scratch);  // the count: integers, exact whatever the order
  if (threadIdx.x == 0) {
    double d = c.denominator;
    if (isnan(d)) {
      d = c.agg == RLK_AGG_SEQ_MEAN_TOKEN_SUM_NORM ? c.longest : c.agg == RLK_AGG_TOKEN_SUM ? 1.0 : sums.a;
      if (d == 0) d = 1.0;  // nothing kept: the loss is 0 either way
    }
    double norm = c.is_apply && c.is_normalize ? c.is_normalizer : 1.0;
    if (isnan(norm)) {  // verl: no normalisation when the mean is (nearly) 0
      const double mean = sums.c > 0 ? sums.b / sums.c : 0.0;
      norm = mean > 1e-8 ? mean : 1.0;
    }
    implied[0] = d;
    implied[1] = norm;
  }
}

// Launched with RLK_PL_THREADS threads (PolicyLossLaunch): the bound lets ptxas keep the f64 sums in registers.
extern "C" __global__ void __launch_bounds__(RLK_PL_THREADS)
    rlk_policy_loss(const float *logp, const float *old, const float *adv, const void *mask, int mask_u8,
                    const float *ref, const float *entropy, const float *rollout, const int *offsets, long long sequences,
                    long long n, const double *params, const double *implied, float *grad, float *grad_entropy,
                    double *partial) {
  __shared__ Scan scan_scratch[RLK_MAX_THREADS / RLK_WARP];
  __shared__ Triple triple_scratch[RLK_MAX_THREADS / RLK_WARP];
  __shared__ Stats stats_scratch[RLK_MAX_THREADS / RLK_WARP];
  __shared__ Scan scan_shared;
  __shared__ double coef_shared;
  const rlk_pl_config c = rlk_pl_config_load(params, rollout != nullptr);
  const double denom = implied ? implied[0] : c.denominator;  // computed on the device, or given
  const double normalizer = implied ? implied[1] : (c.is_apply && c.is_normalize ? c.is_normalizer : 1.0);
  const bool token_level_weight = c.is_level == RLK_IS_TOKEN;
  const bool seq_ratio_level = c.ratio == RLK_RATIO_SEQUENCE;  // the true derivative: a share per token
  const bool seq_value = c.ratio != RLK_RATIO_TOKEN;            // the sequence's ratio as each token's
  const long long segments = offsets ? sequences : (n + RLK_PL_CHUNK - 1) / RLK_PL_CHUNK;
  Stats st = Stats::identity();

  for (long long k = blockIdx.x; k < segments; k += gridDim.x) {
    long long b, e;
    segment(offsets, k, n, b, e);
    rlk_pl_scan scan = scan_segment(c, logp, old, rollout, adv, mask, mask_u8, b, e, scan_scratch, scan_shared);
    const bool seq_keep = rlk_pl_scan_finish(&c, &scan);
    const double n_kept = scan.n_kept;
    const double seq_log = n_kept > 0 ? scan.sum_log_ratio / n_kept : 0.0;
    const bool seq_clamped = rlk_seq_log_clamped(&c, seq_log);
    const double seq_ratio = exp(rlk_clamp(seq_log, c.seq_log_min, c.seq_log_max));
    const double w = c.agg == RLK_AGG_SEQ_MEAN_TOKEN_MEAN ? 1.0 / ((n_kept > 0 ? n_kept : 1.0) * denom) : 1.0 / denom;
    double seq_raw = 1.0, seq_applied = 1.0;  // the sequence and geometric levels' weight
    if (c.rc && scan.rc.n > 0 && c.is_level != RLK_IS_NONE && !token_level_weight) {
      seq_raw = rlk_rc_raw_weight(&c, 0.0, &scan.rc);
      seq_applied = rlk_rc_applied_weight(&c, seq_raw);
    }
    if (threadIdx.x == 0) {
      if (offsets && n_kept > 0) st.v[RLK_PL_SEQUENCES] += 1.0;
      if (c.rc && scan.rc.n > 0) {
        st.v[RLK_PL_RC_SEQUENCES] += 1.0;
        st.v[RLK_PL_RC_CHI2_SEQ_SUM] += exp(2 * rlk_clamp(scan.rc.sum_d, -20, 20));
        if (c.is_level != RLK_IS_NONE && !token_level_weight) {
          st.v[RLK_PL_RC_WEIGHT_HIGH] += seq_raw > c.is_upper;
          st.v[RLK_PL_RC_WEIGHT_LOW] += seq_raw < c.is_lower;
          st.v[RLK_PL_RC_NORM_SUM] += seq_applied;
          st.v[RLK_PL_RC_NORM_COUNT] += 1.0;
        }
      }
    }

    // geo_mean (GMPO): the sequence's loss -A_mean r_geo (times its weight) over D, and each token's
    // share of its gradient, r_geo / n over D where its clipped log-ratio is d itself
    double geo_ratio = 1.0, geo_share = 0.0;
    if (c.loss == RLK_LOSS_GEO_MEAN && n_kept > 0) {
      const double xm = scan.sum_geo / n_kept, abar = scan.sum_adv / n_kept;
      double ws = 1.0;
      if (c.rc && c.is_apply) ws = (token_level_weight ? exp(scan.sum_log_w / n_kept) : seq_applied) / normalizer;
      geo_ratio = exp(rlk_clamp(xm, c.seq_log_min, c.seq_log_max));
      if (threadIdx.x == 0) st.v[RLK_PL_LOSS] += -abar * geo_ratio * ws / denom;
      geo_share = rlk_seq_log_clamped(&c, xm) ? 0.0 : -abar * geo_ratio * ws / (n_kept * denom);
    }

    double seq_coef = 0.0, rejected = 0.0;
    for (long long i = b + threadIdx.x; i < e; i += blockDim.x) {
      if (!rlk_kept(mask, mask_u8, i)) {
        grad[i] = 0.0f;
        if (grad_entropy) grad_entropy[i] = 0.0f;
        continue;
      }
      double is_w = 1.0;
      if (c.rc) {  // the correction sees every token kept before rejection
        const double d = rlk_rc_delta(&c, logp[i], old[i], rollout ? rollout[i] : 0.0), ds = rlk_clamp(d, -20, 20);
        const double e = exp(ds);  // one exp a token: the weight, k3, chi^2 and the rejection's k3
        st.v[RLK_PL_RC_TOKENS] += 1.0;
        st.v[RLK_PL_RC_KL_SUM] += -d;
        st.v[RLK_PL_RC_K3_SUM] += (ds == d ? e : exp(d)) - d - 1;
        st.v[RLK_PL_RC_CHI2_TOKEN_SUM] += e * e;
        if (c.is_level != RLK_IS_NONE) {
          const double raw = token_level_weight ? e : seq_raw;
          const double applied = token_level_weight ? rlk_rc_applied_weight(&c, raw) : seq_applied;
          const double cl = rlk_clamp(raw, c.is_lower, c.is_upper);
          st.v[RLK_PL_RC_WEIGHT_SUM] += raw;
          st.v[RLK_PL_RC_CLAMPED_SUM] += cl;
          st.v[RLK_PL_RC_CLAMPED_SQ_SUM] += cl * cl;
          st.v[RLK_PL_RC_WEIGHT_MIN] = fmin(st.v[RLK_PL_RC_WEIGHT_MIN], raw);
          st.v[RLK_PL_RC_WEIGHT_MAX] = fmax(st.v[RLK_PL_RC_WEIGHT_MAX], raw);
          if (token_level_weight) {
            st.v[RLK_PL_RC_WEIGHT_HIGH] += raw > c.is_upper;
            st.v[RLK_PL_RC_WEIGHT_LOW] += raw < c.is_lower;
            st.v[RLK_PL_RC_NORM_SUM] += applied;
            st.v[RLK_PL_RC_NORM_COUNT] += 1.0;
          }
          if (c.is_apply) is_w = applied / normalizer;
        }
        if (!seq_keep || !rlk_rc_token_keep_e(&c, ds, e)) {  // rejected: out of the loss and its denominators
          st.v[RLK_PL_RC_REJECTED_TOKENS] += 1.0;
          rejected += 1.0;
          grad[i] = 0.0f;
          if (grad_entropy) grad_entropy[i] = 0.0f;
          continue;
        }
      }
      const double raw = (double)logp[i] - old[i], d = rlk_clamp(raw, -20, 20);
      const double r = c.loss == RLK_LOSS_GEO_MEAN ? geo_ratio : seq_value ? seq_ratio : exp(d);
      const bool clamped = seq_value ? seq_clamped : d != raw;
      is_w *= rlk_opsm_keep(&c, &scan, adv[i]) * rlk_entropy_keep(&c, entropy ? entropy[i] : 0.0);
      const rlk_terms t = rlk_token_terms(&c, r, adv[i], logp[i], old[i], ref ? ref[i] : 0.0, entropy ? entropy[i] : 0.0,
                                          is_w, scan.sum_vespo, i);
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
      if (c.loss == RLK_LOSS_GEO_MEAN && rlk_geo_through(&c, raw, adv[i])) g += geo_share;
      if (!clamped) {
        if (!seq_ratio_level)
          g += w * t.d_ratio * r;  // dr/dlogp = r (sequence-token: sg(r_s) p / sg(p), the same)
        else
          seq_coef += w * t.d_ratio;
      }
      grad[i] = (float)g;
      if (grad_entropy) grad_entropy[i] = (float)(-w * c.ent_coef);
    }
    // the block's sums of the sequence's coefficient and its rejected tokens
    Triple sums = block_reduce(Triple{seq_coef, rejected, 0.0}, add_triple, triple_scratch);
    if (threadIdx.x == 0) {
      coef_shared = sums.a;
      if (sums.b > 0) st.v[RLK_PL_RC_REJECTED_SEQUENCES] += 1.0;
    }
    __syncthreads();  // the sequence's coefficient is in shared memory before anyone reads it
    if (seq_ratio_level) {
      // dr_s/dlogp_j = r_s m_j / n_s: a share of sum(w dl/dr) for every token kept, added to the
      // direct term recomputed in double, so that each gradient is rounded once
      const double share = n_kept > 0 ? coef_shared * seq_ratio / n_kept : 0.0;
      for (long long i = b + threadIdx.x; i < e; i += blockDim.x) {
        if (!rlk_kept(mask, mask_u8, i)) continue;
        double is_w = 1.0;
        if (c.rc) {
          const double d = rlk_rc_delta(&c, logp[i], old[i], rollout ? rollout[i] : 0.0);
          if (!seq_keep || !rlk_rc_token_keep(&c, d)) continue;
          if (c.is_level != RLK_IS_NONE && c.is_apply)
            is_w = (token_level_weight ? rlk_rc_applied_weight(&c, exp(rlk_clamp(d, -20, 20))) : seq_applied) / normalizer;
        }
        is_w *= rlk_opsm_keep(&c, &scan, adv[i]) * rlk_entropy_keep(&c, entropy ? entropy[i] : 0.0);
        const rlk_terms t =
            rlk_token_terms(&c, seq_ratio, adv[i], logp[i], old[i], ref ? ref[i] : 0.0, 0.0, is_w, scan.sum_vespo, i);
        grad[i] = (float)(w * t.d_direct + share);
      }
    }
    __syncthreads();  // the shared totals are rewritten by the next segment
  }
  st = block_reduce(st, add_stats, stats_scratch);
  if (threadIdx.x == 0)
    for (int j = 0; j < RLK_PLS_FIRST_SET; j++) partial[(long long)blockIdx.x * RLK_PLS_FIRST_SET + j] = st.v[j];
}

// Combines the blocks' partials in block order (sums, minima, maxima), then sets the values used.
extern "C" __global__ void rlk_policy_finish(const double *partial, int blocks, const double *params, const double *implied,
                                             double *stats) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double s[RLK_PL_STATS];
  for (int j = 0; j < RLK_PLS_FIRST_SET; j++) s[j] = j < RLK_PLS_FIRST_MIN ? 0.0 : j < RLK_PLS_FIRST_MAX ? INFINITY : -INFINITY;
  for (int k = 0; k < blocks; k++) {
    const double *p = partial + (long long)k * RLK_PLS_FIRST_SET;
    for (int j = 0; j < RLK_PLS_FIRST_MIN; j++) s[j] += p[j];
    for (int j = RLK_PLS_FIRST_MIN; j < RLK_PLS_FIRST_MAX; j++) s[j] = fmin(s[j], p[j]);
    for (int j = RLK_PLS_FIRST_MAX; j < RLK_PLS_FIRST_SET; j++) s[j] = fmax(s[j], p[j]);
  }
  if (s[RLK_PL_TOKENS] == 0) s[RLK_PL_RATIO_MIN] = s[RLK_PL_RATIO_MAX] = 0.0;
  if (!(s[RLK_PL_RC_WEIGHT_MIN] <= s[RLK_PL_RC_WEIGHT_MAX])) s[RLK_PL_RC_WEIGHT_MIN] = s[RLK_PL_RC_WEIGHT_MAX] = 0.0;
  const bool normalized = params[RLK_PP_IS_APPLY] != 0 && params[RLK_PP_IS_NORMALIZE] != 0;
  s[RLK_PL_DENOMINATOR] = implied ? implied[0] : params[RLK_PP_DENOMINATOR];
  s[RLK_PL_RC_NORMALIZER] = implied ? implied[1] : (normalized ? params[RLK_PP_IS_NORMALIZER] : 1.0);
  for (int j = 0; j < RLK_PL_STATS; j++) stats[j] = s[j];
}
