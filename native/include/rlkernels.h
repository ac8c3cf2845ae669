/*
 * rlkernels.h — the C interface of the native CPU backend, called from Java through FFM
 * (io.rlkernels.backend.nativecpu.internal.NativeLibrary mirrors every declaration here).
 *
 * Contract: the Java side validates shapes, dtypes, ranges and lifetimes before calling;
 * these functions still never read out of bounds: a target id that is neither in [0, V)
 * nor the ignore index gives NaN outputs for its row and a non-zero return code.
 * Tensors are contiguous and row-major; row offsets are 64-bit (N*V exceeds 2^31).
 */
#ifndef RLKERNELS_H
#define RLKERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "rlk_contract.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Codes, stats slots and shared constants: declared once, in rlk_contract.h. */

/* Version of this interface; Java refuses a library whose version differs. */
int rlk_abi_version(void);
/* CRC-32 of the rlk_contract.h this library was compiled from (checked against the jar's copy). */
unsigned rlk_contract_crc(void);

/* The variant in use and the ones this CPU supports (a bit per enum rlk_isa). */
int rlk_isa_selected(void);
int rlk_isa_supported_mask(void);
/* Forces a variant (tests run every supported one); returns 0, or -1 if the CPU lacks it. */
int rlk_isa_select(int isa);
const char *rlk_isa_name(int isa);

int rlk_max_threads(void);
void rlk_set_num_threads(int n);

/*
 * Token log-probs forward (ARCHITECTURE §5.1), one pass over each row.
 *   logp[i]    = z[i,y]/T - lse[i]
 *   lse[i]     = log sum_v exp(z[i,v]/T)                (skipped when lse == NULL)
 *   entropy[i] = lse[i] - sum_v p[i,v] z[i,v]/T        (skipped when entropy == NULL)
 *   lse_parts[2i], lse_parts[2i+1] = m, ln s: the row's max logit and ln sum_v exp((z[i,v] - m)/T),
 *                so that lse = m/T + ln s; what the backward takes (skipped when NULL)
 * Rows whose target equals ignore_index are not read and get zeros. A row with a NaN or +inf
 * logit, or with no finite logit, gets NaN. first_overflow (may be NULL) receives the smallest row
 * whose finite logits give an lse or logp beyond float32's range, or -1.
 */
int rlk_logprobs_fwd(const void *logits, int dtype, const void *targets, int itype,
                     int64_t n, int64_t v, float temperature, int64_t ignore_index,
                     float *logp, float *lse, float *entropy, float *lse_parts, int64_t *first_overflow);

/*
 * Token log-probs backward:
 *   dz[i,v] = (g[i]*(1[v=y] - p) - h[i]*p*(log p + H[i])) / T,  log p = (z[i,v] - m)/T - ln s
 * from the forward's lse_parts (m, ln s) [n, 2], never from lse (whose rounding would reach every
 * p); 1 - p_y is formed as -expm1(log p_y). grad_logp (g) or grad_entropy (h) may be NULL (zero);
 * entropy (H) is read only when h is given. grad_logits may alias logits (in-place) when
 * grad_dtype == dtype. Ignored rows get zeros. col0 < 0: the logits are whole rows. col0 >= 0: they
 * are columns [col0, col0 + v) of longer rows (a tile of the vocabulary), lse_parts and entropy
 * are the whole rows', targets are ids in the whole row (checked by the caller) and a target
 * outside the tile has no one-hot term in it.
 */
int rlk_logprobs_bwd(const void *logits, int dtype, const void *targets, int itype,
                     int64_t n, int64_t v, float temperature, int64_t ignore_index,
                     const float *lse_parts, const float *entropy,
                     const float *grad_logp, const float *grad_entropy,
                     void *grad_logits, int grad_dtype, int64_t col0);

/*
 * Group-normalised advantages (ARCHITECTURE §5.2): group g is order[offsets[g] .. offsets[g+1]), sequence
 * indices in a fixed order (io.rlkernels.ops.GroupLayout). Two-pass mean and variance in double
 * (rlk_advantage says what a group of one gets). Batch mode is one group holding every sequence.
 * weights [S]: opo's response lengths (NULL otherwise); by_std: grpo_passk divides by std + eps.
 */
int rlk_group_advantages(const float *rewards, const float *weights, const int32_t *order, const int32_t *offsets,
                         int64_t groups, int mode, int unbiased, float eps, int by_std, float *advantages);

