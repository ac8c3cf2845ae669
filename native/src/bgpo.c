/*
 * bgpo.c — BGPO's per-sequence step (ARCHITECTURE §5.4) and the row masking it needs, on the CPU. The
 * log-probs of the masked rows and the logits gradient come from logprobs.c: a sample is the
 * log-probs forward with unmasked rows skipped, rlk_bgpo_coefficients, and the log-probs backward
 * with the upstream gradients written here. Formulas: io.rlkernels.ops.Bgpo; CUDA twin: bgpo.cu.
 */
#include <math.h>
#include <omp.h>

#include "rlk_math.h"
#include "rlkernels.h"

int rlk_mask_rows(const void *targets, int itype, const void *mask, int mask_u8, int64_t n, int64_t ignore, void *out) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    if (itype == RLK_I64)
      ((int64_t *)out)[i] = rlk_kept(mask, mask_u8, i) ? ((const int64_t *)targets)[i] : ignore;
    else
      ((int32_t *)out)[i] = rlk_kept(mask, mask_u8, i) ? ((const int32_t *)targets)[i] : (int32_t)ignore;
  }
  return RLK_OK;
}

/* state: RLK_BGPO_STATS doubles, added into (enum rlk_bgpo_stat in rlk_contract.h) */
int rlk_bgpo_coefficients(const float *logp, const int32_t *offsets, int64_t sequences, const void *mask, int mask_u8,
                          const float *weights, const float *old, const float *adv, float clip_low, float clip_high,
                          float dual_clip, double scale, float *values, float *upstream, double *state) {
  /* scale = 1 / (D n_t). Sequences are independent; their statistics are added in order below. */
  double sums[RLK_BGPO_STATS] = {0};
  sums[RLK_BGPO_D_MIN] = INFINITY;
  sums[RLK_BGPO_D_MAX] = -INFINITY;
  for (int64_t s = 0; s < sequences; s++) {
    const int64_t b = offsets[s], e = offsets[s + 1];
    double total = 0;
    int any = 0;
    for (int64_t p = b; p < e; p++)
      if (rlk_kept(mask, mask_u8, p)) {
        total += logp[p];
        any = 1;
      }
    const double a = adv[s], w = weights[s];
    const double l = w * total, d = l - old[s];
    const rlk_psi ps = rlk_bgpo_psi(d, a); /* the per-sample ratio and its slope in d */
    const double psi = ps.psi, dpsi = ps.dpsi;
    const rlk_clip k = rlk_ppo_clip(psi, a, clip_low, clip_high, dual_clip);
    const double kappa = k.through_ratio ? 1.0 : 0.0;
    sums[RLK_BGPO_CLIP_HIGH] += k.high;
    sums[RLK_BGPO_CLIP_LOW] += k.low;
    sums[RLK_BGPO_CLIP_DUAL] += k.dual;
    sums[RLK_BGPO_LOSS] += k.loss * scale;
    sums[RLK_BGPO_SEEN] += 1;
    sums[RLK_BGPO_EMPTY] += !any;
    sums[RLK_BGPO_D_SUM] += d;
    sums[RLK_BGPO_D_MIN] = d < sums[RLK_BGPO_D_MIN] ? d : sums[RLK_BGPO_D_MIN];
    sums[RLK_BGPO_D_MAX] = d > sums[RLK_BGPO_D_MAX] ? d : sums[RLK_BGPO_D_MAX];
    sums[RLK_BGPO_PSI_SUM] += psi;
    values[s] = (float)l;
    /* dL/dlogp_p = scale * df/dpsi * dpsi/dd * dl/dlogp_p = -a * kappa * psi' * w * scale */
    const float g = (float)(-a * kappa * dpsi * w * scale);
    for (int64_t p = b; p < e; p++) upstream[p] = rlk_kept(mask, mask_u8, p) ? g : 0.0f;
  }
  for (int j = 0; j < RLK_BGPO_STATS; j++) {
    if (j == RLK_BGPO_D_MIN)
      state[j] = sums[j] < state[j] ? sums[j] : state[j];
    else if (j == RLK_BGPO_D_MAX)
      state[j] = sums[j] > state[j] ? sums[j] : state[j];
    else
      state[j] += sums[j];
  }
  return RLK_OK;
}
