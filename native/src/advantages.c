/*
 * advantages.c — group-normalised advantages, GAE, discounted returns and masked whitening on
 * the CPU (ARCHITECTURE §5.2). Not vectorised (the work is a few operations per element and gathers),
 * so compiled once, not per instruction set. Every mean and variance is two-pass in double, and
 * every sum runs in a fixed order whatever the thread count: bitwise the same output every run.
 * The CUDA twin is cuda-kernels/advantages.cu; the reference is ReferenceBackend.java.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "rlk_math.h"
#include "rlkernels.h"

/* Elements per chunk of a whole-tensor reduction: the partial sums of chunks are added in order. */
#define CHUNK 65536

int rlk_group_advantages(const float *rewards, const float *weights, const int32_t *order, const int32_t *offsets,
                         int64_t groups, int mode, int unbiased, float eps, int by_std, float *advantages) {
  if (mode < RLK_ADV_GRPO || mode > RLK_ADV_PASSK || (mode == RLK_ADV_OPO && !weights)) return RLK_BAD_ARGUMENT;
  double scale = 1.0; /* gpg's alpha: the batch's sequences over its nonzero rewards (a count: exact in any order) */
  if (mode == RLK_ADV_GPG) {
    const int64_t s = groups > 0 ? offsets[groups] : 0;
    int64_t nonzero = 0;
#pragma omp parallel for schedule(static) reduction(+ : nonzero) if (s > 65536)
    for (int64_t i = 0; i < s; i++) nonzero += rewards[order[i]] != 0.0f;
    scale = (double)s / (double)(nonzero > 0 ? nonzero : 1);
  }
#pragma omp parallel for schedule(dynamic, 256) if (groups > 64)
  for (int64_t g = 0; g < groups; g++) {
    const int32_t *members = order + offsets[g];
    const int64_t n = offsets[g + 1] - offsets[g];
    double mean = 0.0;
    if (mode == RLK_ADV_OPO) { /* the length-weighted mean (0 when the lengths sum to 0) */
      double wsum = 0.0;
      for (int64_t k = 0; k < n; k++) {
        mean += (double)weights[members[k]] * rewards[members[k]];
        wsum += weights[members[k]];
      }
      mean = wsum > 0 ? mean / wsum : 0.0;
    } else {
      for (int64_t k = 0; k < n; k++) mean += rewards[members[k]];
      mean /= (double)n;
    }
    double squares = 0.0;
    for (int64_t k = 0; k < n; k++) {
      const double d = rewards[members[k]] - mean;
      squares += d * d;
    }
    const double std = n > 1 ? sqrt(squares / (double)(unbiased ? n - 1 : n)) : 0.0;
    if (mode == RLK_ADV_PASSK) { /* the first maximum, then the largest of the others */
      int64_t top = 0;
      for (int64_t k = 1; k < n; k++)
        if (rewards[members[k]] > rewards[members[top]]) top = k;
      double second = -INFINITY;
      for (int64_t k = 0; k < n; k++)
        if (k != top && rewards[members[k]] > second) second = rewards[members[k]];
      for (int64_t k = 0; k < n; k++)
        advantages[members[k]] = rlk_passk_advantage(k == top, rewards[members[top]], second, std, eps, by_std);
      continue;
    }
    for (int64_t k = 0; k < n; k++) advantages[members[k]] = rlk_advantage(mode, rewards[members[k]], mean, std, n, eps, scale);
  }
  return RLK_OK;
}

int rlk_sequence_to_tokens(const float *per_sequence, const void *mask, int mask_u8, int64_t s, int64_t t,
                           float *per_token) {
#pragma omp parallel for schedule(static) if (s * t > 65536)
  for (int64_t i = 0; i < s; i++) {
    const float a = per_sequence[i];
    for (int64_t j = 0; j < t; j++) per_token[i * t + j] = rlk_kept(mask, mask_u8, i * t + j) ? a : 0.0f;
  }
  return RLK_OK;
}

/* One reverse scan: with values, GAE; without, discounted returns-to-go (lambda unused). */
int rlk_gae(const float *rewards, const float *values, const void *mask, int mask_u8, int64_t b, int64_t t,
            float gamma, float lambda, float *advantages, float *returns) {
#pragma omp parallel for schedule(static) if (b * t > 65536)
  for (int64_t row = 0; row < b; row++) {
    double next = 0.0, next_value = 0.0;
    for (int64_t j = t - 1; j >= 0; j--) {
      const int64_t i = row * t + j;
      if (!rlk_kept(mask, mask_u8, i)) {
        if (advantages) advantages[i] = 0.0f;
        returns[i] = 0.0f;
        continue;
      }
      if (!values) {
        next = rewards[i] + (double)gamma * next;
        returns[i] = (float)next;
      } else {
        const double value = values[i];
        next = rewards[i] + (double)gamma * next_value - value + (double)gamma * (double)lambda * next;
        next_value = value;
        advantages[i] = (float)next;
        returns[i] = (float)(next + value);
      }
    }
  }
  return RLK_OK;
}

/* Per group (rows in member order, sums in double in that order: bitwise the same whatever the
   thread count): each member's G into returns and W into advantages, then column by column the
   baseline and the advantages, which overwrite the W they were computed from. */
