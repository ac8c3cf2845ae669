/*
 * policy_loss.c — clipped importance-ratio policy losses (PPO, CISPO, REINFORCE; token or sequence
 * ratio; KL and entropy terms; rollout correction) with dL/dlogp, fused, on the CPU (ARCHITECTURE
 * §5.3). The formulas are those of io.rlkernels.ops.PolicyLoss; PolicyLossReference.java is the
 * readable version; the CUDA twin is cuda-kernels/policy_loss.cu; a token's terms, the
 * correction's weights and rejection are rlk_math.h, one set of functions for both.
 *
 * Work is split by segment (a sequence, or a fixed chunk of tokens when the op needs no
 * sequences); each segment writes its partial statistics, added afterwards in segment order, so
 * the result does not depend on the thread count. Everything is computed in double.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "overflow.h"
#include "rlk_math.h"
#include "rlkernels.h"

/* Codes, parameter and stats slots and RLK_PL_CHUNK: rlk_contract.h; a token's terms, the
   rollout correction and the kept rule: rlk_math.h, shared with policy_loss.cu. */

/* Plain comparisons, not fmin/fmax: the inputs are finite (checked), and fmin's NaN rules cost a call. */
static inline double mind(double a, double b) { return a < b ? a : b; }
static inline double maxd(double a, double b) { return a > b ? a : b; }

typedef struct {
  const float *logp, *old, *rollout, *adv;
  const void *mask;
  int mask_u8;
} inputs;

/* The first look at tokens b .. e (rlk_pl_scan); returns whether the sequence survives rejection. */
static int scan_segment(const rlk_pl_config *c, const inputs *in, int64_t b, int64_t e, rlk_pl_scan *s) {
  *s = rlk_pl_scan_zero();
  for (int64_t i = b; i < e; i++)
    if (rlk_kept(in->mask, in->mask_u8, i))
      rlk_pl_scan_add(c, s, in->logp[i], in->old[i], in->rollout ? in->rollout[i] : 0.0, in->adv[i]);
  return rlk_pl_scan_finish(c, s);
}

int rlk_policy_loss(const float *logp, const float *old, const float *adv, const void *mask, int mask_u8,
                    const float *ref, const float *entropy, const float *rollout, const int32_t *offsets, int64_t sequences,
                    int64_t n, const double *params, float *grad, float *grad_entropy, double *stats) {
  const rlk_pl_config c = rlk_pl_config_load(params, rollout != NULL);
  const inputs in = {logp, old, rollout, adv, mask, mask_u8};
  const int64_t segments = offsets ? sequences : (n + RLK_PL_CHUNK - 1) / RLK_PL_CHUNK;
#define SEG_BEGIN(k) (offsets ? (int64_t)offsets[k] : (k) * (int64_t)RLK_PL_CHUNK)
#define SEG_END(k) (offsets ? (int64_t)offsets[(k) + 1] : ((k) + 1) * (int64_t)RLK_PL_CHUNK < n ? ((k) + 1) * (int64_t)RLK_PL_CHUNK : n)
  double *partial = malloc(sizeof(double) * RLK_PL_STATS * (size_t)(segments > 0 ? segments : 1));
  if (!partial) return RLK_OUT_OF_MEMORY;

  /* what the batch implies, where the caller did not say: the denominator (kept tokens after
     rejection, sequences with one, or the longest sequence) and the weights' mean; per segment,
     then added in segment order */
  double denominator = c.denominator, normalizer = c.is_apply && c.is_normalize ? c.is_normalizer : 1.0;
  if (isnan(denominator) || isnan(normalizer)) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t k = 0; k < segments; k++) {
      rlk_pl_scan s;
      scan_segment(&c, &in, SEG_BEGIN(k), SEG_END(k), &s);
      double *p = partial + 3 * k;
      p[0] = c.agg == RLK_AGG_TOKEN_MEAN ? s.n_kept : (s.n_kept > 0);
      rlk_pl_scan_norm(&c, &s, &p[1], &p[2]);
    }
    double count = 0, norm_sum = 0, norm_count = 0;
    for (int64_t k = 0; k < segments; k++) {
      count += partial[3 * k];
      norm_sum += partial[3 * k + 1];
      norm_count += partial[3 * k + 2];
    }
    if (isnan(denominator)) {
      denominator = c.agg == RLK_AGG_SEQ_MEAN_TOKEN_SUM_NORM ? c.longest : c.agg == RLK_AGG_TOKEN_SUM ? 1 : count;
      if (denominator == 0) denominator = 1; /* nothing kept: the loss is 0 either way */
    }
    if (isnan(normalizer)) { /* verl: no normalisation when the mean is (nearly) 0 */
      const double mean = norm_count > 0 ? norm_sum / norm_count : 0;
      normalizer = mean > 1e-8 ? mean : 1.0;
    }
  }

  const int token_level_weight = c.is_level == RLK_IS_TOKEN;
  int failed = 0, overflow = 0;
