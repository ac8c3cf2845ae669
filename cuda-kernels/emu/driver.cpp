// driver.cpp — a CUDA driver (libcuda.so.1) whose device is the emulator: the real `cuda` backend,
// JCuda and every driver call it makes, runs on the CPU (RLKERNELS_CUDA_DRIVER=emulator).
//
// What it implements is what JCudaLauncher, CudaProbe and the GPU bench call; every other symbol
// JCuda's native library imports (driver_api.txt) is a weak stub in driver_stubs.cpp that returns
// CUDA_ERROR_NOT_SUPPORTED and names itself on stderr. It enforces what a device would: launch
// limits with the driver's error codes, device ranges of every copy and memset, the attribute a
// kernel needs for more than 48 KiB of dynamic shared memory, handles of the right kind; and it
// counts what a context release leaves behind (emu_driver_take_leaks).
//
// The types are declared here with the driver ABI's values (cuda.h is not needed to build it).
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <vector>
#include <mutex>
#include <set>
#include <string>

#include "emu_module.h"

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct EmuContext *CUcontext;
typedef struct EmuModule *CUmodule;
typedef struct EmuFunction *CUfunction;
typedef struct EmuStream *CUstream;
typedef struct EmuEvent *CUevent;

enum {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_INVALID_VALUE = 1,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CUDA_ERROR_NOT_INITIALIZED = 3,
  CUDA_ERROR_NO_DEVICE = 100,
  CUDA_ERROR_INVALID_DEVICE = 101,
  CUDA_ERROR_INVALID_IMAGE = 200,
  CUDA_ERROR_INVALID_CONTEXT = 201,
  CUDA_ERROR_INVALID_HANDLE = 400,
  CUDA_ERROR_NOT_FOUND = 500,
  CUDA_ERROR_NOT_READY = 600,
  CUDA_ERROR_ILLEGAL_ADDRESS = 700,
  CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
  CUDA_ERROR_LAUNCH_FAILED = 719,
  CUDA_ERROR_NOT_SUPPORTED = 801,
  CUDA_ERROR_UNKNOWN = 999,
};

// ---- the device: an H100 SXM's limits ----

namespace {

constexpr int kDriverVersion = 13000;
constexpr size_t kTotalMemory = 80ull << 30;
constexpr int kDefaultDynamicShared = 48 * 1024;
constexpr int kMaxSharedOptIn = 227 * 1024;
constexpr char kDeviceName[] = "NVIDIA H100 80GB HBM3 (emulated on the CPU by rlkernels)";

int attribute(int a, bool *known) {
  *known = true;
  switch (a) {
    case 1: return 1024;                    // MAX_THREADS_PER_BLOCK
    case 2: return 1024;                    // MAX_BLOCK_DIM_X
    case 3: return 1024;                    // MAX_BLOCK_DIM_Y
    case 4: return 64;                      // MAX_BLOCK_DIM_Z
    case 5: return 2147483647;              // MAX_GRID_DIM_X
    case 6: return 65535;                   // MAX_GRID_DIM_Y
    case 7: return 65535;                   // MAX_GRID_DIM_Z
    case 8: return kDefaultDynamicShared;   // MAX_SHARED_MEMORY_PER_BLOCK
    case 9: return 65536;                   // TOTAL_CONSTANT_MEMORY
    case 10: return 32;                     // WARP_SIZE
    case 12: return 65536;                  // MAX_REGISTERS_PER_BLOCK
    case 13: return 1980000;                // CLOCK_RATE (kHz)
    case 16: return 132;                    // MULTIPROCESSOR_COUNT
    case 31: return 1;                      // CONCURRENT_KERNELS
    case 36: return 2619000;                // MEMORY_CLOCK_RATE (kHz)
    case 37: return 5120;                   // GLOBAL_MEMORY_BUS_WIDTH
    case 38: return 50 * 1024 * 1024;       // L2_CACHE_SIZE
    case 39: return 2048;                   // MAX_THREADS_PER_MULTIPROCESSOR
    case 41: return 1;                      // UNIFIED_ADDRESSING
    case 75: return 9;                      // COMPUTE_CAPABILITY_MAJOR
    case 76: return 0;                      // COMPUTE_CAPABILITY_MINOR
    case 81: return 228 * 1024;             // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
    case 82: return 65536;                  // MAX_REGISTERS_PER_MULTIPROCESSOR
    case 97: return kMaxSharedOptIn;        // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
    case 106: return 32;                    // MAX_BLOCKS_PER_MULTIPROCESSOR
    default: *known = false; return 0;
  }
}

// ---- handles: each kind a set of live objects, so a wrong or stale handle is an error ----

struct EmuObject {
  uint32_t magic;
};
constexpr uint32_t kContextMagic = 0x43545831, kModuleMagic = 0x4d4f4431, kFunctionMagic = 0x46554e31,
                   kStreamMagic = 0x53545231, kEventMagic = 0x45564e31;

std::mutex g_mutex;  // guards everything below; kernels run outside it
bool g_initialized = false;
int g_primary_refs = 0;
std::set<void *> g_modules, g_functions, g_streams, g_events;
std::atomic<long long> g_leaks{0};
std::atomic<unsigned long long> g_launches{0};

}  // namespace

