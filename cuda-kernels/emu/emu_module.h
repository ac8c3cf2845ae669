// emu_module.h — what a kernel module (module.cpp) gives the runtime: its kernels by name, and
// the dynamic shared memory that every `extern __shared__` array of the module names.
#pragma once

#include <stddef.h>

#define EMU_MAX_DYNAMIC_SHARED (227 * 1024)  // the largest a block may ask for on sm_90

namespace emu {

// One extern "C" __global__ function: invoke() calls fn with the parameters read from `args`,
// one 8-byte slot each.
struct KernelEntry {
  const char *name;
  void *fn;
  void (*invoke)(void *fn, const unsigned char *args);
  int arity;
  const int *sizes;
};

}  // namespace emu

extern "C" const emu::KernelEntry *emu_registry(int *count);
extern "C" __thread unsigned char emu_dynamic_shared[EMU_MAX_DYNAMIC_SHARED];
