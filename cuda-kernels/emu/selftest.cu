// selftest.cu — kernels that prove the emulator catches what it claims (EmulatorSelfTest.java):
// a missing __syncthreads changes results, a partial shuffle mask and a divergent barrier are
// reported, warp operations and atomics compute what CUDA defines, shared memory starts poisoned,
// dynamic shared memory works, and a seed fixes the schedule.
// Plain CUDA: it also compiles with nvcc, so the same checks can run on a GPU.

// One block sums its inputs through shared memory: thread t stores in[t], thread 0 adds them up.
// Without the barrier, thread 0 may read slots other warps have not written yet.
template <bool kSync>
__device__ void block_sum(const float *in, float *out) {
  __shared__ float slot[1024];
  const int t = threadIdx.x;
  slot[t] = in[blockIdx.x * blockDim.x + t];
  if (kSync) __syncthreads();  // the barrier under test: every slot is written before it is read
  if (t == 0) {
    float sum = 0.0f;
    for (int i = 0; i < (int)blockDim.x; i++) sum += slot[i];
    out[blockIdx.x] = sum;
  }
}
extern "C" __global__ void selftest_block_sum(const float *in, float *out) { block_sum<true>(in, out); }
extern "C" __global__ void selftest_block_sum_missing_sync(const float *in, float *out) { block_sum<false>(in, out); }

// Half a warp's mask: CUDA allows it, the emulator refuses it rather than guess.
extern "C" __global__ void selftest_partial_mask(float *out) {
  out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, (float)threadIdx.x, 1);
}

// Only the first 16 threads reach the barrier; the rest exit: a divergent barrier.
extern "C" __global__ void selftest_divergent_barrier(float *out) {
  if (threadIdx.x < 16) {
    __syncthreads();
    out[threadIdx.x] = 1.0f;
  }
}

// Every warp operation, seven results per thread.
extern "C" __global__ void selftest_warp_ops(int *out) {
  const int t = threadIdx.x, lane = t % 32;
  int *o = out + 7 * t;
  o[0] = __shfl_xor_sync(0xffffffffu, t, 5);
  o[1] = __shfl_down_sync(0xffffffffu, t, 3);
  o[2] = __shfl_up_sync(0xffffffffu, t, 2, 8);
  o[3] = __shfl_sync(0xffffffffu, t, 7);
  o[4] = (int)__ballot_sync(0xffffffffu, lane % 3 == 0);
  o[5] = __all_sync(0xffffffffu, lane < 32) + 2 * __any_sync(0xffffffffu, lane == 31);
  __syncwarp();
  o[6] = __shfl_xor_sync(0xffffffffu, (long long)t << 33, 1) >> 33;
}

// Every thread of every block adds 1: blocks run concurrently, so only real atomics give the total.
extern "C" __global__ void selftest_atomics(unsigned long long *count, float *sum, int *max) {
  atomicAdd(count, 1ull);
  atomicAdd(sum, 1.0f);
  atomicMax(max, (int)(blockIdx.x * blockDim.x + threadIdx.x));
}

// Reads shared memory nobody wrote (write_first = 0): poisoned (NaN) in the emulator. The
// conditional write keeps the compiler from proving the array is never written.
extern "C" __global__ void selftest_unwritten_shared(float *out, int write_first) {
  __shared__ float maybe_written[256];
  if (write_first) maybe_written[threadIdx.x] = 1.0f;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = maybe_written[(threadIdx.x + 1) % blockDim.x];
}

// Dynamic shared memory: each thread writes its index, then reads its mirror's.
extern "C" __global__ void selftest_dynamic_shared(float *out) {
  extern __shared__ float dynamic_slots[];
  const int t = threadIdx.x;
  dynamic_slots[t] = (float)t;
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = dynamic_slots[blockDim.x - 1 - t];
}

// The order in which threads arrive: a fingerprint of the schedule (one block).
extern "C" __global__ void selftest_arrival_order(int *counter, int *order) {
  order[threadIdx.x] = atomicAdd(counter, 1);
  __syncthreads();
  order[blockDim.x + threadIdx.x] = atomicAdd(counter, 1);
}

// Many warp synchronisations and few instructions: the cost of a context switch (bench_switch.cpp).
extern "C" __global__ void selftest_switches(int iterations, int *out) {
  int x = threadIdx.x;
  for (int i = 0; i < iterations; i++) {
    __syncwarp();
    x += i;
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = x;
}

// Thread 0 writes v at p[i]: an out-of-bounds or freed p[i] must fault or be reported (EmulatorFaultTest).
extern "C" __global__ void selftest_write_at(float *p, long long i, float v) {
  if (threadIdx.x == 0 && blockIdx.x == 0) p[i] = v;
}