struct EmuContext : EmuObject {};
struct EmuModule : EmuObject {
  std::map<std::string, EmuFunction *> functions;
};
struct EmuFunction : EmuObject {
  const emu::KernelEntry *kernel;
  int max_dynamic_shared = kDefaultDynamicShared;
  int registers = 0;      // per thread, from ptxas (0: not known)
  int static_shared = 0;  // bytes
};
// A stream is a queue the device works through as late as the API allows: its work runs when the
// host synchronises with it (the stream, an event recorded on it, the context), when a call on the
// legacy default stream waits for it (a blocking stream: flags 0), or before memory is freed. So a
// host read that lacks the synchronisation it needs sees the memory as it was, every time.
struct EmuStream : EmuObject {
  unsigned flags;  // 1: CU_STREAM_NON_BLOCKING, not ordered with the legacy default stream
  std::mutex m;
  std::deque<std::function<CUresult()>> work;
  CUresult sticky = 0;  // the first failure of its work, returned by the next synchronisation
};
struct EmuEvent : EmuObject {
  double ms = -1;              // host time when the device reached the record, ms; -1 before
  EmuStream *stream = nullptr; // where the pending record waits, or null
  bool pending = false;
};

namespace {

EmuContext g_primary{{kContextMagic}};

// Each kernel's registers and static shared memory on sm_90 (rlkernels.resources, from ptxas at
// build time; emu_driver_set_resources). Once set, a kernel missing from it is not in the fatbin.
struct Resources {
  int registers, static_shared;
};
std::map<std::string, Resources> g_resources;
thread_local CUcontext t_current = nullptr;

CUresult not_initialized() { return g_initialized ? CUDA_SUCCESS : CUDA_ERROR_NOT_INITIALIZED; }

double now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

bool live(const std::set<void *> &kind, const void *h) { return h && kind.count(const_cast<void *>(h)) != 0; }

// The base of the seeds of the launches' schedules: RLK_EMU_SEED, else the clock.
unsigned long long next_seed() {
  static const unsigned long long base = [] {
    const char *s = getenv("RLK_EMU_SEED");
    return s ? strtoull(s, nullptr, 0) : (unsigned long long)now_ms() * 0x9E3779B97F4A7C15ull;
  }();
  unsigned long long z = base + 0x9E3779B97F4A7C15ull * ++g_launches;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

extern "C" {
void *emu_malloc(size_t bytes);
int emu_free(void *p);
int emu_allocation_of(uintptr_t address, uintptr_t *start, size_t *bytes);
int emu_launch(const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
               unsigned shared_bytes, const unsigned char *args, const int *arg_sizes, int nargs,
               unsigned long long seed, char *error, size_t error_len);
size_t emu_allocated_bytes(void);
size_t emu_live_allocations(void);
size_t emu_free_all(void);
}

namespace {

// [p, p + n) inside one live allocation.
bool device_range(CUdeviceptr p, size_t n) {
  uintptr_t start;
  size_t bytes;
  if (n == 0) return true;  // a copy of nothing touches nothing
  if (!emu_allocation_of((uintptr_t)p, &start, &bytes)) return false;
  return n <= bytes - (size_t)(p - start);
}

}  // namespace

#define API extern "C" __attribute__((visibility("default"))) CUresult

namespace {
CUresult drain_streams(bool blocking_only);  // below, with the streams
}  // namespace

// ---- initialisation, version, device ----

API cuInit(unsigned flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_initialized = true;
  return CUDA_SUCCESS;
}

API cuDriverGetVersion(int *version) {
  if (!version) return CUDA_ERROR_INVALID_VALUE;
  *version = kDriverVersion;
  return CUDA_SUCCESS;
}

API cuDeviceGetCount(int *count) {
  if (!count) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = not_initialized()) return r;
  *count = 1;
  return CUDA_SUCCESS;
}

API cuDeviceGet(CUdevice *device, int ordinal) {
  if (!device) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = not_initialized()) return r;
  if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
  *device = 0;
  return CUDA_SUCCESS;
}

