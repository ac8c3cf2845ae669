/*
 * logprobs.c — token log-probs, entropy and their backward on the CPU (DESIGN §5.1).
 * Compiled once per instruction-set variant (see simd.h); dispatch.c exports the entry points.
 *
 * Forward, one pass over memory per row: the row is swept in chunks that fit in L1; a chunk's
 * max is taken first, the running sums are rescaled once if the max grew, then the chunk is
 * swept again from cache for the exponentials. All exponents are taken relative to the raw max
 * m, in base 2:  a_v = (z_v - m) * log2(e) / T <= 0, so nothing overflows and, for logits of
 * magnitude 1e4, no digits are lost to a large common offset:
 *   s = sum 2^a_v,   t = sum 2^a_v * a_v,
 *   lse = m/T + ln s,   logp = (z_y - m)/T - ln s,   H = ln s - ln2 * t / s  (both terms >= 0).
 * (In the code a is kept in the units of vf_exp2u, a * RLK_EXP2_UNITS.)
 * Backward recomputes p_v = 2^((z_v - lse*T) * log2(e)/T), with lse*T held as an exact sum
 * hi + lo of two floats (fmaf, once per row), so z_v - lse*T is exact up to one rounding of a
 * small number on every variant, FMA or not (a vector z - lse*T would be hoisted and rounded).
 *
 * Measured: see bench/RESULTS.md (LogProbsBenchmark).
 */
#include <math.h>
#include <omp.h>

#include "rlkernels.h"
#include "simd.h"

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

/* Elements per chunk: 8 KiB of f32, so the second sweep over a chunk hits L1. */
#define CHUNK 2048
_Static_assert(CHUNK % 16 == 0, "a chunk holds whole vectors of every width");

/* Rows smaller than this in total are not worth waking the thread pool for. */
#define PARALLEL_MIN_ELEMENTS 32768

static inline int64_t target_of(const void *targets, int itype, int64_t i) {
  return itype == RLK_I64 ? ((const int64_t *)targets)[i] : ((const int32_t *)targets)[i];
}

typedef struct {
  float m; /* raw max of the row (before the temperature) */
  float s; /* sum 2^a */
  float t; /* sum 2^a * a, a in log2 units */
} row_stats;

/* k = log2(e) / T */
static row_stats row_stats_of(const void *row, int dtype, int64_t v, float k, int with_t) {
  float buf[CHUNK] __attribute__((aligned(64)));
  float m = -FLT_MAX; /* finite, so that (z - m) is never inf - inf */
  vf s = vf_splat(0.0f), t = vf_splat(0.0f);

  for (int64_t c0 = 0; c0 < v; c0 += CHUNK) {
    const int len = (int)(v - c0 < CHUNK ? v - c0 : CHUNK);
    const int full = len / RLK_W * RLK_W;

    /* sweep 1: chunk max; 16-bit inputs are widened once into buf */
    vf vmax = vf_splat(-FLT_MAX);
    const float *x = dtype == RLK_F32 ? (const float *)row + c0 : buf;
    for (int i = 0; i < full; i += RLK_W) {
      vf z = vf_load(row, dtype, c0 + i);
      if (dtype != RLK_F32) *(vf *)(buf + i) = z;
      vmax = vf_max(z, vmax);
    }
    vf tail = vf_splat(-INFINITY);
    if (full < len) {
      tail = vf_load_partial(row, dtype, c0 + full, len - full, -INFINITY);
      vmax = vf_max(tail, vmax);
    }
    const float cm = vf_hmax(vmax);
    if (cm > m) {
      /* rescale: the clamp keeps a vanishing factor from making 0 * inf */
      float delta = (m - cm) * k;
      delta = delta < -127.0f ? -127.0f : delta;
      const float scale = exp2f(delta);
      t = scale * (t + (delta * RLK_EXP2_UNITS) * s);
      s = scale * s;
      m = cm;
    }

    /* sweep 2: exponentials, from cache */
    const vf vm = vf_splat(m), vk = vf_splat(k * RLK_EXP2_UNITS);
    for (int i = 0; i < full; i += RLK_W) {
      const vf z = *(const vf_mem *)(x + i);
      const vf a = vf_clamp_below((z - vm) * vk, RLK_EXP2_MIN);
      const vf e = vf_exp2u(a);
      s += e;
      if (with_t) t += e * a;
    }
    if (full < len) {
      const vf a = vf_clamp_below((tail - vm) * vk, RLK_EXP2_MIN);
      const vf e = vf_exp2u(a);
      s += e;
      if (with_t) t += e * a;
    }
  }
  return (row_stats){m, vf_hsum(s), vf_hsum(t) / RLK_EXP2_UNITS};
}

