/*
 * dispatch.c — the exported entry points of librlkernels: picks the instruction-set variant
 * (x86-64, AVX2, AVX-512) once, from the CPU's features, and forwards every call to it.
 */
#include <omp.h>
#include <stddef.h>
#include <stdint.h>

#include "rlkernels.h"


#define DECLARE_VARIANT(sfx)                                                                       \
  int rlk_logprobs_fwd_##sfx(const void *, int, const void *, int, int64_t, int64_t, float,        \
                             int64_t, float *, float *, float *, float *, int64_t *);              \
  int rlk_logprobs_bwd_##sfx(const void *, int, const void *, int, int64_t, int64_t, float,        \
                             int64_t, const float *, const float *, const float *, const float *,  \
                             void *, int, int64_t);                                                \
  double rlk_sum_f32_##sfx(const float *, int64_t);                                                \
  int rlk_matmul_##sfx(int, int, int64_t, int64_t, int64_t, float, const float *, const float *, float, float *); \
  int rlk_widen_##sfx(int, const void *, int64_t, float *);

DECLARE_VARIANT(x86_64)
DECLARE_VARIANT(avx2)
DECLARE_VARIANT(avx512)

typedef struct {
  const char *name;
  int (*fwd)(const void *, int, const void *, int, int64_t, int64_t, float, int64_t, float *,
             float *, float *, float *, int64_t *);
  int (*bwd)(const void *, int, const void *, int, int64_t, int64_t, float, int64_t, const float *,
             const float *, const float *, const float *, void *, int, int64_t);
  double (*sum)(const float *, int64_t);
  int (*matmul)(int, int, int64_t, int64_t, int64_t, float, const float *, const float *, float, float *);
  int (*widen)(int, const void *, int64_t, float *);
} variant;

static const variant VARIANTS[] = {
    [RLK_ISA_X86_64] = {"x86-64", rlk_logprobs_fwd_x86_64, rlk_logprobs_bwd_x86_64, rlk_sum_f32_x86_64,
                        rlk_matmul_x86_64, rlk_widen_x86_64},
    [RLK_ISA_AVX2] = {"avx2", rlk_logprobs_fwd_avx2, rlk_logprobs_bwd_avx2, rlk_sum_f32_avx2, rlk_matmul_avx2,
                      rlk_widen_avx2},
    [RLK_ISA_AVX512] = {"avx512", rlk_logprobs_fwd_avx512, rlk_logprobs_bwd_avx512, rlk_sum_f32_avx512,
                        rlk_matmul_avx512, rlk_widen_avx512},
};

static int selected = RLK_ISA_AUTO;

int rlk_isa_supported_mask(void) {
  __builtin_cpu_init();
  int mask = 1 << RLK_ISA_X86_64;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    mask |= 1 << RLK_ISA_AVX2;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("fma"))
    mask |= 1 << RLK_ISA_AVX512;
  return mask;
}

int rlk_isa_selected(void) {
  if (selected == RLK_ISA_AUTO) {
    const int mask = rlk_isa_supported_mask();
    selected = (mask & (1 << RLK_ISA_AVX512)) ? RLK_ISA_AVX512
               : (mask & (1 << RLK_ISA_AVX2)) ? RLK_ISA_AVX2
                                              : RLK_ISA_X86_64;
  }
  return selected;
}

int rlk_isa_select(int isa) {
  if (isa == RLK_ISA_AUTO) {
    selected = RLK_ISA_AUTO;
    rlk_isa_selected();
    return 0;
  }
  if (isa < RLK_ISA_X86_64 || isa > RLK_ISA_AVX512) return -1;
  if (!(rlk_isa_supported_mask() & (1 << isa))) return -1;
  selected = isa;
  return 0;
}

const char *rlk_isa_name(int isa) {
  return isa >= RLK_ISA_X86_64 && isa <= RLK_ISA_AVX512 ? VARIANTS[isa].name : "unknown";
}

int rlk_abi_version(void) { return RLK_ABI_VERSION; }

unsigned rlk_contract_crc(void) { return RLK_CONTRACT_CRC; }
int rlk_max_threads(void) { return omp_get_max_threads(); }
void rlk_set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

int rlk_logprobs_fwd(const void *logits, int dtype, const void *targets, int itype, int64_t n,
                     int64_t v, float temperature, int64_t ignore_index, float *logp, float *lse,
                     float *entropy, float *lse_parts, int64_t *first_overflow) {
  return VARIANTS[rlk_isa_selected()].fwd(logits, dtype, targets, itype, n, v, temperature,
                                          ignore_index, logp, lse, entropy, lse_parts, first_overflow);
}

int rlk_logprobs_bwd(const void *logits, int dtype, const void *targets, int itype, int64_t n,
                     int64_t v, float temperature, int64_t ignore_index, const float *lse_parts,
                     const float *entropy, const float *grad_logp, const float *grad_entropy,
                     void *grad_logits, int grad_dtype, int64_t col0) {
  return VARIANTS[rlk_isa_selected()].bwd(logits, dtype, targets, itype, n, v, temperature,
                                          ignore_index, lse_parts, entropy, grad_logp, grad_entropy,
                                          grad_logits, grad_dtype, col0);
}

double rlk_sum_f32(const float *x, int64_t n) { return VARIANTS[rlk_isa_selected()].sum(x, n); }

int rlk_matmul(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, const float *b,
               float beta, float *c) {
  return VARIANTS[rlk_isa_selected()].matmul(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
}

int rlk_widen(int dtype, const void *src, int64_t n, float *dst) { return VARIANTS[rlk_isa_selected()].widen(dtype, src, n, dst); }
