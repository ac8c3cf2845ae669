/*
 * matmul.c — C = alpha op(A) op(B) + beta C in f32, row-major: BGPO's linear head (logits =
 * H W^T, dW += dlogits^T H, dH = dlogits W). Compiled per instruction set (simd.h): the inner loops
 * are contiguous axpys and dots the compiler vectorises. Each C element sums over k in order, so
 * the result does not depend on the thread count (threads own rows of C).
 */
#include <omp.h>

#include "rlkernels.h"
#include "simd.h"

#define TILE_K 128
#define TILE_N 1024

int RLK_FN(rlk_matmul)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                       const float *b, float beta, float *c) {
#pragma omp parallel for schedule(static) if (m * n * k > (1 << 20))
  for (int64_t i = 0; i < m; i++) {
    float *ci = c + i * n;
    for (int64_t j = 0; j < n; j++) ci[j] = beta == 0.0f ? 0.0f : beta * ci[j];
    if (!trans_b) {
      /* C[i, :] += alpha A(i, kk) B[kk, :]: axpys over rows of B, tiled so a block of B stays in cache */
      for (int64_t j0 = 0; j0 < n; j0 += TILE_N) {
        const int64_t j1 = j0 + TILE_N < n ? j0 + TILE_N : n;
        for (int64_t kk = 0; kk < k; kk++) {
          const float aik = alpha * (trans_a ? a[kk * m + i] : a[i * k + kk]);
          const float *bk = b + kk * n;
          for (int64_t j = j0; j < j1; j++) ci[j] += aik * bk[j];
        }
      }
    } else {
      /* C[i, j] += alpha dot(A(i, :), B[j, :]) */
      for (int64_t j = 0; j < n; j++) {
        const float *bj = b + j * k;
        float dot = 0.0f;
        if (!trans_a) {
          const float *ai = a + i * k;
          for (int64_t kk = 0; kk < k; kk++) dot += ai[kk] * bj[kk];
        } else {
          for (int64_t kk = 0; kk < k; kk++) dot += a[kk * m + i] * bj[kk];
        }
        ci[j] += alpha * dot;
      }
    }
  }
  return RLK_OK;
}

/* dst[i] = src[i] as f32, for dtype 1 (bf16) or 2 (f16): exact. What a BLAS call needs of a
   16-bit operand (the BLAS multiplies f32 only), a tile at a time. One thread: it runs between
   BLAS calls, and waking OpenMP's threads there would contend with the BLAS's own on every tile
   (measured: 5 ns an element with OpenMP, against well under 1 ns on one core). */
int RLK_FN(rlk_widen)(int dtype, const void *src, int64_t n, float *dst) {
  if (dtype != 1 && dtype != 2) return RLK_BAD_DTYPE;
  const int64_t full = n - n % RLK_W;
  for (int64_t i = 0; i < full; i += RLK_W) *(vf_mem *)(dst + i) = vf_load(src, dtype, i);
  if (full < n) vf_store_partial(dst, 0, full, (int)(n - full), vf_load_partial(src, dtype, full, (int)(n - full), 0.0f));
  return RLK_OK;
}
