/*
 * overflow.h — how a scalar kernel notices an output float32 cannot hold. Its inputs are finite
 * (checked by Java) and its arithmetic is in double, which cannot overflow there, so a float32
 * output is infinite only when its value was beyond float32's range. The policy loss scans each
 * segment's gradients right after writing them (in cache: +0.3 %; testing each value as it is
 * written cost 27 % with -fno-trapping-math, glibc's isinf() more) and returns RLK_OVERFLOW; Java
 * then finds and names the element. Ops whose outputs a bound on the inputs keeps finite (the
 * advantages, GAE) need no test in the kernel: Java checks the bound (Gae.inputBound).
 */
#ifndef RLK_OVERFLOW_H
#define RLK_OVERFLOW_H

#include <stdint.h>

/* Whether any of x[0..n) is an infinity (vectorises: a bit test and an OR a float). */
static inline int rlk_any_inf_f32(const float *x, int64_t n) {
  const uint32_t *bits = (const uint32_t *)x;
  uint32_t inf = 0;
  for (int64_t i = 0; i < n; i++) inf |= (bits[i] & 0x7FFFFFFFu) == 0x7F800000u;
  return inf != 0;
}

#endif