#pragma omp parallel for schedule(dynamic, 16) if (n > 16384) reduction(| : failed) reduction(| : overflow)
  for (int64_t k = 0; k < segments; k++) {
    const int64_t b = SEG_BEGIN(k), e = SEG_END(k);
    double *st = partial + RLK_PL_STATS * k;
    for (int j = 0; j < RLK_PL_STATS; j++) st[j] = 0;
    rlk_pl_scan scan;
    const int seq_keep = scan_segment(&c, &in, b, e, &scan);
    const double n_kept = scan.n_kept;
    if (offsets && n_kept > 0) st[RLK_PL_SEQUENCES] = 1;
    const double seq_log = n_kept > 0 ? scan.sum_log_ratio / n_kept : 0;
    const int seq_clamped = rlk_seq_log_clamped(&c, seq_log);
    const double seq_ratio = exp(rlk_clamp(seq_log, c.seq_log_min, c.seq_log_max));
    const double w = c.agg == RLK_AGG_SEQ_MEAN_TOKEN_MEAN ? 1.0 / ((n_kept > 1 ? n_kept : 1) * denominator) : 1.0 / denominator;

    /* the correction's per-sequence weight and metrics (sequence and geometric levels) */
    double seq_raw = 1, seq_applied = 1;
    double rc_min = INFINITY, rc_max = -INFINITY;
    if (c.rc && scan.rc.n > 0) {
      st[RLK_PL_RC_SEQUENCES] = 1;
      const double sd = rlk_clamp(scan.rc.sum_d, -20, 20);
      st[RLK_PL_RC_CHI2_SEQ_SUM] = exp(2 * sd);
      if (c.is_level != RLK_IS_NONE && !token_level_weight) {
        seq_raw = rlk_rc_raw_weight(&c, 0.0, &scan.rc);
        seq_applied = rlk_rc_applied_weight(&c, seq_raw);
        st[RLK_PL_RC_WEIGHT_HIGH] = seq_raw > c.is_upper;
        st[RLK_PL_RC_WEIGHT_LOW] = seq_raw < c.is_lower;
        st[RLK_PL_RC_NORM_SUM] = seq_applied;
        st[RLK_PL_RC_NORM_COUNT] = 1;
      }
    }

    /* geo_mean (GMPO): the sequence's loss -A_mean r_geo (times its weight) over D, and each token's
       share of its gradient, r_geo / n over D where its clipped log-ratio is d itself */
    double geo_ratio = 1, geo_share = 0;
    if (c.loss == RLK_LOSS_GEO_MEAN && n_kept > 0) {
      const double xm = scan.sum_geo / n_kept, abar = scan.sum_adv / n_kept;
      double ws = 1;
      if (c.rc && c.is_apply) ws = (token_level_weight ? exp(scan.sum_log_w / n_kept) : seq_applied) / normalizer;
      geo_ratio = exp(rlk_clamp(xm, c.seq_log_min, c.seq_log_max));
      st[RLK_PL_LOSS] += -abar * geo_ratio * ws / denominator;
      geo_share = rlk_seq_log_clamped(&c, xm) ? 0 : -abar * geo_ratio * ws / (n_kept * denominator);
    }

    /* the sequence ratio's pass 2 adds a share to each kept token's direct term, kept here in double */
    const int seq_ratio_level = c.ratio == RLK_RATIO_SEQUENCE;    /* the true derivative: a share per token */
    const int seq_value = c.ratio != RLK_RATIO_TOKEN;              /* the sequence's ratio as each token's */
    double *direct = seq_ratio_level ? malloc(sizeof(double) * (size_t)(e - b > 0 ? e - b : 1)) : NULL;
    unsigned char *live = seq_ratio_level ? malloc((size_t)(e - b > 0 ? e - b : 1)) : NULL;
    if (seq_ratio_level && (!direct || !live)) {
      free(direct);
      free(live);
      failed = 1;
      continue;
    }
    /* pass 1: loss, statistics, and for the sequence ratio the sequence's share sum(w dl/dr); the
       sums are locals (registers), stored once per segment */
    double seq_coef = 0, loss = 0, tokens = 0, high = 0, low = 0, dual = 0, neg_kl = 0, rsum = 0;
    double rmin = INFINITY, rmax = -INFINITY;
    double rc_tokens = 0, rejected = 0, wsum = 0, clamped_sum = 0, clamped_sq = 0, kl_sum = 0, k3_sum = 0, chi2 = 0;
    double whigh = 0, wlow = 0, norm_sum = 0, norm_count = 0;
    for (int64_t i = b; i < e; i++) {
      if (live) live[i - b] = 0;
      if (!rlk_kept(mask, mask_u8, i)) {
        grad[i] = 0.0f;
        if (grad_entropy) grad_entropy[i] = 0.0f;
        continue;
      }
      double is_w = 1;
      if (c.rc) { /* the correction sees every token kept before rejection */
        const double d = rlk_rc_delta(&c, logp[i], old[i], rollout ? rollout[i] : 0.0), ds = rlk_clamp(d, -20, 20);
        const double e = exp(ds); /* one exp a token: the weight, k3, chi^2 and the rejection's k3 */
        rc_tokens += 1;
        kl_sum += -d;
        k3_sum += (ds == d ? e : exp(d)) - d - 1;
        chi2 += e * e;
        if (c.is_level != RLK_IS_NONE) {
          const double raw = token_level_weight ? e : seq_raw;
          const double applied = token_level_weight ? rlk_rc_applied_weight(&c, raw) : seq_applied;
          const double cl = rlk_clamp(raw, c.is_lower, c.is_upper);
          wsum += raw;
          clamped_sum += cl;
          clamped_sq += cl * cl;
          rc_min = mind(rc_min, raw);
          rc_max = maxd(rc_max, raw);
          if (token_level_weight) {
            whigh += raw > c.is_upper;
            wlow += raw < c.is_lower;
            norm_sum += applied;
            norm_count += 1;
          }
          if (c.is_apply) is_w = applied / normalizer;
        }
        if (!seq_keep || !rlk_rc_token_keep_e(&c, ds, e)) { /* rejected: out of the loss and its denominators */
          rejected += 1;
          grad[i] = 0.0f;
          if (grad_entropy) grad_entropy[i] = 0.0f;
          continue;
        }
      }
      const double raw = (double)logp[i] - old[i], d = rlk_clamp(raw, -20, 20);
      const double r = c.loss == RLK_LOSS_GEO_MEAN ? geo_ratio : seq_value ? seq_ratio : exp(d);
      const int clamped = seq_value ? seq_clamped : d != raw;
      is_w *= rlk_opsm_keep(&c, &scan, adv[i]) * rlk_entropy_keep(&c, entropy ? entropy[i] : 0.0);
      const rlk_terms t = rlk_token_terms(&c, r, adv[i], logp[i], old[i], ref ? ref[i] : 0.0, entropy ? entropy[i] : 0.0,
                                          is_w, scan.sum_vespo, i);
      loss += w * t.loss;
      tokens += 1;
      high += t.high;
      low += t.low;
      dual += t.dual;
      neg_kl += -d;
      rsum += r;
      rmin = mind(rmin, r);
      rmax = maxd(rmax, r);
      double g = w * t.d_direct;
      if (c.loss == RLK_LOSS_GEO_MEAN && rlk_geo_through(&c, raw, adv[i])) g += geo_share;
      if (direct) {
        direct[i - b] = g;
        live[i - b] = 1;
      }
      if (!clamped) {
        if (!seq_ratio_level)
          g += w * t.d_ratio * r; /* dr/dlogp = r (sequence-token: sg(r_s) p / sg(p), the same) */
        else
          seq_coef += w * t.d_ratio;
      }
      grad[i] = (float)g;
      if (grad_entropy) grad_entropy[i] = (float)(-w * c.ent_coef);
    }
    st[RLK_PL_LOSS] += loss; /* (geo_mean's sequence term is in already) */
    st[RLK_PL_TOKENS] = tokens;
    st[RLK_PL_CLIP_HIGH] = high;
    st[RLK_PL_CLIP_LOW] = low;
    st[RLK_PL_CLIP_DUAL] = dual;
    st[RLK_PL_NEG_APPROX_KL_SUM] = neg_kl;
    st[RLK_PL_RATIO_SUM] = rsum;
    st[RLK_PL_RATIO_MIN] = rmin;
    st[RLK_PL_RATIO_MAX] = rmax;
    st[RLK_PL_RC_TOKENS] = rc_tokens;
    st[RLK_PL_RC_REJECTED_TOKENS] = rejected;
    st[RLK_PL_RC_REJECTED_SEQUENCES] = rejected > 0;
    st[RLK_PL_RC_WEIGHT_SUM] = wsum;
    st[RLK_PL_RC_CLAMPED_SUM] = clamped_sum;
    st[RLK_PL_RC_CLAMPED_SQ_SUM] = clamped_sq;
    st[RLK_PL_RC_KL_SUM] = kl_sum;
    st[RLK_PL_RC_K3_SUM] = k3_sum;
    st[RLK_PL_RC_CHI2_TOKEN_SUM] = chi2;
    st[RLK_PL_RC_WEIGHT_MIN] = rc_min;
    st[RLK_PL_RC_WEIGHT_MAX] = rc_max;
    if (token_level_weight) {
      st[RLK_PL_RC_WEIGHT_HIGH] = whigh;
      st[RLK_PL_RC_WEIGHT_LOW] = wlow;
      st[RLK_PL_RC_NORM_SUM] = norm_sum;
      st[RLK_PL_RC_NORM_COUNT] = norm_count;
    }
    /* pass 2, sequence ratio: dr_s/dlogp_j = r_s m_j / n_s, a share for every token kept, added to
       the direct term in double so that the gradient is rounded once */
    if (direct) {
      const double share = n_kept > 0 ? seq_coef * seq_ratio / n_kept : 0;
      for (int64_t i = b; i < e; i++)
        if (live[i - b]) grad[i] = (float)(direct[i - b] + share);
      free(direct);
      free(live);
    }
    /* the segment's gradients, still in cache: an overflow is reported, not written silently */
    overflow |= rlk_any_inf_f32(grad + b, e - b) | (grad_entropy ? rlk_any_inf_f32(grad_entropy + b, e - b) : 0);
  }
  if (failed) {
    free(partial);
    return RLK_OUT_OF_MEMORY;
  }

  /* the segments' partials in segment order: sums, minima, maxima (rlk_policy_stat_section) */
  double out[RLK_PL_STATS];
  for (int j = 0; j < RLK_PL_STATS; j++) out[j] = j < RLK_PLS_FIRST_MIN ? 0 : j < RLK_PLS_FIRST_MAX ? INFINITY : -INFINITY;
  for (int64_t k = 0; k < segments; k++) {
    const double *st = partial + RLK_PL_STATS * k;
    for (int j = 0; j < RLK_PLS_FIRST_MIN; j++) out[j] += st[j];
    for (int j = RLK_PLS_FIRST_MIN; j < RLK_PLS_FIRST_MAX; j++) out[j] = mind(out[j], st[j]);
    for (int j = RLK_PLS_FIRST_MAX; j < RLK_PLS_FIRST_SET; j++) out[j] = maxd(out[j], st[j]);
  }
  free(partial);
  if (out[RLK_PL_TOKENS] == 0) out[RLK_PL_RATIO_MIN] = out[RLK_PL_RATIO_MAX] = 0;
  if (!(out[RLK_PL_RC_WEIGHT_MIN] <= out[RLK_PL_RC_WEIGHT_MAX])) out[RLK_PL_RC_WEIGHT_MIN] = out[RLK_PL_RC_WEIGHT_MAX] = 0;
  out[RLK_PL_DENOMINATOR] = denominator;
  out[RLK_PL_RC_NORMALIZER] = normalizer;
  for (int j = 0; j < RLK_PL_STATS; j++) stats[j] = out[j];
  return overflow ? RLK_OVERFLOW : RLK_OK;
#undef SEG_BEGIN
#undef SEG_END
}
