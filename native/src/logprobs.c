/*
 * logprobs.c — token log-probs, entropy and their backward on the CPU (ARCHITECTURE §5.1).
 * Compiled once per instruction-set variant (see simd.h); dispatch.c exports the entry points.
 *
 * Forward, one pass over memory per row: the row is swept in chunks that fit in L1; a chunk's
 * max is taken first, the running sums are rescaled once if the max grew, then the chunk is
 * swept again from cache for the exponentials, while the next chunk is prefetched (without it,
 * memory idles through sweep 2 and the core through sweep 1: measured 16 % faster). All exponents
 * are taken relative to the raw max m, in base 2:  a_v = (z_v - m) * log2(e) / T <= 0, so nothing overflows and, for logits of
 * magnitude 1e4, no digits are lost to a large common offset:
 *   s = ties + eps,  ties = #{v : z_v = m} (each 2^0 = 1),  eps = sum over z_v < m of 2^a_v,
 *   t = sum 2^a_v * a_v,
 *   lse = m/T + ln s,  ln s = ln(ties) + log1p(eps / ties),  logp = (z_y - m)/T - ln s,
 *   H = ln s - ln2 * t / s  (both terms >= 0).
 * Precision (to float32's, for near-certain tokens too: p_y = 1 - 1e-7 has ln s = 1e-7): the
 * maximum's exact 1s are counted apart from eps, so eps keeps its digits instead of being added to
 * a lane that holds 1 (which drops everything below 2^-24); only the block (FLUSH vectors) that
 * holds the running max tests for ties. Each block's f32 lane sums are widened into double lane
 * sums when its chunk ends, and the row's outputs are formed in double. The forward writes (m, ln s) per row, lse_parts,
 * for the backward.
 * (In the code a is kept in the units of vf_exp2u, a * RLK_EXP2_UNITS.)
 * Backward: p_v = 2^(a_v - ln s * log2(e)) from m and ln s, so nothing depends on |lse|; at the
 * target, 1 - p_y = -expm1(logp_y), in double, instead of a difference that cancels.
 * A row's outputs do not depend on the batch: rows are independent and swept from their start in
 * the same order whatever N, the row's position and the thread count (batch invariance).
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
/* Vectors a lane sums in f32 before its sum goes into the row's double sums: 64 terms keep a lane
   sum's rounding near 1e-7 (a whole chunk, 512 terms on 4 lanes, lost 1e-6 of the entropy). A
   block of FLUSH vectors is also the unit that tests for ties with the max. */
#define FLUSH 64
#define BLOCK (FLUSH * RLK_W)
_Static_assert(CHUNK % (FLUSH * 16) == 0, "a chunk holds whole blocks of every width");

/* Rows smaller than this in total are not worth waking the thread pool for. */
#define PARALLEL_MIN_ELEMENTS 32768

static inline int64_t target_of(const void *targets, int itype, int64_t i) {
  return itype == RLK_I64 ? ((const int64_t *)targets)[i] : ((const int32_t *)targets)[i];
}

typedef struct {
  float m;     /* raw max of the row (before the temperature) */
  double ties; /* logits equal to m: each contributes 2^0 = 1 */
  double eps;  /* sum 2^a over the logits below m */
  double t;    /* sum 2^a * a, a in log2 units */
} row_stats;

/* A block's f32 lane sums, kept in memory until the chunk's sweep ends so that the double row
   sums stay out of the registers the exponentials need. */
typedef struct {
  vf eps, t, ties;
} block_sums;

/* One block's exponentials (or the tail's: n_vec = 1, from `tail`), with the ties with m counted
   apart when the block holds m: eps keeps its digits instead of being added to a lane that holds
   1, which drops everything below 2^-24. */
