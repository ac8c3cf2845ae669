/*
 * policy_loss.c — clipped importance-ratio policy losses (PPO, CISPO, REINFORCE; token or sequence
 * ratio; KL and entropy terms) with dL/dlogp, fused, on the CPU (ARCHITECTURE §5.3). The formulas are
 * those of io.rlkernels.ops.PolicyLoss; ReferenceBackend.java is the readable version; the CUDA
 * twin is cuda-kernels/policy_loss.cu; a token's terms are rlk_token_terms (rlk_math.h), one function
 * for both.
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

/* Codes, the stats slots (enum rlk_policy_stat) and RLK_PL_CHUNK: rlk_contract.h; a token's terms
   (rlk_token_terms) and the kept rule: rlk_math.h, shared with policy_loss.cu. */

/* Plain comparisons, not fmin/fmax: the inputs are finite (checked), and fmin's NaN rules cost a call. */
static inline double mind(double a, double b) { return a < b ? a : b; }
static inline double maxd(double a, double b) { return a > b ? a : b; }

int rlk_policy_loss(const float *logp, const float *old, const float *adv, const void *mask, int mask_u8,
                    const float *ref, const float *entropy, const int32_t *offsets, int64_t sequences, int64_t n,
                    int loss_type, int ratio_level, int agg, int kl, float clip_low, float clip_high, float dual_clip,
                    double denominator, int64_t longest, float kl_coef, float ent_coef, float *grad, float *grad_entropy,
                    double *stats) {
  const rlk_pl_config c = {loss_type, ratio_level, agg, kl, clip_low, clip_high, dual_clip, kl_coef, ent_coef};
  const int64_t segments = offsets ? sequences : (n + RLK_PL_CHUNK - 1) / RLK_PL_CHUNK;
#define SEG_BEGIN(k) (offsets ? (int64_t)offsets[k] : (k) * (int64_t)RLK_PL_CHUNK)
#define SEG_END(k) (offsets ? (int64_t)offsets[(k) + 1] : ((k) + 1) * (int64_t)RLK_PL_CHUNK < n ? ((k) + 1) * (int64_t)RLK_PL_CHUNK : n)
  double *partial = malloc(sizeof(double) * RLK_PL_STATS * (size_t)(segments > 0 ? segments : 1));
  if (!partial) return RLK_OUT_OF_MEMORY;

  if (isnan(denominator)) { /* what the mode implies for this batch */
    double count = 0;
#pragma omp parallel for schedule(static) reduction(+ : count) if (n > 65536)
    for (int64_t k = 0; k < segments; k++) {
      double kept_here = 0;
      for (int64_t i = SEG_BEGIN(k); i < SEG_END(k); i++) kept_here += rlk_kept(mask, mask_u8, i);
      count += agg == RLK_AGG_TOKEN_MEAN ? kept_here : (kept_here > 0); /* integers: exact in any order */
    }
    denominator = agg == RLK_AGG_SEQ_MEAN_TOKEN_SUM_NORM ? (double)longest : count;
    if (denominator == 0) denominator = 1; /* nothing kept: the loss is 0 either way */
  }

  int failed = 0, overflow = 0;
#pragma omp parallel for schedule(dynamic, 16) if (n > 16384) reduction(| : failed) reduction(| : overflow)
  for (int64_t k = 0; k < segments; k++) {
    const int64_t b = SEG_BEGIN(k), e = SEG_END(k);
    double *st = partial + RLK_PL_STATS * k;
    st[RLK_PL_SEQUENCES] = 0;
    double n_kept = 0, sum_log_ratio = 0;
    for (int64_t i = b; i < e; i++)
      if (rlk_kept(mask, mask_u8, i)) {
        n_kept += 1;
        sum_log_ratio += (double)logp[i] - old[i];
      }
    if (offsets && n_kept > 0) st[RLK_PL_SEQUENCES] = 1;
    const double seq_log = n_kept > 0 ? sum_log_ratio / n_kept : 0;
    const int seq_clamped = fabs(seq_log) > 20;
    const double seq_ratio = exp(rlk_clamp(seq_log, -20, 20));
    const double w = agg == RLK_AGG_SEQ_MEAN_TOKEN_MEAN ? 1.0 / ((n_kept > 1 ? n_kept : 1) * denominator) : 1.0 / denominator;

    /* pass 1: loss, statistics, and for the sequence ratio the sequence's share sum(w dl/dr);
       the sums are locals (registers), stored once per segment */
    /* the sequence ratio's pass 2 adds a share to each kept token's direct term, kept here in double */
    double *direct = ratio_level == RLK_RATIO_SEQUENCE ? malloc(sizeof(double) * (size_t)(e - b > 0 ? e - b : 1)) : NULL;
    if (ratio_level == RLK_RATIO_SEQUENCE && !direct) {
      failed = 1;
      continue;
    }
    double seq_coef = 0, loss = 0, tokens = 0, high = 0, low = 0, dual = 0, neg_kl = 0, rsum = 0;
    double rmin = INFINITY, rmax = -INFINITY;
    for (int64_t i = b; i < e; i++) {
      if (!rlk_kept(mask, mask_u8, i)) {
        grad[i] = 0.0f;
        if (grad_entropy) grad_entropy[i] = 0.0f;
        continue;
      }
      const double raw = (double)logp[i] - old[i], d = rlk_clamp(raw, -20, 20);
      const double r = ratio_level == RLK_RATIO_TOKEN ? exp(d) : seq_ratio;
      const int clamped = ratio_level == RLK_RATIO_TOKEN ? d != raw : seq_clamped;
      const rlk_terms t = rlk_token_terms(&c, r, adv[i], logp[i], ref ? ref[i] : 0.0, entropy ? entropy[i] : 0.0);
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
      if (direct) direct[i - b] = g;
      if (!clamped) {
        if (ratio_level == RLK_RATIO_TOKEN)
          g += w * t.d_ratio * r; /* dr/dlogp = r */
        else
          seq_coef += w * t.d_ratio;
      }
      grad[i] = (float)g;
      if (grad_entropy) grad_entropy[i] = (float)(-w * ent_coef);
    }
    st[RLK_PL_LOSS] = loss;
    st[RLK_PL_TOKENS] = tokens;
    st[RLK_PL_CLIP_HIGH] = high;
    st[RLK_PL_CLIP_LOW] = low;
    st[RLK_PL_CLIP_DUAL] = dual;
    st[RLK_PL_NEG_APPROX_KL_SUM] = neg_kl;
    st[RLK_PL_RATIO_SUM] = rsum;
    st[RLK_PL_RATIO_MIN] = rmin;
    st[RLK_PL_RATIO_MAX] = rmax;
    /* pass 2, sequence ratio: dr_s/dlogp_j = r_s m_j / n_s, a share for every kept token, added to
       the direct term in double so that the gradient is rounded once */
    if (direct) {
      const double share = n_kept > 0 ? seq_coef * seq_ratio / n_kept : 0;
      for (int64_t i = b; i < e; i++)
        if (rlk_kept(mask, mask_u8, i)) grad[i] = (float)(direct[i - b] + share);
      free(direct);
    }
    /* the segment's gradients, still in cache: an overflow is reported, not written silently */
    overflow |= rlk_any_inf_f32(grad + b, e - b) | (grad_entropy ? rlk_any_inf_f32(grad_entropy + b, e - b) : 0);
  }
  if (failed) {
    free(partial);
    return RLK_OUT_OF_MEMORY;
  }

  double out[RLK_PL_STATS] = {0};
  out[RLK_PL_RATIO_MIN] = INFINITY;
  out[RLK_PL_RATIO_MAX] = -INFINITY;
  for (int64_t k = 0; k < segments; k++) {
    const double *st = partial + RLK_PL_STATS * k;
    for (int j = 0; j < RLK_PL_RATIO_MIN; j++) out[j] += st[j];
    out[RLK_PL_RATIO_MIN] = mind(out[RLK_PL_RATIO_MIN], st[RLK_PL_RATIO_MIN]);
    out[RLK_PL_RATIO_MAX] = maxd(out[RLK_PL_RATIO_MAX], st[RLK_PL_RATIO_MAX]);
  }
  free(partial);
  if (out[RLK_PL_TOKENS] == 0) out[RLK_PL_RATIO_MIN] = out[RLK_PL_RATIO_MAX] = 0;
  out[RLK_PL_DENOMINATOR] = denominator;
  for (int j = 0; j < RLK_PL_STATS; j++) stats[j] = out[j];
  return overflow ? RLK_OVERFLOW : RLK_OK;
#undef SEG_BEGIN
#undef SEG_END
}