API cuDeviceGetName(char *name, int len, CUdevice device) {
  if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = not_initialized()) return r;
  if (device != 0) return CUDA_ERROR_INVALID_DEVICE;
  snprintf(name, (size_t)len, "%s", kDeviceName);
  return CUDA_SUCCESS;
}

API cuDeviceGetAttribute(int *value, int attrib, CUdevice device) {
  if (!value) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = not_initialized()) return r;
  if (device != 0) return CUDA_ERROR_INVALID_DEVICE;
  bool known;
  *value = attribute(attrib, &known);
  if (!known) {
    fprintf(stderr, "rlkernels emulated driver: cuDeviceGetAttribute(%d) is not supported\n", attrib);
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  return CUDA_SUCCESS;
}

API cuDeviceTotalMem_v2(size_t *bytes, CUdevice device) {
  if (!bytes) return CUDA_ERROR_INVALID_VALUE;
  if (device != 0) return CUDA_ERROR_INVALID_DEVICE;
  *bytes = kTotalMemory;
  return CUDA_SUCCESS;
}

// ---- the primary context (the only one) ----

API cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice device) {
  if (!ctx) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = not_initialized()) return r;
  if (device != 0) return CUDA_ERROR_INVALID_DEVICE;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_primary_refs++;
  *ctx = &g_primary;
  return CUDA_SUCCESS;
}

// The last release destroys the context, and a real driver frees what it holds then: so does
// this one, after counting it as leaked (emu_driver_take_leaks) and saying what it was.
API cuDevicePrimaryCtxRelease_v2(CUdevice device) {
  if (device != 0) return CUDA_ERROR_INVALID_DEVICE;
  if (g_primary_refs == 1) drain_streams(false);  // the last release: the work completes first
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_primary_refs == 0) return CUDA_ERROR_INVALID_CONTEXT;
  if (--g_primary_refs == 0) {
    const size_t bytes = emu_allocated_bytes();
    const size_t allocations = emu_free_all();
    const size_t left = allocations + g_modules.size() + g_streams.size() + g_events.size();
    if (left > 0) {
      fprintf(stderr,
              "rlkernels emulated driver: the primary context was released with %zu allocations (%zu bytes), %zu "
              "modules, %zu streams and %zu events still live: leaked, and freed with the context\n",
              allocations, bytes, g_modules.size(), g_streams.size(), g_events.size());
      g_leaks += (long long)left;
    }
    for (void *m : g_modules) {
      for (auto &f : static_cast<EmuModule *>(m)->functions) delete f.second;
      delete static_cast<EmuModule *>(m);
    }
    for (void *s : g_streams) delete static_cast<EmuStream *>(s);
    for (void *e : g_events) delete static_cast<EmuEvent *>(e);
    g_modules.clear();
    g_functions.clear();
    g_streams.clear();
    g_events.clear();
  }
  return CUDA_SUCCESS;
}

API cuCtxSetCurrent(CUcontext ctx) {
  if (ctx && ctx != &g_primary) return CUDA_ERROR_INVALID_CONTEXT;
  t_current = ctx;
  return CUDA_SUCCESS;
}