static inline block_sums sums_of_block(const float *x, int n_vec, const vf *tail, vf vm, vf vk, int ties_apart,
                                       int with_t, const char *ahead, int ahead_step) {
  const vf zero = vf_splat(0.0f), one = vf_splat(1.0f);
  block_sums b = {zero, zero, zero};
  if (ties_apart) {
    for (int i = 0; i < n_vec; i++) {
      __builtin_prefetch(ahead + i * ahead_step);
      const vf z = tail ? *tail : (vf) * (const vf_mem *)(x + i * RLK_W);
      const vf a = vf_clamp_below((z - vm) * vk, RLK_EXP2_MIN);
      const vf e = vf_exp2u(a);
      const vi tie = (vi)(z == vm);
      b.eps += vf_select(tie, zero, e);
      b.ties += vf_select(tie, one, zero);
      if (with_t) b.t += e * a; /* a tie has a = 0 */
    }
  } else {
    for (int i = 0; i < n_vec; i++) {
      __builtin_prefetch(ahead + i * ahead_step); /* the next chunk, while this one is computed */
      const vf z = (vf) * (const vf_mem *)(x + i * RLK_W);
      const vf a = vf_clamp_below((z - vm) * vk, RLK_EXP2_MIN);
      const vf e = vf_exp2u(a);
      b.eps += e;
      if (with_t) b.t += e * a;
    }
  }
  return b;
}

/* k = log2(e) / T */
static row_stats row_stats_of(const void *row, int dtype, int64_t v, float k, int with_t) {
  float buf[CHUNK] __attribute__((aligned(64)));
  vf block_max[CHUNK / BLOCK];
  float m = -FLT_MAX; /* finite, so that (z - m) is never inf - inf */
  /* the row's sums in double, W/2 lanes each: blocks' f32 lane sums are widened into them */
  const vd dzero = {0};
  vd acc_ties = dzero, acc_eps = dzero, acc_t = dzero;
  block_sums blocks[CHUNK / BLOCK + 1];

  for (int64_t c0 = 0; c0 < v; c0 += CHUNK) {
    const int len = (int)(v - c0 < CHUNK ? v - c0 : CHUNK);
    const int full = len / RLK_W * RLK_W;

    /* sweep 1: the max of each block; 16-bit inputs are widened once into buf */
    vf vmax = vf_splat(-FLT_MAX);
    const float *x = dtype == RLK_F32 ? (const float *)row + c0 : buf;
    for (int b0 = 0; b0 < full; b0 += BLOCK) {
      const int b_end = full - b0 < BLOCK ? full : b0 + BLOCK;
      /* four running maxima, so that the loop is not bound by the latency of one chain */
      vf bmax0 = vf_splat(-FLT_MAX), bmax1 = bmax0, bmax2 = bmax0, bmax3 = bmax0;
      int i = b0;
      for (; i + 4 * RLK_W <= b_end; i += 4 * RLK_W) {
        const vf z0 = vf_load(row, dtype, c0 + i), z1 = vf_load(row, dtype, c0 + i + RLK_W);
        const vf z2 = vf_load(row, dtype, c0 + i + 2 * RLK_W), z3 = vf_load(row, dtype, c0 + i + 3 * RLK_W);
        if (dtype != RLK_F32) {
          *(vf *)(buf + i) = z0;
          *(vf *)(buf + i + RLK_W) = z1;
          *(vf *)(buf + i + 2 * RLK_W) = z2;
          *(vf *)(buf + i + 3 * RLK_W) = z3;
        }
        bmax0 = vf_max(z0, bmax0);
        bmax1 = vf_max(z1, bmax1);
        bmax2 = vf_max(z2, bmax2);
        bmax3 = vf_max(z3, bmax3);
      }
      for (; i < b_end; i += RLK_W) {
        const vf z = vf_load(row, dtype, c0 + i);
        if (dtype != RLK_F32) *(vf *)(buf + i) = z;
        bmax0 = vf_max(z, bmax0);
      }
      const vf bmax = vf_max(vf_max(bmax0, bmax1), vf_max(bmax2, bmax3));
      block_max[b0 / BLOCK] = bmax;
      vmax = vf_max(bmax, vmax);
    }
    vf tail = vf_splat(-INFINITY);
    if (full < len) {
      tail = vf_load_partial(row, dtype, c0 + full, len - full, -INFINITY);
      vmax = vf_max(tail, vmax);
    }
    const float cm = vf_hmax(vmax);
    if (cm > m) {
      /* rescale to the new max: the old ties become terms below it; the clamp keeps a
         vanishing factor from making 0 * inf */
      double delta = ((double)m - cm) * k;
      delta = delta < -127.0 ? -127.0 : delta;
      const double scale = delta == -127.0 ? 0.0 : exp2(delta); /* 2^-127 is 0, as in vf_exp2u */
      const vd below = acc_eps + acc_ties;
      acc_t = scale * (acc_t + delta * RLK_EXP2_UNITS * below); /* t in exponent units: each a_v grows by delta */
      acc_eps = scale * below;
      acc_ties = dzero;
      m = cm;
    }

    /* sweep 2: exponentials, from cache, a block at a time; only a block whose max is the row's
       running max (so only in a chunk that holds it) counts ties apart */
    const vf vm = vf_splat(m), vk = vf_splat(k * RLK_EXP2_UNITS);
    const int chunk_has_m = cm == m;
    /* sweep 1 of the next chunk would wait on memory, so sweep 2 asks for it (a prefetch past the
       row's end is harmless: it never faults) */
    const int esize = dtype == RLK_F32 ? 4 : 2;
    const char *next = (const char *)row + (c0 + CHUNK) * esize;
    int nb = 0;
    for (int b0 = 0; b0 < full; b0 += BLOCK, nb++) {
      const int n_vec = ((full - b0 < BLOCK ? full : b0 + BLOCK) - b0) / RLK_W;
      const int ties_apart = chunk_has_m && vf_hmax(block_max[nb]) == m;
      blocks[nb] = sums_of_block(x + b0, n_vec, NULL, vm, vk, ties_apart, with_t, next + b0 * esize, RLK_W * esize);
    }
    if (full < len) blocks[nb++] = sums_of_block(NULL, 1, &tail, vm, vk, 1, with_t, next, 0);
    for (int b = 0; b < nb; b++) {
      acc_eps = vd_add_widened(acc_eps, blocks[b].eps);
      acc_t = vd_add_widened(acc_t, blocks[b].t);
      acc_ties = vd_add_widened(acc_ties, blocks[b].ties);
    }
  }
  return (row_stats){m, vd_hsum(acc_ties), vd_hsum(acc_eps), vd_hsum(acc_t) / RLK_EXP2_UNITS};
}

