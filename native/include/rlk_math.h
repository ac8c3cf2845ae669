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

/* PPO's clipped surrogate of a ratio r and an advantage a: loss = max(-a r, -a clip(r, 1 - low,
   1 + high)), then at most -dual a for a < 0 when dual > 0 (the dual clip). `through_ratio`: the
   loss is -a r (its slope in r is -a), not a clipped constant; which clip bound was hit is counted. */
typedef struct {
  double loss;
  int through_ratio, high, low, dual;
} rlk_clip;

RLK_HD rlk_clip rlk_ppo_clip(double r, double a, double clip_low, double clip_high, double dual) {
  rlk_clip c = {0, 0, 0, 0, 0};
  const double clipped = rlk_clamp(r, 1.0 - clip_low, 1.0 + clip_high);
  const double unclipped_loss = -a * r, clipped_loss = -a * clipped;
  c.loss = unclipped_loss > clipped_loss ? unclipped_loss : clipped_loss;
  c.through_ratio = unclipped_loss >= clipped_loss;
  if (clipped_loss > unclipped_loss) {
    c.high = r > 1.0 + clip_high;
    c.low = !c.high;
  }
  if (dual > 0 && a < 0 && c.loss > -dual * a) {
    c.loss = -dual * a;
    c.through_ratio = 0;
    c.dual = 1;
  }
  return c;
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

/* The policy loss's configuration as the kernels take it (codes: rlk_contract.h). */
typedef struct {
  int loss, ratio, agg, kl;
  double clip_low, clip_high, dual, kl_coef, ent_coef;
} rlk_pl_config;

/* One kept token's loss l, dl/dr (through the ratio) and dl/dlogp (directly), and its clipping. */
typedef struct {
  double loss, d_ratio, d_direct;
  int high, low, dual;
} rlk_terms;

RLK_HD rlk_terms rlk_token_terms(const rlk_pl_config *c, double r, double a, double lp, double ref, double h) {
  rlk_terms t = {0, 0, 0, 0, 0, 0};
  if (c->loss == RLK_LOSS_PPO) {
    const rlk_clip k = rlk_ppo_clip(r, a, c->clip_low, c->clip_high, c->dual);
    t.loss = k.loss;
    t.d_ratio = k.through_ratio ? -a : 0.0;
    t.high = k.high;
    t.low = k.low;
    t.dual = k.dual;
  } else if (c->loss == RLK_LOSS_CISPO) { /* the clipped ratio as a constant weight of -a logp */
    const double clipped = rlk_clamp(r, 1.0 - c->clip_low, 1.0 + c->clip_high);
    t.loss = -clipped * a * lp;
    t.d_direct = -clipped * a;
    t.high = r > 1.0 + c->clip_high;
    t.low = r < 1.0 - c->clip_low;
  } else { /* RLK_LOSS_REINFORCE */
    t.loss = -a * lp;
    t.d_direct = -a;
  }
  if (c->kl != RLK_KL_NONE && c->kl_coef != 0) {
    const rlk_kl_term k = rlk_kl(c->kl, lp - ref);
    t.loss += c->kl_coef * k.k;
    t.d_direct += c->kl_coef * k.dk;
  }
  t.loss -= c->ent_coef * h;
  return t;
}

/* One member's group advantage (enum rlk_adv_mode) from its reward x and its group's mean, std
   and size n: a group of one has nothing to compare with and gets 0, and so does a member equal
   to the mean under grpo and batch (a constant group: 0, even for eps = 0). */
RLK_HD float rlk_advantage(int mode, double x, double mean, double std, int64_t n, float eps) {
  if (n == 1) return 0.0f;
  switch (mode) {
    case RLK_ADV_GRPO:
    case RLK_ADV_BATCH: return x == mean ? 0.0f : (float)((x - mean) / (std + eps));
    case RLK_ADV_DRGRPO: return (float)(x - mean);
    case RLK_ADV_RLOO: return (float)((x - mean) * (double)n / (double)(n - 1));
    default: return (float)x; /* RLK_ADV_NONE */
  }
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