API cuCtxGetCurrent(CUcontext *ctx) {
  if (!ctx) return CUDA_ERROR_INVALID_VALUE;
  *ctx = t_current;
  return CUDA_SUCCESS;
}

API cuCtxGetDevice(CUdevice *device) {
  if (!device) return CUDA_ERROR_INVALID_VALUE;
  if (!t_current) return CUDA_ERROR_INVALID_CONTEXT;
  *device = 0;
  return CUDA_SUCCESS;
}

namespace {
// Every call that works in a context needs a current one, as on a device.
CUresult need_context() {
  if (!g_initialized) return CUDA_ERROR_NOT_INITIALIZED;
  return t_current == &g_primary && g_primary_refs > 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}
}  // namespace

namespace {
// Runs what the stream holds, in order; the first failure sticks to the stream.
CUresult drain(EmuStream *s) {
  std::lock_guard<std::mutex> lock(s->m);
  while (!s->work.empty()) {
    std::function<CUresult()> task = std::move(s->work.front());
    s->work.pop_front();
    CUresult r = task();
    if (r != CUDA_SUCCESS && s->sticky == CUDA_SUCCESS) s->sticky = r;
  }
  return s->sticky;
}

// The streams a call on the legacy default stream waits for (blocking ones), or all of them.
CUresult drain_streams(bool blocking_only) {
  std::vector<EmuStream *> streams;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (void *p : g_streams) {
      EmuStream *s = static_cast<EmuStream *>(p);
      if (!blocking_only || s->flags == 0) streams.push_back(s);
    }
  }
  CUresult first = CUDA_SUCCESS;
  for (EmuStream *s : streams) {
    CUresult r = drain(s);
    if (first == CUDA_SUCCESS) first = r;
  }
  return first;
}

// Work for a stream: queued on a created stream; on the legacy default stream (null), run now,
// after the blocking streams' work, as the legacy stream orders it.
CUresult submit(CUstream s, std::function<CUresult()> task) {
  if (!s) {
    drain_streams(true);
    return task();
  }
  std::lock_guard<std::mutex> lock(s->m);
  s->work.push_back(std::move(task));
  return CUDA_SUCCESS;
}
}  // namespace

API cuCtxSynchronize(void) {
  if (CUresult r = need_context()) return r;
  return drain_streams(false);
}

// ---- modules and functions ----

// The image must be a fatbin (or PTX text); its kernels are this library's emulated module,
// compiled from the same sources by the same build.
API cuModuleLoadData(CUmodule *module, const void *image) {
  if (!module || !image) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = need_context()) return r;
  uint32_t magic;
  memcpy(&magic, image, 4);
  const bool fatbin = magic == 0xBA55ED50u;
  const bool ptx = strncmp((const char *)image, "//", 2) == 0 || strncmp((const char *)image, ".version", 8) == 0;
  if (!fatbin && !ptx) return CUDA_ERROR_INVALID_IMAGE;
  EmuModule *m = new EmuModule();
  m->magic = kModuleMagic;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_modules.insert(m);
  *module = m;
  return CUDA_SUCCESS;
}

API cuModuleUnload(CUmodule module) {
  drain_streams(false);  // no queued launch may outlive its module
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!live(g_modules, module)) return CUDA_ERROR_INVALID_HANDLE;
  for (auto &f : module->functions) {
    g_functions.erase(f.second);
    delete f.second;
  }
  g_modules.erase(module);
  delete module;
  return CUDA_SUCCESS;
}

API cuModuleGetFunction(CUfunction *fn, CUmodule module, const char *name) {
  if (!fn || !name) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = need_context()) return r;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!live(g_modules, module)) return CUDA_ERROR_INVALID_HANDLE;
  auto it = module->functions.find(name);
  if (it != module->functions.end()) {
    *fn = it->second;
    return CUDA_SUCCESS;
  }
  int count = 0;
  const emu::KernelEntry *all = emu_registry(&count);
  for (int i = 0; i < count; i++) {
    if (strcmp(all[i].name, name) == 0) {
      EmuFunction *f = new EmuFunction();
      f->magic = kFunctionMagic;
      f->kernel = &all[i];
      if (!g_resources.empty()) {
        auto r = g_resources.find(name);
        if (r == g_resources.end()) {  // the emulated module has it, the fatbin's ptxas report not
          delete f;
          return CUDA_ERROR_NOT_FOUND;
        }
        f->registers = r->second.registers;
        f->static_shared = r->second.static_shared;
      }
      module->functions[name] = f;
      g_functions.insert(f);
      *fn = f;
      return CUDA_SUCCESS;
    }
  }
  return CUDA_ERROR_NOT_FOUND;
}