int RLK_FN(rlk_logprobs_fwd)(const void *logits, int dtype, const void *targets, int itype,
                             int64_t n, int64_t v, float temperature, int64_t ignore_index,
                             float *logp, float *lse, float *entropy, int64_t *first_overflow) {
  if (dtype < RLK_F32 || dtype > RLK_F16) return RLK_BAD_DTYPE;
  const float invT = 1.0f / temperature, k = invT * LOG2E;
  const size_t esize = dtype == RLK_F32 ? 4 : 2;
  int status = RLK_OK;
  int64_t overflow = INT64_MAX; /* a minimum: the same whatever order the threads finish in */

#pragma omp parallel for schedule(static) reduction(| : status) reduction(min : overflow) \
    if (n * v >= PARALLEL_MIN_ELEMENTS)
  for (int64_t i = 0; i < n; i++) {
    const int64_t y = target_of(targets, itype, i);
    if (y == ignore_index) {
      logp[i] = 0.0f;
      lse[i] = 0.0f;
      if (entropy) entropy[i] = 0.0f;
      continue;
    }
    if (y < 0 || y >= v) {
      logp[i] = lse[i] = NAN;
      if (entropy) entropy[i] = NAN;
      status |= RLK_BAD_TARGET;
      continue;
    }
    const void *row = (const char *)logits + (size_t)i * (size_t)v * esize; /* 64-bit offset */
    const row_stats st = row_stats_of(row, dtype, v, k, entropy != NULL);
    if (!(st.s >= 1.0f)) {
      /* No distribution: a NaN or +inf logit made s NaN, or no logit is finite (s = 0; a row with
         a finite logit has s >= 1, its maximum's 2^0). The row's outputs are NaN, on every backend. */
      logp[i] = lse[i] = NAN;
      if (entropy) entropy[i] = NAN;
      continue;
    }
    const float ln_s = logf(st.s), zy = scalar_load(row, dtype, y);
    lse[i] = st.m * invT + ln_s;
    logp[i] = (zy - st.m) * invT - ln_s;
    if (entropy) entropy[i] = ln_s - LN2 * st.t / st.s;
    /* finite logits whose lse or logp float32 cannot hold (|z/T| near 3.4e38); a -inf target's
       logp is -inf by right */
    if (isinf(lse[i]) || (isinf(logp[i]) && isfinite(zy))) overflow = i < overflow ? i : overflow;
  }
  if (first_overflow) *first_overflow = overflow == INT64_MAX ? -1 : overflow;
  return status;
}

int RLK_FN(rlk_logprobs_bwd)(const void *logits, int dtype, const void *targets, int itype,
                             int64_t n, int64_t v, float temperature, int64_t ignore_index,
                             const float *lse, const float *entropy, const float *grad_logp,
                             const float *grad_entropy, void *grad_logits, int grad_dtype) {
  if (dtype < RLK_F32 || dtype > RLK_F16 || grad_dtype < RLK_F32 || grad_dtype > RLK_F16)
    return RLK_BAD_DTYPE;
  const float T = temperature, invT = 1.0f / temperature, k = invT * LOG2E;
  const size_t esize = dtype == RLK_F32 ? 4 : 2, gsize = grad_dtype == RLK_F32 ? 4 : 2;
  int status = RLK_OK;

#pragma omp parallel for schedule(static) reduction(| : status) if (n * v >= PARALLEL_MIN_ELEMENTS)
  for (int64_t i = 0; i < n; i++) {
    const void *row = (const char *)logits + (size_t)i * (size_t)v * esize;
    void *out = (char *)grad_logits + (size_t)i * (size_t)v * gsize;
    const int64_t y = target_of(targets, itype, i);
    const int ignored = y == ignore_index;
    if (!ignored && (y < 0 || y >= v)) status |= RLK_BAD_TARGET;
    /* a row without a distribution (its lse is NaN, as the forward writes it) gets a NaN gradient */
    if (ignored || y < 0 || y >= v || !isfinite(lse[i])) {
      const vf fill = vf_splat(ignored ? 0.0f : NAN);
      int64_t j = 0;
      for (; j + RLK_W <= v; j += RLK_W) vf_store(out, grad_dtype, j, fill);
      if (j < v) vf_store_partial(out, grad_dtype, j, (int)(v - j), fill);
      continue;
    }
    const float g = grad_logp ? grad_logp[i] : 0.0f;
    const float h = grad_entropy ? grad_entropy[i] : 0.0f;
    const float H = grad_entropy ? entropy[i] : 0.0f;
    const float zy = scalar_load(row, dtype, y); /* read before an in-place sweep overwrites it */

    /* dz = -p * (g + h * (a*ln2 + H)) / T  with a = (z - lse*T) * log2(e)/T, p = 2^a */
    const float lse_t_hi = lse[i] * T, lse_t_lo = fmaf(lse[i], T, -lse_t_hi);
    const vf vhi = vf_splat(lse_t_hi), vlo = vf_splat(lse_t_lo), vk = vf_splat(k * RLK_EXP2_UNITS);
    const vf vg = vf_splat(g), vh_ = vf_splat(h), vH = vf_splat(H), vscale = vf_splat(-invT);
    const float ln2u = LN2 / RLK_EXP2_UNITS; /* a in exponent units -> natural log */
    int64_t j = 0;
    for (; j + RLK_W <= v; j += RLK_W) {
      vf a = vf_clamp_below(((vf_load(row, dtype, j) - vhi) - vlo) * vk, RLK_EXP2_MIN);
      vf p = vf_exp2u(a);
      vf_store(out, grad_dtype, j, vscale * p * (vg + vh_ * (a * ln2u + vH)));
    }
    if (j < v) {
      vf a = vf_clamp_below(((vf_load_partial(row, dtype, j, (int)(v - j), 0.0f) - vhi) - vlo) * vk,
                                RLK_EXP2_MIN);
      vf p = vf_exp2u(a);
      vf_store_partial(out, grad_dtype, j, (int)(v - j), vscale * p * (vg + vh_ * (a * ln2u + vH)));
    }
    /* the target's own term, g * 1[v=y] / T, computed whole so a 16-bit output rounds once */
    vf a = vf_clamp_below(((vf_splat(zy) - vhi) - vlo) * vk, RLK_EXP2_MIN);
    vf p = vf_exp2u(a);
    vf dzy = vf_splat(invT) * (vg * (1.0f - p) - vh_ * p * (a * ln2u + vH));
    vf_store_partial(out, grad_dtype, y, 1, dzy);
  }
  return status;
}
