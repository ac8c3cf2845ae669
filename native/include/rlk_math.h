/*
 * rlk_math.h — the per-token and per-sequence math of the ops (policy loss, KL, group advantages, BGPO), written once for the native C
 * (native/src) and the CUDA kernels (cuda-kernels/, also compiled as host C++ by the emulator):
 * small functions in the common subset of C and CUDA C++, RLK_HD marking them for both. The Java
 * reference (ReferenceBackend) is written apart on purpose: it is the oracle the tests hold these to.
 *
 * Plain comparisons, not fmin/fmax: every input is finite (the host checks), and fmin's NaN rules
 * cost a call in C. The formulas are io.rlkernels.ops.PolicyLoss's and Bgpo's.
 */
#ifndef RLK_MATH_H
#define RLK_MATH_H

#include <math.h>
#include <stdint.h>

#include "rlk_contract.h"

#ifdef __cplusplus
#define RLK_HD __host__ __device__ __forceinline__
#else
#define RLK_HD static inline __attribute__((always_inline))
#endif

/* A mask element: f32 (nonzero keeps) or u8. */
RLK_HD int rlk_kept(const void *mask, int mask_u8, int64_t i) {
  return mask_u8 ? ((const uint8_t *)mask)[i] != 0 : ((const float *)mask)[i] != 0.0f;
}

