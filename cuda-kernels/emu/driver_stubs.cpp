// driver_stubs.cpp — a weak definition of every driver symbol JCuda's native library imports
// (driver_api.txt, from `nm -D --undefined-only libJCudaDriver-*.so`): JCuda binds them lazily,
// so a call this driver does not implement would otherwise end the process. Each stub returns
// CUDA_ERROR_NOT_SUPPORTED and names itself; driver.cpp's definitions, strong, win at link time.
#include <stdio.h>

static int not_supported(const char *name) {
  fprintf(stderr, "rlkernels emulated driver: %s is not supported (CUDA_ERROR_NOT_SUPPORTED)\n", name);
  return 801;  // CUDA_ERROR_NOT_SUPPORTED
}

#define EMU_STUB(name) \
  extern "C" __attribute__((weak, visibility("default"))) int name() { return not_supported(#name); }
#include EMU_DRIVER_STUBS