int RLK_FN(rlk_logprobs_fwd)(const void *logits, int dtype, const void *targets, int itype,
                             int64_t n, int64_t v, float temperature, int64_t ignore_index,
                             float *logp, float *lse, float *entropy, float *lse_parts,
                             int64_t *first_overflow) {
  if (dtype < RLK_F32 || dtype > RLK_F16) return RLK_BAD_DTYPE;
  const float invT = 1.0f / temperature, k = invT * LOG2E;
  const size_t esize = dtype == RLK_F32 ? 4 : 2;
  int status = RLK_OK;
  int64_t overflow = INT64_MAX; /* a minimum: the same whatever order the threads finish in */

#pragma omp parallel for schedule(static) reduction(| : status) reduction(min : overflow) \
    if (n * v >= PARALLEL_MIN_ELEMENTS)
  for (int64_t i = 0; i < n; i++) {
    const int64_t y = target_of(targets, itype, i);
    float out_logp = 0.0f, out_lse = 0.0f, out_entropy = 0.0f, out_m = 0.0f, out_ln_s = 0.0f;
    if (y == ignore_index) {
      /* not read: zeros */
    } else if (y < 0 || y >= v) {
      out_logp = out_lse = out_entropy = out_m = out_ln_s = NAN;
      status |= RLK_BAD_TARGET;
    } else {
      const void *row = (const char *)logits + (size_t)i * (size_t)v * esize; /* 64-bit offset */
      const row_stats st = row_stats_of(row, dtype, v, k, entropy != NULL);
      const double s_total = st.ties + st.eps;
      if (!(s_total >= 1.0) || isinf(st.m)) {
        /* No distribution: a NaN logit made s NaN, a +inf logit is the max (its exponentials are
           NaN), or no logit is finite (s = 0; a row with a finite logit has s >= 1, its
           maximum's 2^0). The row's outputs are NaN, on every backend. */
        out_logp = out_lse = out_entropy = out_m = out_ln_s = NAN;
      } else {
        const double ln_s = log(st.ties) + log1p(st.eps / st.ties);
        const double zy = scalar_load(row, dtype, y);
        const double row_lse = st.m * (double)invT + ln_s, row_logp = (zy - st.m) * (double)invT - ln_s;
        out_lse = (float)row_lse;
        out_logp = (float)row_logp;
        out_entropy = (float)(ln_s - LN2 * st.t / s_total);
        out_m = st.m;
        out_ln_s = (float)ln_s;
        /* finite logits whose lse or logp float32 cannot hold (|z/T| near 3.4e38); a -inf target's
           logp is -inf by right */
        if (isinf(out_lse) || (isinf(out_logp) && isfinite(zy))) overflow = i < overflow ? i : overflow;
      }
    }
    logp[i] = out_logp;
    if (lse) lse[i] = out_lse;
    if (entropy) entropy[i] = out_entropy;
    if (lse_parts) {
      lse_parts[2 * i] = out_m;
      lse_parts[2 * i + 1] = out_ln_s;
    }
  }
  if (first_overflow) *first_overflow = overflow == INT64_MAX ? -1 : overflow;
  return status;
}