/* per_token[i, j] = mask[i, j] ? per_sequence[i] : 0; mask is f32, or u8 when mask_u8. */
int rlk_sequence_to_tokens(const float *per_sequence, const void *mask, int mask_u8, int64_t s, int64_t t,
                           float *per_token);

/*
 * GAE over [b, t] rows (values != NULL: advantages and returns), or discounted returns-to-go
 * (values == NULL, advantages == NULL, lambda unused). Positions the mask drops are skipped by the
 * scan and get 0.
 */
int rlk_gae(const float *rewards, const float *values, const void *mask, int mask_u8, int64_t b, int64_t t,
            float gamma, float lambda, float *advantages, float *returns);

/*
 * verl's optimal token baseline over [s, t] rows (io.rlkernels.ops.OptimalTokenBaseline): returns
 * G (reverse sums of the kept rewards), W (forward sums of rlk_otb_energy), then per group of rows
 * (order[offsets[g] .. offsets[g+1]]) and position the baseline sum m G W / (sum m W + eps);
 * advantages = m (G - B). is_weights may be NULL (rho = 1). W is kept in advantages between the passes.
 */
int rlk_otb(const float *rewards, const void *mask, int mask_u8, const float *old_logp, const float *sum_pi_sq,
            const float *is_weights, const int32_t *order, const int32_t *offsets, int64_t groups, int64_t s, int64_t t,
            float eps, int zero_tail, float *advantages, float *returns);

/* (x - mean) / sqrt(var + eps) over the kept positions, 0 elsewhere; out may be x. */
int rlk_masked_whiten(const float *x, const void *mask, int mask_u8, int64_t n, float eps, int unbiased, float *out);

/*
 * Clipped importance-ratio policy loss and dL/dlogp, fused, with the rollout correction
 * (ARCHITECTURE §5.3; io.rlkernels.ops.PolicyLoss defines every term). Sequences are runs
 * offsets[k] .. offsets[k+1] (offsets may be NULL when nothing needs sequences: segments of
 * RLK_PL_CHUNK tokens). params: RLK_PP_COUNT doubles, enum rlk_pl_param (the codes, thresholds and
 * coefficients; a NaN denominator or normaliser: implied by the batch). ref, entropy, rollout and
 * grad_entropy may be NULL. stats gets RLK_PL_STATS doubles, enum rlk_policy_stat. Returns
 * RLK_OVERFLOW when a gradient float32 cannot hold.
 */
int rlk_policy_loss(const float *logp, const float *old, const float *adv, const void *mask, int mask_u8,
                    const float *ref, const float *entropy, const float *rollout, const int32_t *offsets, int64_t sequences,
                    int64_t n, const double *params, float *grad, float *grad_entropy, double *stats);

/* out[i] = mask[i] ? targets[i] : ignore, targets i32 or i64 (itype). */
int rlk_mask_rows(const void *targets, int itype, const void *mask, int mask_u8, int64_t n, int64_t ignore, void *out);

/*
 * BGPO's per-sequence step of one sample (io.rlkernels.ops.Bgpo): from the masked rows' logp, each
 * sequence's value (values[s]), bound, and the upstream gradient of its masked rows (upstream[p],
 * 0 elsewhere); scale = 1 / (D n_t). Adds into state, RLK_BGPO_STATS doubles (enum rlk_bgpo_stat:
 * loss, seen, clip high, low, dual, empty, sum d, min d, max d, sum psi; min and max combined).
 */
int rlk_bgpo_coefficients(const float *logp, const int32_t *offsets, int64_t sequences, const void *mask, int mask_u8,
                          const float *weights, const float *old, const float *adv, float clip_low, float clip_high,
                          float dual_clip, double scale, float *values, float *upstream, double *state);

/* C[m, n] = alpha op(A) op(B) + beta C, f32 row-major; op transposes when the flag is set. */
int rlk_matmul(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, const float *b,
               float beta, float *c);

/* dst[i] = src[i] widened to f32 (exact), src bf16 (dtype 1) or f16 (dtype 2): a 16-bit operand
   made ready for the BLAS, which multiplies f32. */
int rlk_widen(int dtype, const void *src, int64_t n, float *dst);

/* The index of the first x[i] that is NaN or whose magnitude exceeds limit (FLT_MAX: the first
   NaN or infinity), or -1. */
int64_t rlk_first_outside_f32(const float *x, int64_t n, float limit);

/* Sum of a float buffer with every core and the widest vectors: the read-bandwidth probe. */
double rlk_sum_f32(const float *x, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
