// cublas.cpp — libcublas.so.13 for the emulated driver: the few cuBLAS calls the cuda backend
// makes (cublasCreate_v2, cublasDestroy_v2, cublasSetStream_v2, cublasSetMathMode,
// cublasGetVersion_v2, cublasGemmEx), over a CPU GEMM. Device memory is the emulator's host
// memory, so the product reads the operands in place; it runs as a host function on the handle's
// stream (cuLaunchHostFunc of the emulated driver), ordered with the kernels around it, as
// cuBLAS's kernels are. Stricter than cuBLAS where that catches bugs: every operand's extent is
// checked against the allocation it lies in when the call is made (cuBLAS would fault later);
// handles are counted (emu_cublas_live_handles) so that tests find one never destroyed.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <atomic>
#include <mutex>
#include <set>

extern "C" {
typedef int CUresult;
typedef struct CUstream_st *CUstream;
typedef void *CUcontext;
CUresult cuCtxGetCurrent(CUcontext *ctx);
CUresult cuMemGetAddressRange_v2(unsigned long long *base, size_t *size, unsigned long long p);
CUresult cuLaunchHostFunc(CUstream stream, void (*fn)(void *), void *data);
}

namespace {

enum Status {
  SUCCESS = 0,
  NOT_INITIALIZED = 1,
  INVALID_VALUE = 7,
  EXECUTION_FAILED = 13,
  NOT_SUPPORTED = 15,
};

// cudaDataType and cublasComputeType_t values (library_types.h, cublas_api.h)
constexpr int R_32F = 0, R_16F = 2, R_16BF = 14;
constexpr int COMPUTE_32F = 68, COMPUTE_32F_PEDANTIC = 69;
constexpr int kVersion = 130000;  // reported as 13.0.0
constexpr uint32_t kMagic = 0xB1A5B1A5u;

struct Handle {
  uint32_t magic = kMagic;
  CUstream stream = nullptr;
  int math_mode = 0;
};

std::mutex g_mutex;
std::set<Handle *> g_handles;
std::atomic<long long> g_gemms{0};

bool live(Handle *h) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return h && g_handles.count(h) && h->magic == kMagic;
}

float load(const void *p, int type, long long i) {
  if (type == R_32F) return static_cast<const float *>(p)[i];
  uint16_t bits = static_cast<const uint16_t *>(p)[i];
  uint32_t u;
  if (type == R_16BF) {
    u = (uint32_t)bits << 16;
  } else {  // IEEE half
    uint32_t sign = (uint32_t)(bits & 0x8000u) << 16, exp = (bits >> 10) & 0x1Fu, man = bits & 0x3FFu;
    if (exp == 0x1F) {
      u = sign | 0x7F800000u | (man << 13);
    } else if (exp != 0) {
      u = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        man <<= 1;
        e++;
      } while (!(man & 0x400u));
      u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3FFu) << 13);
    }
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

size_t type_size(int type) { return type == R_32F ? 4 : 2; }

// Whether [p, p + bytes) lies in one live allocation of the emulated device.
bool in_device_memory(const void *p, size_t bytes) {
  unsigned long long base;
  size_t size;
  if (cuMemGetAddressRange_v2(&base, &size, (unsigned long long)(uintptr_t)p) != 0) return false;
  return (uintptr_t)p + bytes <= base + size;
}

struct Gemm {
  int ta, tb, m, n, k;
  float alpha, beta;
  const void *a, *b;
  void *c;
  int atype, btype, lda, ldb, ldc;
};

// Column-major, as cuBLAS: C[i + j ldc] = alpha sum_p op(A)(i, p) op(B)(p, j) + beta C, f32
// accumulation over p in order; beta = 0 does not read C.
void run(void *data) {
  Gemm *g = static_cast<Gemm *>(data);
  float *c = static_cast<float *>(g->c);
  for (int j = 0; j < g->n; j++) {
    for (int i = 0; i < g->m; i++) {
      float sum = 0.0f;
      for (int p = 0; p < g->k; p++) {
        const float x = load(g->a, g->atype, g->ta ? p + (long long)i * g->lda : i + (long long)p * g->lda);
        const float y = load(g->b, g->btype, g->tb ? j + (long long)p * g->ldb : p + (long long)j * g->ldb);
        sum += x * y;
      }
      float *out = c + i + (long long)j * g->ldc;
      *out = g->alpha * sum + (g->beta == 0.0f ? 0.0f : g->beta * *out);
    }
  }
  delete g;
}

}  // namespace