API cuFuncSetAttribute(CUfunction fn, int attrib, int value) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!live(g_functions, fn)) return CUDA_ERROR_INVALID_HANDLE;
  if (attrib != 8) return CUDA_ERROR_NOT_SUPPORTED;  // MAX_DYNAMIC_SHARED_SIZE_BYTES only
  if (value < 0 || value > kMaxSharedOptIn - fn->static_shared) return CUDA_ERROR_INVALID_VALUE;
  fn->max_dynamic_shared = value;
  return CUDA_SUCCESS;
}

API cuFuncGetAttribute(int *value, int attrib, CUfunction fn) {
  if (!value) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!live(g_functions, fn)) return CUDA_ERROR_INVALID_HANDLE;
  switch (attrib) {
    case 0: *value = 1024; return CUDA_SUCCESS;                      // MAX_THREADS_PER_BLOCK
    case 1: *value = fn->static_shared; return CUDA_SUCCESS;         // SHARED_SIZE_BYTES
    case 4: *value = fn->registers; return CUDA_SUCCESS;             // NUM_REGS
    case 8: *value = fn->max_dynamic_shared; return CUDA_SUCCESS;    // MAX_DYNAMIC_SHARED_SIZE_BYTES
    default: return CUDA_ERROR_NOT_SUPPORTED;
  }
}

// ---- launches ----

API cuLaunchKernel(CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned shared_bytes, CUstream stream, void **params, void **extra) {
  if (CUresult r = need_context()) return r;
  const emu::KernelEntry *k;
  int max_dynamic, registers, static_shared;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!live(g_functions, fn)) return CUDA_ERROR_INVALID_HANDLE;
    if (stream && !live(g_streams, stream)) return CUDA_ERROR_INVALID_HANDLE;
    k = fn->kernel;
    max_dynamic = fn->max_dynamic_shared;
    registers = fn->registers;
    static_shared = fn->static_shared;
  }
  if (extra) return CUDA_ERROR_NOT_SUPPORTED;  // parameters come as kernelParams
  if (k->arity > 0 && !params) return CUDA_ERROR_INVALID_VALUE;
  // the device's limits, with its error codes
  if (bx == 0 || by == 0 || bz == 0 || bx > 1024 || by > 1024 || bz > 64 ||
      (unsigned long long)bx * by * bz > 1024 || gx == 0 || gy == 0 || gz == 0 || gx > 2147483647u ||
      gy > 65535 || gz > 65535)
    return CUDA_ERROR_INVALID_VALUE;
  if ((int)shared_bytes > max_dynamic || (long long)shared_bytes + static_shared > kMaxSharedOptIn)
    return CUDA_ERROR_INVALID_VALUE;
  // registers are allocated per warp in units of 256; a block's warps must fit in the SM's 64 Ki
  const unsigned long long warps = ((unsigned long long)bx * by * bz + 31) / 32;
  const unsigned long long per_warp = ((unsigned long long)registers * 32 + 255) / 256 * 256;
  if (per_warp * warps > 65536) {
    fprintf(stderr, "rlkernels emulated driver: %s uses %d registers a thread: %llu threads a block need %llu, the SM has 65536\n",
            k->name, registers, (unsigned long long)bx * by * bz, per_warp * warps);
    return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
  }
  // the parameters are read now, as the driver does; the kernel runs when the stream's work does
  std::vector<unsigned char> slots(8 * (size_t)k->arity, 0);
  std::vector<int> sizes(k->sizes, k->sizes + k->arity);
  for (int i = 0; i < k->arity; i++) memcpy(slots.data() + 8 * i, params[i], (size_t)k->sizes[i]);
  const unsigned long long seed = next_seed();
  return submit(stream, [=]() -> CUresult {
    char error[512];
    if (emu_launch(k->name, gx, gy, gz, bx, by, bz, shared_bytes, slots.data(), sizes.data(), k->arity, seed, error,
                   sizeof error) != 0) {
      fprintf(stderr, "rlkernels emulated driver: %s\n", error);
      return CUDA_ERROR_LAUNCH_FAILED;
    }
    return CUDA_SUCCESS;
  });
}

