/*
 * probe.c — the read-bandwidth probe: a plain sum over a large buffer with every core and the
 * widest vectors. Benchmarks report the kernels' bandwidth as a fraction of this figure.
 */
#include <omp.h>

#include "simd.h"

double RLK_FN(rlk_sum_f32)(const float *x, int64_t n) {
  double total = 0.0;
#pragma omp parallel reduction(+ : total)
  {
    /* four independent accumulators so the adds' latency does not cap the load rate */
    vf a0 = vf_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
    const int64_t step = 4 * RLK_W;
    const int64_t blocks = n / step;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
      const float *p = x + b * step;
      vf v0, v1, v2, v3;
      memcpy(&v0, p, sizeof v0);
      memcpy(&v1, p + RLK_W, sizeof v1);
      memcpy(&v2, p + 2 * RLK_W, sizeof v2);
      memcpy(&v3, p + 3 * RLK_W, sizeof v3);
      a0 += v0;
      a1 += v1;
      a2 += v2;
      a3 += v3;
    }
    total += vf_hsum((a0 + a1) + (a2 + a3));
  }
  for (int64_t i = n / (4 * RLK_W) * (4 * RLK_W); i < n; i++) total += x[i];
  return total;
}