#define CUBLAS_API extern "C" __attribute__((visibility("default"))) int

CUBLAS_API cublasCreate_v2(Handle **handle) {
  if (!handle) return INVALID_VALUE;
  CUcontext ctx = nullptr;
  if (cuCtxGetCurrent(&ctx) != 0 || !ctx) return NOT_INITIALIZED;  // cuBLAS needs a current context
  Handle *h = new Handle();
  std::lock_guard<std::mutex> lock(g_mutex);
  g_handles.insert(h);
  *handle = h;
  return SUCCESS;
}

CUBLAS_API cublasDestroy_v2(Handle *handle) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!handle || !g_handles.count(handle)) return NOT_INITIALIZED;
  g_handles.erase(handle);
  handle->magic = 0;
  delete handle;
  return SUCCESS;
}

CUBLAS_API cublasSetStream_v2(Handle *handle, CUstream stream) {
  if (!live(handle)) return NOT_INITIALIZED;
  handle->stream = stream;
  return SUCCESS;
}

CUBLAS_API cublasSetMathMode(Handle *handle, int mode) {
  if (!live(handle)) return NOT_INITIALIZED;
  handle->math_mode = mode;
  return SUCCESS;
}

CUBLAS_API cublasGetVersion_v2(Handle *handle, int *version) {
  if (!live(handle)) return NOT_INITIALIZED;
  if (!version) return INVALID_VALUE;
  *version = kVersion;
  return SUCCESS;
}

CUBLAS_API cublasGemmEx(Handle *handle, int transa, int transb, int m, int n, int k, const void *alpha, const void *a,
                        int atype, int lda, const void *b, int btype, int ldb, const void *beta, void *c, int ctype, int ldc,
                        int compute, int algo) {
  (void)algo;
  if (!live(handle)) return NOT_INITIALIZED;
  if (transa < 0 || transa > 1 || transb < 0 || transb > 1 || m < 0 || n < 0 || k < 0 || !alpha || !beta) return INVALID_VALUE;
  const int rows_a = transa ? k : m, rows_b = transb ? n : k;
  if (lda < (rows_a > 1 ? rows_a : 1) || ldb < (rows_b > 1 ? rows_b : 1) || ldc < (m > 1 ? m : 1)) return INVALID_VALUE;
  if (ctype != R_32F || (compute != COMPUTE_32F && compute != COMPUTE_32F_PEDANTIC)) return NOT_SUPPORTED;
  for (int t : {atype, btype})
    if (t != R_32F && t != R_16F && t != R_16BF) return NOT_SUPPORTED;
  if (m == 0 || n == 0) return SUCCESS;
  const int cols_a = transa ? m : k, cols_b = transb ? k : n;
  struct Extent {
    const char *name;
    const void *p;
    long long elements;
    size_t size;
  } extents[] = {{"A", a, cols_a == 0 || rows_a == 0 ? 0 : (long long)(cols_a - 1) * lda + rows_a, type_size(atype)},
                 {"B", b, cols_b == 0 || rows_b == 0 ? 0 : (long long)(cols_b - 1) * ldb + rows_b, type_size(btype)},
                 {"C", c, (long long)(n - 1) * ldc + m, 4}};
  for (const Extent &e : extents) {
    if (e.elements > 0 && !in_device_memory(e.p, (size_t)e.elements * e.size)) {
      fprintf(stderr, "rlkernels emulated cublasGemmEx: %s (%p, %lld elements) is not inside one device allocation\n", e.name,
              e.p, e.elements);
      return EXECUTION_FAILED;
    }
  }
  Gemm *g = new Gemm{transa, transb, m, n, k, *static_cast<const float *>(alpha), *static_cast<const float *>(beta),
                     a, b, c, atype, btype, lda, ldb, ldc};
  if (cuLaunchHostFunc(handle->stream, run, g) != 0) {
    delete g;
    return EXECUTION_FAILED;
  }
  g_gemms++;
  return SUCCESS;
}

// For tests: cuBLAS handles created and not destroyed.
extern "C" __attribute__((visibility("default"))) long long emu_cublas_live_handles(void) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return (long long)g_handles.size();
}

// For tests: products queued so far.
extern "C" __attribute__((visibility("default"))) long long emu_cublas_gemms(void) { return g_gemms.load(); }