RLK_HD double rlk_clamp(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* PPO's clipped surrogate of a ratio r and an advantage a: loss = max(-a ru, -a clip(r, 1 - low,
   1 + high)), then at most -dual a for a < 0 when dual > 0 (the dual clip); ru is r in the
   unclipped term (r itself, or r bounded by TRL's delta). `slope`: dloss/dr, through whichever
   term is the loss (0 where it is a clipped or bounded constant); `through_ratio`: the loss is the
   unclipped -a ru. Which clip bound was hit is counted. */
typedef struct {
  double loss, slope;
  int through_ratio, high, low, dual;
} rlk_clip;

RLK_HD rlk_clip rlk_ppo_clip2(double r, double ru, double a, double clip_low, double clip_high, double dual) {
  rlk_clip c = {0, 0, 0, 0, 0, 0};
  const double clipped = rlk_clamp(r, 1.0 - clip_low, 1.0 + clip_high);
  const double unclipped_loss = -a * ru, clipped_loss = -a * clipped;
  c.loss = unclipped_loss > clipped_loss ? unclipped_loss : clipped_loss;
  c.through_ratio = unclipped_loss >= clipped_loss;
  if (c.through_ratio) {
    c.slope = ru == r ? -a : 0.0;
  } else {
    c.slope = clipped == r ? -a : 0.0; /* only with a bounded ru: the clipped term, unclipped itself */
    c.high = r > 1.0 + clip_high;
    c.low = r < 1.0 - clip_low;
  }
  if (dual > 0 && a < 0 && c.loss > -dual * a) {
    c.loss = -dual * a;
    c.slope = 0.0;
    c.through_ratio = 0;
    c.dual = 1;
  }
  return c;
}

RLK_HD rlk_clip rlk_ppo_clip(double r, double a, double clip_low, double clip_high, double dual) {
  return rlk_ppo_clip2(r, r, a, clip_low, clip_high, dual);
}

/* The KL penalty of diff = logp - ref for enum rlk_kl, and its slope in logp. k3 is
   exp(-diff) + diff - 1 with -diff clamped to [-20, 20] and the value capped at 10 (slope 0 there).
   The straight-through k1+ and k3+ keep k1's or k3's value and take k2's slope, diff. */
typedef struct {
  double k, dk;
} rlk_kl_term;

RLK_HD rlk_kl_term rlk_kl(int kl, double diff) {
  rlk_kl_term t = {0, 0};
  switch (kl) {
    case RLK_KL_NONE: break;
    case RLK_KL_K1: t.k = diff; t.dk = 1; break;
    case RLK_KL_K2: t.k = 0.5 * diff * diff; t.dk = diff; break;
    case RLK_KL_K3:
    case RLK_KL_K3_PLUS: {
      const double x = rlk_clamp(-diff, -20, 20), ex = exp(x);
      t.k = ex - x - 1;
      t.dk = fabs(x) < 20 ? 1 - ex : 0;
      if (t.k > 10) {
        t.k = 10;
        t.dk = 0;
      }
      if (kl == RLK_KL_K3_PLUS) t.dk = diff;
      break;
    }
    case RLK_KL_K1_PLUS: t.k = diff; t.dk = diff; break;
    default: t.k = fabs(diff); t.dk = diff > 0 ? 1 : (diff < 0 ? -1 : 0); break; /* RLK_KL_ABS */
  }
  return t;
}

/* The policy loss's configuration as the kernels take it: loaded from the f64 parameter array
   (enum rlk_pl_param; codes rlk_contract.h). rc: a rollout correction is on (a rollout log-prob
   is given, or bypass mode); rs_token / rs_seq: some token / sequence rejection option is on. */
typedef struct {
  int loss, ratio, agg, kl, bypass, is_level, is_mode, is_apply, is_normalize, rc, rs_token, rs_seq, opsm_on;
  double clip_low, clip_high, dual, kl_coef, ent_coef, denominator, longest, is_lower, is_upper, is_normalizer;
  double tau_pos, tau_neg, dro_beta, delta, opsm, seq_log_min, seq_log_max, vk_pos, vl_pos, vk_neg, vl_neg;
  double ent_threshold, cov_mean_adv, cov_mean_logp, cov_threshold, cov_lb, cov_ub, ppo_kl_coef;
  int ent_select;
  uint64_t seed, token_offset;
  double rs_lo[RLK_RS_OPTIONS], rs_hi[RLK_RS_OPTIONS];
} rlk_pl_config;

RLK_HD rlk_pl_config rlk_pl_config_load(const double *p, int has_rollout) {
  rlk_pl_config c;
  c.loss = (int)p[RLK_PP_LOSS];
  c.ratio = (int)p[RLK_PP_RATIO];
  c.agg = (int)p[RLK_PP_AGG];
  c.kl = (int)p[RLK_PP_KL];
  c.clip_low = p[RLK_PP_CLIP_LOW];
  c.clip_high = p[RLK_PP_CLIP_HIGH];
  c.dual = p[RLK_PP_DUAL_CLIP];
  c.kl_coef = p[RLK_PP_KL_COEF];
  c.ent_coef = p[RLK_PP_ENTROPY_COEF];
  c.denominator = p[RLK_PP_DENOMINATOR];
  c.longest = p[RLK_PP_LONGEST];
  c.bypass = p[RLK_PP_BYPASS] != 0;
  c.is_level = (int)p[RLK_PP_IS_LEVEL];
  c.is_mode = (int)p[RLK_PP_IS_MODE];
  c.is_lower = p[RLK_PP_IS_LOWER];
  c.is_upper = p[RLK_PP_IS_UPPER];
  c.is_apply = p[RLK_PP_IS_APPLY] != 0;
  c.is_normalize = p[RLK_PP_IS_NORMALIZE] != 0;
  c.is_normalizer = p[RLK_PP_IS_NORMALIZER];
  c.tau_pos = p[RLK_PP_TAU_POS];
  c.tau_neg = p[RLK_PP_TAU_NEG];
  c.dro_beta = p[RLK_PP_DRO_BETA];
  c.delta = p[RLK_PP_DELTA];
  c.opsm = p[RLK_PP_OPSM];
  c.opsm_on = !isnan(c.opsm);
  c.seq_log_min = p[RLK_PP_SEQ_LOG_MIN];
  c.seq_log_max = p[RLK_PP_SEQ_LOG_MAX];
  c.vk_pos = p[RLK_PP_VESPO_K_POS];
  c.vl_pos = p[RLK_PP_VESPO_LAMBDA_POS];
  c.vk_neg = p[RLK_PP_VESPO_K_NEG];
  c.vl_neg = p[RLK_PP_VESPO_LAMBDA_NEG];
  c.ent_threshold = p[RLK_PP_ENTROPY_THRESHOLD];
  c.ent_select = !isnan(c.ent_threshold);
  c.cov_mean_adv = p[RLK_PP_COV_MEAN_ADV];
  c.cov_mean_logp = p[RLK_PP_COV_MEAN_LOGP];
  c.cov_threshold = p[RLK_PP_COV_THRESHOLD];
  c.cov_lb = p[RLK_PP_COV_LB];
  c.cov_ub = p[RLK_PP_COV_UB];
  c.ppo_kl_coef = p[RLK_PP_PPO_KL_COEF];
  c.seed = (uint64_t)(int64_t)p[RLK_PP_SEED];
  c.token_offset = (uint64_t)(int64_t)p[RLK_PP_TOKEN_OFFSET];
  c.rs_token = c.rs_seq = 0;
  for (int o = 0; o < RLK_RS_OPTIONS; o++) {
    c.rs_lo[o] = p[RLK_PP_RS_BOUNDS + 2 * o];
    c.rs_hi[o] = p[RLK_PP_RS_BOUNDS + 2 * o + 1];
    const int on = c.rs_lo[o] > -INFINITY || c.rs_hi[o] < INFINITY;
    if (o <= RLK_RS_TOKEN_K3) c.rs_token |= on;
    else c.rs_seq |= on;
  }
  c.rc = has_rollout || c.bypass;
  return c;
}

/* ---- rollout correction (PolicyLoss.RolloutCorrection) ---- */

/* d = log(prox / rollout) of a token: prox is the policy the loss is relative to (old; logp in
   bypass mode, where old is the rollout policy). */
RLK_HD double rlk_rc_delta(const rlk_pl_config *c, double lp, double old, double rollout) {
  return c->bypass ? lp - old : old - rollout;
}

/* The rejection statistics of a token, from d clamped to [-20, 20] (verl's rollout_rs): k1 =
   -d (bounded in log space), k2 = d^2 / 2, k3 = exp(d) - 1 - d. */
RLK_HD double rlk_rc_k2(double ds) { return 0.5 * ds * ds; }
RLK_HD int rlk_rc_within(const rlk_pl_config *c, int option, double x) { return x >= c->rs_lo[option] && x <= c->rs_hi[option]; }

/* Whether a token passes the token-level options, from ds = clamp(d, -20, 20) and e = exp(ds)
   (computed once a token: the weight, k3 and chi^2 all need it). */
RLK_HD int rlk_rc_token_keep_e(const rlk_pl_config *c, double ds, double e) {
  if (!c->rs_token) return 1;
  return rlk_rc_within(c, RLK_RS_TOKEN_K1, -ds) && rlk_rc_within(c, RLK_RS_TOKEN_K2, rlk_rc_k2(ds)) &&
         rlk_rc_within(c, RLK_RS_TOKEN_K3, e - 1.0 - ds);
}

RLK_HD int rlk_rc_token_keep(const rlk_pl_config *c, double d) {
  if (!c->rs_token) return 1;
  const double ds = rlk_clamp(d, -20, 20);
  return rlk_rc_token_keep_e(c, ds, exp(ds));
}

/* A sequence's sums over its tokens kept before rejection (n of them): d, and k1 (-clamped d),
   k2, k3, with the maxima of k2 and k3. */
typedef struct {
  double n, sum_d, sum_k1, sum_k2, sum_k3, max_k2, max_k3;
} rlk_rc_seq;

RLK_HD rlk_rc_seq rlk_rc_seq_zero(void) {
  rlk_rc_seq s = {0, 0, 0, 0, 0, -INFINITY, -INFINITY};
  return s;
}

RLK_HD void rlk_rc_seq_add_e(rlk_rc_seq *s, double d, double ds, double e) {
  const double k2 = rlk_rc_k2(ds), k3 = e - 1.0 - ds;
  s->n += 1;
  s->sum_d += d;
  s->sum_k1 += -ds;
  s->sum_k2 += k2;
  s->sum_k3 += k3;
  s->max_k2 = k2 > s->max_k2 ? k2 : s->max_k2;
  s->max_k3 = k3 > s->max_k3 ? k3 : s->max_k3;
}

RLK_HD rlk_rc_seq rlk_rc_seq_merge(rlk_rc_seq a, rlk_rc_seq b) {
  rlk_rc_seq s = {a.n + b.n, a.sum_d + b.sum_d, a.sum_k1 + b.sum_k1, a.sum_k2 + b.sum_k2, a.sum_k3 + b.sum_k3,
                  a.max_k2 > b.max_k2 ? a.max_k2 : b.max_k2, a.max_k3 > b.max_k3 ? a.max_k3 : b.max_k3};
  return s;
}

/* Whether a sequence passes the sequence-level options (an empty sequence's statistics are 0). */
RLK_HD int rlk_rc_seq_keep(const rlk_pl_config *c, const rlk_rc_seq *s) {
  if (!c->rs_seq) return 1;
  const double n = s->n > 0 ? s->n : 1.0;
  const double mk2 = s->n > 0 ? s->max_k2 : 0.0, mk3 = s->n > 0 ? s->max_k3 : 0.0;
  return rlk_rc_within(c, RLK_RS_SEQ_SUM_K1, s->sum_k1) && rlk_rc_within(c, RLK_RS_SEQ_SUM_K2, s->sum_k2) &&
         rlk_rc_within(c, RLK_RS_SEQ_SUM_K3, s->sum_k3) && rlk_rc_within(c, RLK_RS_SEQ_MEAN_K1, s->sum_k1 / n) &&
         rlk_rc_within(c, RLK_RS_SEQ_MEAN_K2, s->sum_k2 / n) && rlk_rc_within(c, RLK_RS_SEQ_MEAN_K3, s->sum_k3 / n) &&
         rlk_rc_within(c, RLK_RS_SEQ_MAX_K2, mk2) && rlk_rc_within(c, RLK_RS_SEQ_MAX_K3, mk3);
}

/* The importance weight before any threshold, exp(clamp(x, -20, 20)) of x = d (token level), the
   sequence's sum of d (sequence: the product of the token ratios) or its mean (geometric). */
RLK_HD double rlk_rc_raw_weight(const rlk_pl_config *c, double d, const rlk_rc_seq *s) {
  const double x = c->is_level == RLK_IS_TOKEN ? d : c->is_level == RLK_IS_SEQUENCE ? s->sum_d : (s->n > 0 ? s->sum_d / s->n : 0.0);
  return exp(rlk_clamp(x, -20, 20));
}

/* The weight after the threshold: truncated at the upper bound (TIS), or 0 outside [lower, upper] (IcePop). */
RLK_HD double rlk_rc_applied_weight(const rlk_pl_config *c, double raw) {
  if (c->is_mode == RLK_ISM_MASK) return raw < c->is_lower || raw > c->is_upper ? 0.0 : raw;
  return raw > c->is_upper ? c->is_upper : raw;
}

/* A segment's first look at its tokens: the correction's sums over the tokens kept before
   rejection, whether it passes the sequence options, and over the tokens kept after rejection
   their count and summed log-ratio (the sequence ratio's), and the token-level weights'
   sum (for the batch mean of the weights). */
typedef struct {
  rlk_rc_seq rc;
  double n_kept, sum_log_ratio, token_weight_sum, sum_opsm;
  double sum_geo, sum_adv, sum_log_w, sum_vespo; /* geo_mean's and vespo's sums over the tokens kept */
} rlk_pl_scan;

/* GMPO's sign-clipped log-ratio of a token: min(d, eps_high) for A > 0, max(d, -eps_low) for A < 0,
   0 for A = 0 (verl's sgn(A) min(sgn(A) d, sgn(A) clamp(d))); and whether it depends on d. */
RLK_HD double rlk_geo_x(const rlk_pl_config *c, double d, double a) {
  return a > 0 ? (d < c->clip_high ? d : c->clip_high) : a < 0 ? (d > -c->clip_low ? d : -c->clip_low) : 0.0;
}
RLK_HD int rlk_geo_through(const rlk_pl_config *c, double d, double a) {
  return a > 0 ? d < c->clip_high : a < 0 ? d > -c->clip_low : 0;
}

RLK_HD rlk_pl_scan rlk_pl_scan_zero(void) {
  rlk_pl_scan s;
  s.rc = rlk_rc_seq_zero();
  s.n_kept = s.sum_log_ratio = s.token_weight_sum = s.sum_opsm = 0;
  s.sum_geo = s.sum_adv = s.sum_log_w = s.sum_vespo = 0;
  return s;
}

/* One kept token (mask set, advantage a) of the segment. */
RLK_HD void rlk_pl_scan_add(const rlk_pl_config *c, rlk_pl_scan *s, double lp, double old, double rollout, double a) {
  double w = 1.0; /* the token's applied weight, at the token level */
  if (c->rc) {
    const double d = rlk_rc_delta(c, lp, old, rollout), ds = rlk_clamp(d, -20, 20), e = exp(ds);
    rlk_rc_seq_add_e(&s->rc, d, ds, e);
    if (c->is_level == RLK_IS_TOKEN) {
      w = rlk_rc_applied_weight(c, e); /* the token's raw weight is e */
      s->token_weight_sum += w;
    }
    if (!rlk_rc_token_keep_e(c, ds, e)) return;
  }
  s->n_kept += 1;
  s->sum_log_ratio += lp - old;
  if (c->opsm_on) s->sum_opsm += (c->rc && !c->bypass ? rollout : old) - lp; /* the sampler's log-prob - logp */
  const int token_weights = c->rc && c->is_level == RLK_IS_TOKEN;
  if (c->loss == RLK_LOSS_GEO_MEAN) {
    s->sum_geo += rlk_geo_x(c, lp - old, a);
    s->sum_adv += a;
    if (token_weights) s->sum_log_w += log(w + 1e-10); /* verl: the token weights' geometric mean */
  } else if (c->loss == RLK_LOSS_VESPO) { /* TRL: sum of clamp(d), plus the token weights' clamped logs */
    s->sum_vespo += rlk_clamp(lp - old, -20, 20);
    if (token_weights) s->sum_vespo += w > 0 ? rlk_clamp(log(w), -18.420680743952367, 20) : -18.420680743952367;
  }
}

RLK_HD rlk_pl_scan rlk_pl_scan_merge(rlk_pl_scan a, rlk_pl_scan b) {
  rlk_pl_scan s;
  s.rc = rlk_rc_seq_merge(a.rc, b.rc);
  s.n_kept = a.n_kept + b.n_kept;
  s.sum_log_ratio = a.sum_log_ratio + b.sum_log_ratio;
  s.token_weight_sum = a.token_weight_sum + b.token_weight_sum;
  s.sum_opsm = a.sum_opsm + b.sum_opsm;
  s.sum_geo = a.sum_geo + b.sum_geo;
  s.sum_adv = a.sum_adv + b.sum_adv;
  s.sum_log_w = a.sum_log_w + b.sum_log_w;
  s.sum_vespo = a.sum_vespo + b.sum_vespo;
  return s;
}

/* Whether the segment's sequence survives rejection; if not, nothing of it is kept. */
RLK_HD int rlk_pl_scan_finish(const rlk_pl_config *c, rlk_pl_scan *s) {
  const int keep = !c->rc || rlk_rc_seq_keep(c, &s->rc);
  if (!keep) s->n_kept = s->sum_log_ratio = s->sum_opsm = s->sum_geo = s->sum_adv = s->sum_log_w = s->sum_vespo = 0;
  return keep;
}

/* A segment's part of the batch mean of the applied weights: its sum and count (tokens at the
   token level, the sequence itself at the others). */
RLK_HD void rlk_pl_scan_norm(const rlk_pl_config *c, const rlk_pl_scan *s, double *sum, double *count) {
  if (c->is_level == RLK_IS_TOKEN) {
    *sum = s->token_weight_sum;
    *count = s->rc.n;
  } else if (c->is_level != RLK_IS_NONE && s->rc.n > 0) {
    *sum = rlk_rc_applied_weight(c, rlk_rc_raw_weight(c, 0.0, &s->rc));
    *count = 1;
  } else {
    *sum = *count = 0;
  }
}

/* The off-policy sequence mask (DeepSeek-V3.2, TRL's off_policy_mask_threshold): a token keeps its
   policy-gradient term if its advantage is >= 0 or its sequence's mean of (sampler - logp) is at
   most the threshold. */
RLK_HD double rlk_opsm_keep(const rlk_pl_config *c, const rlk_pl_scan *s, double a) {
  if (!c->opsm_on || a >= 0) return 1.0;
  return s->sum_opsm / (s->n_kept > 1 ? s->n_kept : 1.0) <= c->opsm ? 1.0 : 0.0;
}

/* TRL's top_entropy_quantile: a token keeps its policy-gradient term if its entropy is at least
   the batch's quantile (the threshold; off when NaN). */
RLK_HD double rlk_entropy_keep(const rlk_pl_config *c, double h) { return !c->ent_select || h >= c->ent_threshold ? 1.0 : 0.0; }

/* A sequence ratio's logarithm: clamped to [seq_log_min, seq_log_max] (its gradient 0 outside). */
RLK_HD int rlk_seq_log_clamped(const rlk_pl_config *c, double x) { return x < c->seq_log_min || x > c->seq_log_max; }

/* DPPO's trust region (arXiv 2602.04879): whether the token's probability moved within the bound
   of its advantage's side, by total variation (|p - p_old|) or binary KL. */
RLK_HD int rlk_dppo_valid(const rlk_pl_config *c, double a, double lp, double old) {
  const double p = exp(lp), p_old = exp(old);
  if (c->loss == RLK_LOSS_DPPO_TV) return a > 0 ? p - p_old <= c->clip_high : p - p_old >= -c->clip_low;
  const double bkl = p_old * (old - lp) + (1.0 - p_old) * log((1.0 - p_old + 1e-8) / (1.0 - p + 1e-8));
  return a > 0 ? (bkl <= c->clip_high || p <= p_old) : (bkl <= c->clip_low || p >= p_old);
}

/* One kept token's loss l, dl/dr (through the ratio) and dl/dlogp (directly), and its clipping
   (high / low: which bound binds, or for DPPO which side left its trust region; dual: the dual
   clip, or DPPO's truncation, binds); w multiplies the policy-gradient term (the rollout
   correction's weight and the off-policy mask; 1 without). */
typedef struct {
  double loss, d_ratio, d_direct;
  int high, low, dual;
} rlk_terms;

/* VESPO's weight of a token: phi = exp(lambda + k log w - lambda w) of its sequence's log w,
   clamped to [log 1e-8, 20] (k, lambda by the advantage's sign; lambda at least 1e-4); 0 where
   that is not finite. */
RLK_HD double rlk_vespo_phi(const rlk_pl_config *c, double log_w_sum, double a) {
  const double lw = rlk_clamp(log_w_sum, -18.420680743952367, 20), w = exp(lw);
  const double k = a >= 0 ? c->vk_pos : c->vk_neg;
  double lambda = a >= 0 ? c->vl_pos : c->vl_neg;
  lambda = lambda < 1e-4 ? 1e-4 : lambda;
  const double phi = exp(lambda + k * lw - lambda * w);
  return phi == phi && phi < INFINITY ? phi : 0.0;
}

/* clip_cov's random choice, reproducible and the same on every backend and micro-batch split: a
   token's key in [0, 1) is splitmix64 of (seed, its index in the whole batch); the chosen are the
   candidates with the smallest keys (PolicyLossSelection.selectKey is the Java twin). */
RLK_HD double rlk_select_key(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}

/* seqv: the sequence's value a loss needs (vespo: its sum of log-ratios, rlk_pl_scan.sum_vespo);
   index: the token's index in this call (clip_cov's key). */
RLK_HD rlk_terms rlk_token_terms(const rlk_pl_config *c, double r, double a, double lp, double old, double ref, double h,
                                 double w, double seqv, int64_t index) {
  rlk_terms t = {0, 0, 0, 0, 0, 0};
  switch (c->loss) {
    case RLK_LOSS_CLIP_COV: { /* PPO's clip (no dual clip); a chosen high-covariance candidate is detached */
      const rlk_clip k = rlk_ppo_clip2(r, r, a, c->clip_low, c->clip_high, 0.0);
      const double cov = (a - c->cov_mean_adv) * (lp - c->cov_mean_logp);
      const int by_origin = -a * rlk_clamp(r, 1.0 - c->clip_low, 1.0 + c->clip_high) > -a * r;
      const int chosen = !by_origin && cov > c->cov_lb && cov < c->cov_ub &&
                         rlk_select_key(c->seed, c->token_offset + (uint64_t)index) <= c->cov_threshold;
      t.loss = chosen ? 0.0 : k.loss;
      t.d_ratio = chosen ? 0.0 : k.slope;
      t.high = chosen; /* verl's pg_clipfrac for clip_cov: the chosen tokens */
      break;
    }
    case RLK_LOSS_KL_COV: { /* -A r, unclipped; the top-covariance tokens add ppo_kl_coef |logp - old| */
      const double cov = (a - c->cov_mean_adv) * (lp - c->cov_mean_logp), lr = lp - old;
      t.loss = -a * r;
      t.d_ratio = -a;
      if (cov >= c->cov_threshold) {
        t.loss += c->ppo_kl_coef * fabs(lr);
        t.d_direct = c->ppo_kl_coef * (lr > 0 ? 1.0 : lr < 0 ? -1.0 : 0.0);
        t.high = 1;
      }
      break;
    }
    case RLK_LOSS_GEO_MEAN: { /* the loss is the sequence's (its coefficient: the op's); here the clip counts */
      const double d = lp - old;
      const int clipped = d < -c->clip_low || d > c->clip_high;
      t.high = clipped && a > 0;
      t.low = clipped && a < 0;
      break;
    }
    case RLK_LOSS_VESPO: { /* -sg(phi) A logp */
      const double phi = rlk_vespo_phi(c, seqv, a);
      t.loss = -phi * a * lp;
      t.d_direct = -phi * a;
      break;
    }
    case RLK_LOSS_PPO: {
      /* delta > 0: the unclipped term's ratio is bounded by it too (INTELLECT-2's two-sided clip) */
      const double ru = c->delta > 0 && r > c->delta ? c->delta : r;
      const rlk_clip k = rlk_ppo_clip2(r, ru, a, c->clip_low, c->clip_high, c->dual);
      t.loss = k.loss;
      t.d_ratio = k.slope;
      t.high = k.high;
      t.low = k.low;
      t.dual = k.dual;
      break;
    }
    case RLK_LOSS_CISPO: { /* the clipped ratio as a constant weight of -a logp */
      const double clipped = rlk_clamp(r, 1.0 - c->clip_low, 1.0 + c->clip_high);
      t.loss = -clipped * a * lp;
      t.d_direct = -clipped * a;
      t.high = r > 1.0 + c->clip_high;
      t.low = r < 1.0 - c->clip_low;
      break;
    }
    case RLK_LOSS_SAPO: { /* the soft gate sigma(tau (r - 1)) 4 / tau in place of the clip */
      const double tau = a > 0 ? c->tau_pos : c->tau_neg, s = 1.0 / (1.0 + exp(-tau * (r - 1.0)));
      t.loss = -s * 4.0 / tau * a;
      t.d_ratio = -a * 4.0 * s * (1.0 - s);
      break;
    }
    case RLK_LOSS_DRO: { /* -(logp a - beta / 2 (logp - old)^2), the log-ratio unclamped */
      const double lr = lp - old;
      t.loss = -(lp * a - 0.5 * c->dro_beta * lr * lr);
      t.d_direct = -a + c->dro_beta * lr;
      break;
    }
    case RLK_LOSS_DPPO_TV:
    case RLK_LOSS_DPPO_KL: { /* -a sg(min(r, c)) logp inside the trust region, 0 outside */
      const int valid = rlk_dppo_valid(c, a, lp, old);
      const double tr = c->dual > 0 && r > c->dual ? c->dual : r;
      t.loss = valid ? -a * tr * lp : 0.0;
      t.d_direct = valid ? -a * tr : 0.0;
      t.high = !valid && a > 0;
      t.low = !valid && a <= 0;
      t.dual = valid && c->dual > 0 && r > c->dual;
      break;
    }
    default: /* RLK_LOSS_REINFORCE (verl's gpg) */
      t.loss = -a * lp;
      t.d_direct = -a;
  }
  t.loss *= w;
  t.d_ratio *= w;
  t.d_direct *= w;
  if (c->kl != RLK_KL_NONE && c->kl_coef != 0) {
    const rlk_kl_term k = rlk_kl(c->kl, lp - ref);
    t.loss += c->kl_coef * k.k;
    t.d_direct += c->kl_coef * k.dk;
  }
  t.loss -= c->ent_coef * h;
  return t;
}

/* One member's group advantage (enum rlk_adv_mode) from its reward x and its group's mean, std
   and size n (OPO: the length-weighted mean; GPG: scale is alpha). The first five modes give a
   group of one 0, and grpo and batch a member equal to the mean 0 (a constant group: 0, even for
   eps = 0); gpg and opo follow verl there, a group of one having mean 0. grpo_passk is
   rlk_passk_advantage. */
RLK_HD float rlk_advantage(int mode, double x, double mean, double std, int64_t n, float eps, double scale) {
  if (mode == RLK_ADV_GPG) return (float)(scale * (n == 1 ? x : x - mean));
  if (mode == RLK_ADV_OPO) return (float)(n == 1 ? x : x - mean);
  if (n == 1) return 0.0f;
  switch (mode) {
    case RLK_ADV_GRPO:
    case RLK_ADV_BATCH: return x == mean ? 0.0f : (float)((x - mean) / (std + eps));
    case RLK_ADV_DRGRPO: return (float)(x - mean);
    case RLK_ADV_RLOO: return (float)((x - mean) * (double)n / (double)(n - 1));
    default: return (float)x; /* RLK_ADV_NONE */
  }
}

/* grpo_passk (verl, arXiv 2503.19595): the group's best member (the first of equal maxima) gets
   top - second, divided by std + eps when by_std (a tie: 0); every other member 0. */
RLK_HD float rlk_passk_advantage(int is_top, double top, double second, double std, float eps, int by_std) {
  if (!is_top || top == second) return 0.0f; /* a tie for the best: 0, even for eps = 0 */
  return (float)(by_std ? (top - second) / (std + eps) : top - second);
}

/* The optimal token baseline (io.rlkernels.ops.OptimalTokenBaseline): a token's energy, the
   variance proxy 1 - 2 pi + sum pi^2 (pi = exp(old logp)) times rho^2 (rho: the rollout IS
   weight, 1 without), and the baseline of a position from its sums over the group, num = sum m G W
   and den = sum m W (0 where den + eps is 0: nothing to weigh). */
RLK_HD double rlk_otb_energy(double old_logp, double sum_pi_sq, double rho) {
  return (1.0 - 2.0 * exp(old_logp) + sum_pi_sq) * rho * rho;
}

RLK_HD double rlk_otb_baseline(double num, double den, double eps) {
  const double d = den + eps;
  return d != 0.0 ? num / d : 0.0;
}

/* The group's longest trajectory gets no baseline from `second` on when it alone is the longest
   (handle_zero_tail): `max`, `second` are the largest and second largest kept lengths (equal when
   two tie for the longest, and then no member's tail is zeroed); `longest`: the member is the first
   of length max. */
RLK_HD int rlk_otb_zero_tail(int zero_tail, int64_t n, int longest, int64_t max, int64_t second, int64_t position) {
  return zero_tail && n > 1 && max > second && longest && position >= second;
}

/* BGPO's per-sample ratio psi of d = l - l_old and its slope in d: 1 + d where a >= 0; exp(d)
   where a < 0, with d clamped to [-20, 20] (slope 0 outside). */
typedef struct {
  double psi, dpsi;
} rlk_psi;

RLK_HD rlk_psi rlk_bgpo_psi(double d, double a) {
  rlk_psi p;
  if (a >= 0) {
    p.psi = 1.0 + d;
    p.dpsi = 1.0;
  } else {
    const double dc = rlk_clamp(d, -20, 20);
    p.psi = exp(dc);
    p.dpsi = dc == d ? p.psi : 0.0;
  }
  return p;
}

#endif