int RLK_FN(rlk_logprobs_bwd)(const void *logits, int dtype, const void *targets, int itype,
                             int64_t n, int64_t v, float temperature, int64_t ignore_index,
                             const float *lse_parts, const float *entropy, const float *grad_logp,
                             const float *grad_entropy, void *grad_logits, int grad_dtype, int64_t col0) {
  if (dtype < RLK_F32 || dtype > RLK_F16 || grad_dtype < RLK_F32 || grad_dtype > RLK_F16)
    return RLK_BAD_DTYPE;
  const float invT = 1.0f / temperature, k = invT * LOG2E;
  const size_t esize = dtype == RLK_F32 ? 4 : 2, gsize = grad_dtype == RLK_F32 ? 4 : 2;
  int status = RLK_OK;

#pragma omp parallel for schedule(static) reduction(| : status) if (n * v >= PARALLEL_MIN_ELEMENTS)
  for (int64_t i = 0; i < n; i++) {
    const void *row = (const char *)logits + (size_t)i * (size_t)v * esize;
    void *out = (char *)grad_logits + (size_t)i * (size_t)v * gsize;
    const int64_t target = target_of(targets, itype, i);
    const int ignored = target == ignore_index;
    const float m = lse_parts[2 * i], ln_s = lse_parts[2 * i + 1];
    /* whole rows (col0 < 0): the target is a column here; a tile of columns [col0, col0 + v) of
       longer rows: the target is a column of the whole row, checked by the caller, and has its
       one-hot term here only when it falls in the tile */
    const int64_t y = col0 < 0 ? target : target - col0;
    const int bad = col0 < 0 && !ignored && (y < 0 || y >= v);
    const int in_tile = !ignored && y >= 0 && y < v;
    if (bad) status |= RLK_BAD_TARGET;
    /* a row without a distribution (its (m, ln s) are NaN, as the forward writes them) gets a NaN gradient */
    if (ignored || bad || !isfinite(m) || !isfinite(ln_s)) {
      const vf fill = vf_splat(ignored ? 0.0f : NAN);
      int64_t j = 0;
      for (; j + RLK_W <= v; j += RLK_W) vf_store(out, grad_dtype, j, fill);
      if (j < v) vf_store_partial(out, grad_dtype, j, (int)(v - j), fill);
      continue;
    }
    const float g = grad_logp ? grad_logp[i] : 0.0f;
    const float h = grad_entropy ? grad_entropy[i] : 0.0f;
    const float H = grad_entropy ? entropy[i] : 0.0f;
    const float zy = in_tile ? scalar_load(row, dtype, y) : 0.0f; /* read before an in-place sweep overwrites it */

    /* dz = -p * (g + h * (a*ln2 + H)) / T  with a = (z - m) * log2(e)/T - ln s * log2(e), p = 2^a:
       from m (one of the logits, exact) and ln s (small and precise), never from lse */
    const vf vm = vf_splat(m), vk = vf_splat(k * RLK_EXP2_UNITS), vl = vf_splat(ln_s * LOG2E * RLK_EXP2_UNITS);
    const vf vg = vf_splat(g), vh_ = vf_splat(h), vH = vf_splat(H), vscale = vf_splat(-invT);
    const float ln2u = LN2 / RLK_EXP2_UNITS; /* a in exponent units -> natural log */
#define DZ_OF(z, a_)                                                     \
  (a_ = vf_clamp_below(((z) - vm) * vk - vl, RLK_EXP2_MIN), \
   vscale * vf_exp2u(a_) * (vg + vh_ * (a_ * ln2u + vH)))
    vf a;
    int64_t j = 0;
    if (grad_dtype == RLK_F32) {
      /* streaming stores: the gradient is not read here again, so it goes to memory without the
         read for ownership a cached store costs (a third of the traffic); they need aligned
         vectors, so the row's head up to the first aligned one is a partial vector */
      float *o = (float *)out;
      const int64_t mis = (int64_t)((uintptr_t)o % sizeof(vf)) / 4;
      const int64_t head = mis == 0 ? 0 : (RLK_W - mis < v ? RLK_W - mis : v);
      if (head > 0) {
        const vf z = vf_load_partial(row, dtype, 0, (int)head, 0.0f);
        vf_store_partial(out, RLK_F32, 0, (int)head, DZ_OF(z, a));
      }
      for (j = head; j + RLK_W <= v; j += RLK_W) {
        const vf z = vf_load(row, dtype, j);
        vf_stream(o + j, DZ_OF(z, a));
      }
      _mm_sfence(); /* the streamed stores are ordered before the target's and the caller's */
    } else {
      if (grad_dtype == RLK_BF16) {
        /* bf16 (the in-place backward, mostly): two vectors a store through one pack, without the
           NaN path every dz here has no use for; both loaded before either is stored, as in place
           requires. The narrowing was half the work: in place ran 1.75x slower than writing f32. */
        vf a2;
        for (; j + 2 * RLK_W <= v; j += 2 * RLK_W) {
          const vf z0 = vf_load(row, dtype, j), z1 = vf_load(row, dtype, j + RLK_W);
          const vf d0 = DZ_OF(z0, a), d1 = DZ_OF(z1, a2);
          vh_store_bf16_pair_finite((uint16_t *)out + j, d0, d1);
        }
      }
      for (; j + RLK_W <= v; j += RLK_W) {
        const vf z = vf_load(row, dtype, j);
        vf_store(out, grad_dtype, j, DZ_OF(z, a));
      }
    }
    if (j < v) {
      const vf z = vf_load_partial(row, dtype, j, (int)(v - j), 0.0f);
      vf_store_partial(out, grad_dtype, j, (int)(v - j), DZ_OF(z, a));
    }
#undef DZ_OF
    if (!in_tile) continue; /* a tile without the target: every column is -p (g + h (log p + H)) / T */
    /* the target's own term, in double: 1 - p_y = -expm1(logp_y), which keeps its digits when p_y
       is near 1 (1 - p_y would cancel), rounded once into the gradient's type */
    const double logp_y = ((double)zy - m) * invT - ln_s, p_y = exp(logp_y);
    const double entropy_term = p_y == 0 ? 0.0 : (double)h * p_y * (logp_y + H); /* 0 for a banned target (-inf) */
    const double dzy = (double)invT * ((double)g * -expm1(logp_y) - entropy_term);
    vf_store_partial(out, grad_dtype, y, 1, vf_splat((float)dzy));
  }
  return status;
}