// ---- memory ----

API cuMemAlloc_v2(CUdeviceptr *p, size_t bytes) {
  if (!p || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = need_context()) return r;
  if (bytes > kTotalMemory - emu_allocated_bytes()) return CUDA_ERROR_OUT_OF_MEMORY;
  void *m = emu_malloc(bytes);
  if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
  *p = (CUdeviceptr)(uintptr_t)m;
  return CUDA_SUCCESS;
}

API cuMemFree_v2(CUdeviceptr p) {
  if (CUresult r = need_context()) return r;
  if (p == 0) return CUDA_SUCCESS;
  drain_streams(false);  // freeing synchronises: no queued work may touch it afterwards
  switch (emu_free((void *)(uintptr_t)p)) {
    case 0: return CUDA_SUCCESS;
    case 2: return CUDA_ERROR_ILLEGAL_ADDRESS;  // freed, but a kernel wrote past its end (said on stderr)
    default: return CUDA_ERROR_INVALID_VALUE;   // not a live allocation: a double free, or a foreign address
  }
}

API cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
  if (!free_bytes || !total) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = need_context()) return r;
  *total = kTotalMemory;
  *free_bytes = kTotalMemory - emu_allocated_bytes();
  return CUDA_SUCCESS;
}

API cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr p) {
  if (CUresult r = need_context()) return r;
  uintptr_t start;
  size_t bytes;
  if (!emu_allocation_of((uintptr_t)p, &start, &bytes)) return CUDA_ERROR_NOT_FOUND;
  if (base) *base = start;
  if (size) *size = bytes;
  return CUDA_SUCCESS;
}

API cuPointerGetAttribute(void *data, int attrib, CUdeviceptr p) {
  if (!data) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = need_context()) return r;
  uintptr_t start;
  size_t bytes;
  if (!emu_allocation_of((uintptr_t)p, &start, &bytes)) return CUDA_ERROR_INVALID_VALUE;
  switch (attrib) {
    case 1: *(CUcontext *)data = &g_primary; return CUDA_SUCCESS;          // CONTEXT
    case 2: *(unsigned *)data = 2; return CUDA_SUCCESS;                     // MEMORY_TYPE: device
    case 3: *(CUdeviceptr *)data = p; return CUDA_SUCCESS;                  // DEVICE_POINTER
    case 11: *(CUdeviceptr *)data = start; return CUDA_SUCCESS;             // RANGE_START_ADDR
    case 12: *(size_t *)data = bytes; return CUDA_SUCCESS;                  // RANGE_SIZE
    default: return CUDA_ERROR_NOT_SUPPORTED;
  }
}

namespace {
CUresult copy(void *dst, const void *src, size_t n) {
  if (n > 0) memmove(dst, src, n);
  return CUDA_SUCCESS;
}
CUresult check_stream(CUstream s) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return !s || live(g_streams, s) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}
}  // namespace

// A host function on the stream, after what was queued before it (cuBLAS's stand-in runs its
// products so). It cannot fail the stream: cuda's host functions report nothing.
API cuLaunchHostFunc(CUstream stream, void (*fn)(void *), void *data) {
  if (!fn) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = need_context()) return r;
  if (CUresult r = check_stream(stream)) return r;
  return submit(stream, [=]() -> CUresult {
    fn(data);
    return CUDA_SUCCESS;
  });
}

// The synchronous copies and memsets are on the legacy default stream: they wait for the blocking
// streams' work first. Device ranges are checked when the call is made.
API cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
  if (CUresult r = need_context()) return r;
  if (!src || !device_range(dst, n)) return CUDA_ERROR_INVALID_VALUE;
  drain_streams(true);
  return copy((void *)(uintptr_t)dst, src, n);
}

API cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
  if (CUresult r = need_context()) return r;
  if (!dst || !device_range(src, n)) return CUDA_ERROR_INVALID_VALUE;
  drain_streams(true);
  return copy(dst, (const void *)(uintptr_t)src, n);
}

API cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  if (CUresult r = need_context()) return r;
  if (!device_range(dst, n) || !device_range(src, n)) return CUDA_ERROR_INVALID_VALUE;
  drain_streams(true);
  return copy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
}

// From pageable host memory the source is staged when the call is made (the caller may reuse it
// at once); the device is written in the stream's order.
API cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s) {
  if (CUresult r = need_context()) return r;
  if (CUresult r = check_stream(s)) return r;
  if (!src || !device_range(dst, n)) return CUDA_ERROR_INVALID_VALUE;
  std::vector<unsigned char> staged((const unsigned char *)src, (const unsigned char *)src + n);
  return submit(s, [=]() { return copy((void *)(uintptr_t)dst, staged.data(), n); });
}

// Into pageable host memory the call returns once the copy is done: after the stream's work.
API cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s) {
  if (CUresult r = need_context()) return r;
  if (CUresult r = check_stream(s)) return r;
  if (!dst || !device_range(src, n)) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = s ? drain(s) : drain_streams(true)) return r;
  return copy(dst, (const void *)(uintptr_t)src, n);
}

API cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
  if (CUresult r = need_context()) return r;
  if (CUresult r = check_stream(s)) return r;
  if (!device_range(dst, n) || !device_range(src, n)) return CUDA_ERROR_INVALID_VALUE;
  return submit(s, [=]() { return copy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n); });
}

namespace {
CUresult memset_n(CUdeviceptr dst, const void *value, size_t width, size_t n, CUstream s) {
  if (CUresult r = need_context()) return r;
  if (CUresult r = check_stream(s)) return r;
  if (n > SIZE_MAX / width || !device_range(dst, n * width) || dst % width != 0) return CUDA_ERROR_INVALID_VALUE;
  unsigned long long v = 0;
  memcpy(&v, value, width);
  return submit(s, [=]() -> CUresult {
    unsigned char *p = (unsigned char *)(uintptr_t)dst;
    for (size_t i = 0; i < n; i++) memcpy(p + i * width, &v, width);
    return CUDA_SUCCESS;
  });
}
}  // namespace

API cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n) { return memset_n(dst, &v, 1, n, nullptr); }
API cuMemsetD16_v2(CUdeviceptr dst, unsigned short v, size_t n) { return memset_n(dst, &v, 2, n, nullptr); }
API cuMemsetD32_v2(CUdeviceptr dst, unsigned v, size_t n) { return memset_n(dst, &v, 4, n, nullptr); }
API cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, CUstream s) { return memset_n(dst, &v, 1, n, s); }
API cuMemsetD16Async(CUdeviceptr dst, unsigned short v, size_t n, CUstream s) { return memset_n(dst, &v, 2, n, s); }
API cuMemsetD32Async(CUdeviceptr dst, unsigned v, size_t n, CUstream s) { return memset_n(dst, &v, 4, n, s); }

// ---- streams and events ----

API cuStreamCreate(CUstream *stream, unsigned flags) {
  if (!stream || flags > 1) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = need_context()) return r;
  EmuStream *s = new EmuStream();
  s->magic = kStreamMagic;
  s->flags = flags;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_streams.insert(s);
  *stream = s;
  return CUDA_SUCCESS;
}

API cuStreamDestroy_v2(CUstream stream) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!live(g_streams, stream)) return CUDA_ERROR_INVALID_HANDLE;
  }
  drain(stream);  // its work completes, as on a device, before the stream goes
  std::lock_guard<std::mutex> lock(g_mutex);
  g_streams.erase(stream);
  delete stream;
  return CUDA_SUCCESS;
}

API cuStreamSynchronize(CUstream stream) {
  if (CUresult r = need_context()) return r;
  if (CUresult r = check_stream(stream)) return r;
  return stream ? drain(stream) : drain_streams(true);
}

// The device makes progress when asked: a query completes the stream's work, then answers.
API cuStreamQuery(CUstream stream) { return cuStreamSynchronize(stream); }