int rlk_otb(const float *rewards, const void *mask, int mask_u8, const float *old_logp, const float *sum_pi_sq,
            const float *is_weights, const int32_t *order, const int32_t *offsets, int64_t groups, int64_t s, int64_t t,
            float eps, int zero_tail, float *advantages, float *returns) {
  (void)s;
#pragma omp parallel for schedule(dynamic, 16) if (groups > 1 && groups * t > 65536)
  for (int64_t g = 0; g < groups; g++) {
    const int32_t *members = order + offsets[g];
    const int64_t n = offsets[g + 1] - offsets[g];
    int64_t max = -1, second = -1, longest = -1; /* longest: the row of the (first) longest */
    for (int64_t k = 0; k < n; k++) {
      const int64_t base = (int64_t)members[k] * t;
      double sum = 0.0, cumulative = 0.0;
      int64_t len = 0;
      for (int64_t j = t - 1; j >= 0; j--) {
        const int kept = rlk_kept(mask, mask_u8, base + j);
        if (kept) sum += rewards[base + j];
        returns[base + j] = kept ? (float)sum : 0.0f;
      }
      for (int64_t j = 0; j < t; j++) {
        const int64_t i = base + j;
        if (rlk_kept(mask, mask_u8, i)) {
          cumulative += rlk_otb_energy(old_logp[i], sum_pi_sq[i], is_weights ? is_weights[i] : 1.0);
          len++;
        }
        advantages[i] = (float)cumulative;
      }
      if (len > max) {
        second = max;
        max = len;
        longest = members[k];
      } else if (len > second) {
        second = len;
      }
    }
    for (int64_t j = 0; j < t; j++) {
      double num = 0.0, den = 0.0;
      for (int64_t k = 0; k < n; k++) {
        const int64_t i = (int64_t)members[k] * t + j;
        if (!rlk_kept(mask, mask_u8, i)) continue;
        num += (double)returns[i] * advantages[i];
        den += advantages[i];
      }
      const double baseline = n > 1 ? rlk_otb_baseline(num, den, eps) : 0.0;
      for (int64_t k = 0; k < n; k++) {
        const int64_t i = (int64_t)members[k] * t + j;
        if (!rlk_kept(mask, mask_u8, i)) {
          advantages[i] = 0.0f;
          continue;
        }
        const double b = rlk_otb_zero_tail(zero_tail, n, members[k] == longest, max, second, j) ? 0.0 : baseline;
        advantages[i] = (float)((double)returns[i] - b);
      }
    }
  }
  return RLK_OK;
}

int rlk_masked_whiten(const float *x, const void *mask, int mask_u8, int64_t n, float eps, int unbiased,
                      float *out) {
  const int64_t chunks = (n + CHUNK - 1) / CHUNK;
  double *partial = malloc(sizeof(double) * 2 * (size_t)(chunks > 0 ? chunks : 1));
  if (!partial) return RLK_OUT_OF_MEMORY;
  /* pass 1: sum and count per chunk, then in chunk order */
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; c++) {
    double sum = 0.0, count = 0.0;
    for (int64_t i = c * CHUNK; i < n && i < (c + 1) * CHUNK; i++)
      if (rlk_kept(mask, mask_u8, i)) {
        sum += x[i];
        count += 1.0;
      }
    partial[2 * c] = sum;
    partial[2 * c + 1] = count;
  }
  double sum = 0.0, count = 0.0;
  for (int64_t c = 0; c < chunks; c++) {
    sum += partial[2 * c];
    count += partial[2 * c + 1];
  }
  const double mean = count > 0 ? sum / count : 0.0;
  /* pass 2: squared deviations */
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; c++) {
    double squares = 0.0;
    for (int64_t i = c * CHUNK; i < n && i < (c + 1) * CHUNK; i++)
      if (rlk_kept(mask, mask_u8, i)) {
        const double d = x[i] - mean;
        squares += d * d;
      }
    partial[c] = squares;
  }
  double squares = 0.0;
  for (int64_t c = 0; c < chunks; c++) squares += partial[c];
  free(partial);
  const double dof = unbiased ? count - 1.0 : count;
  const double std = sqrt((dof > 0 ? squares / dof : 0.0) + eps);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = rlk_kept(mask, mask_u8, i) && std > 0 ? (float)((x[i] - mean) / std) : 0.0f;
  return RLK_OK;
}

/* The index of the first x[i] that is NaN or beyond +-limit, or -1: the argument check of every f32
   input (limit FLT_MAX: finiteness; a tighter limit also proves an op's outputs stay finite). */
int64_t rlk_first_outside_f32(const float *x, int64_t n, float limit) {
  /* |x| > limit, or NaN: on the bits of |x|, whose integer order is the order of the magnitudes,
     with NaN and infinity above every finite number */
  uint32_t lim_bits;
  memcpy(&lim_bits, &limit, 4);
  /* both sides below 2^31 after the mask: a signed compare is exact, and SSE has one (pcmpgtd) */
  const int32_t lim = (int32_t)(lim_bits & 0x7FFFFFFFu);
  const int64_t chunks = (n + CHUNK - 1) / CHUNK;
  int64_t first = INT64_MAX; /* a minimum: the same whatever order the threads finish in */
#pragma omp parallel for schedule(static) if (chunks > 1) reduction(min : first)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
    uint32_t bad = 0;
    const uint32_t *bits = (const uint32_t *)x;
    for (int64_t i = c * CHUNK; i < end; i++) bad |= (int32_t)(bits[i] & 0x7FFFFFFFu) > lim; /* vectorises */
    if (bad) {
      for (int64_t i = c * CHUNK; i < end; i++)
        if ((int32_t)(bits[i] & 0x7FFFFFFFu) > lim) {
          first = i < first ? i : first;
          break;
        }
    }
  }
  return first == INT64_MAX ? -1 : first;
}
