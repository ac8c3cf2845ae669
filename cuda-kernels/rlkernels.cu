// rlkernels.cu — the one translation unit nvcc turns into rlkernels.fatbin: every kernel source.
#include <cuda_fp16.h>
#include "logprobs.cu"