API cuEventCreate(CUevent *event, unsigned flags) {
  if (!event) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = need_context()) return r;
  EmuEvent *e = new EmuEvent();
  e->magic = kEventMagic;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_events.insert(e);
  *event = e;
  return CUDA_SUCCESS;
}

API cuEventDestroy_v2(CUevent event) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!live(g_events, event)) return CUDA_ERROR_INVALID_HANDLE;
  g_events.erase(event);
  delete event;
  return CUDA_SUCCESS;
}

// The record is work of the stream: the event's time is when the device gets there.
API cuEventRecord(CUevent event, CUstream stream) {
  if (CUresult r = need_context()) return r;
  if (CUresult r = check_stream(stream)) return r;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!live(g_events, event)) return CUDA_ERROR_INVALID_HANDLE;
    event->pending = true;
    event->stream = stream;
  }
  return submit(stream, [event]() -> CUresult {
    event->ms = now_ms();
    event->pending = false;
    return CUDA_SUCCESS;
  });
}

API cuEventSynchronize(CUevent event) {
  EmuStream *s;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!live(g_events, event)) return CUDA_ERROR_INVALID_HANDLE;
    s = event->pending ? event->stream : nullptr;
  }
  return s ? drain(s) : CUDA_SUCCESS;
}

API cuEventQuery(CUevent event) { return cuEventSynchronize(event); }

API cuEventElapsedTime(float *ms, CUevent start, CUevent end) {
  if (!ms) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!live(g_events, start) || !live(g_events, end)) return CUDA_ERROR_INVALID_HANDLE;
  if (start->pending || end->pending) return CUDA_ERROR_NOT_READY;
  if (start->ms < 0 || end->ms < 0) return CUDA_ERROR_INVALID_VALUE;  // never recorded
  *ms = (float)(end->ms - start->ms);
  return CUDA_SUCCESS;
}

// ---- errors ----

namespace {
const char *error_name(CUresult r) {
  switch (r) {
    case CUDA_SUCCESS: return "CUDA_SUCCESS";
    case CUDA_ERROR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case CUDA_ERROR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case CUDA_ERROR_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case CUDA_ERROR_NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
    case CUDA_ERROR_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case CUDA_ERROR_INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
    case CUDA_ERROR_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case CUDA_ERROR_INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
    case CUDA_ERROR_NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
    case CUDA_ERROR_NOT_READY: return "CUDA_ERROR_NOT_READY";
    case CUDA_ERROR_ILLEGAL_ADDRESS: return "CUDA_ERROR_ILLEGAL_ADDRESS";
    case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
    case CUDA_ERROR_LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
    case CUDA_ERROR_NOT_SUPPORTED: return "CUDA_ERROR_NOT_SUPPORTED";
    default: return nullptr;
  }
}
}  // namespace

API cuGetErrorName(CUresult r, const char **name) {
  if (!name) return CUDA_ERROR_INVALID_VALUE;
  *name = error_name(r);
  return *name ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

API cuGetErrorString(CUresult r, const char **text) {
  if (!text) return CUDA_ERROR_INVALID_VALUE;
  *text = error_name(r);
  return *text ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

// ---- for tests: what the last context release left behind, and the launches so far ----

extern "C" __attribute__((visibility("default"))) long long emu_driver_take_leaks(void) { return g_leaks.exchange(0); }

// The kernels' resources, "name registers static_shared_bytes" a line (rlkernels.resources, which
// CudaProbe passes on before JCuda loads a module). Returns the number of kernels read.
extern "C" __attribute__((visibility("default"))) int emu_driver_set_resources(const char *text) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_resources.clear();
  const char *p = text;
  while (p && *p) {
    char name[256];
    int regs, smem, used = 0;
    if (sscanf(p, "%255s %d %d%n", name, &regs, &smem, &used) != 3) break;
    g_resources[name] = Resources{regs, smem};
    p += used;
    while (*p == '\n' || *p == '\r' || *p == ' ') p++;
  }
  return (int)g_resources.size();
}
extern "C" __attribute__((visibility("default"))) unsigned long long emu_driver_launches(void) {
  return g_launches.load();
}
