// rlkernels.cu — the one translation unit nvcc turns into rlkernels.fatbin: every kernel source.
#ifdef __CUDACC__
#include <cuda_fp16.h>  // __half2float and friends, used under __CUDA_ARCH__ only
#endif
#include "logprobs.cu"
#include "advantages.cu"
#include "policy_loss.cu"
#include "bgpo.cu"
