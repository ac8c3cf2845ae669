// runtime.cpp — the CUDA-on-CPU emulator's runtime: fibers, the block scheduler, warp
// operations, and the C interface the Java side calls through FFM (EmulatedLauncher.java).
//
// Every CUDA thread is a fiber; a pool of worker threads runs one block at a time each, so
// blocks run concurrently (atomics are real) and the fibers of a block share their worker's
// thread_local storage, which is what __shared__ means here (cuda_emu.h).
//
// Scheduling, per block: at each barrier epoch the warps get fresh random priorities, and each
// warp in turn runs ahead to its next __syncthreads (or its end); inside a warp the lanes run in
// random order from one warp operation to the next. A kernel that relies on an order the
// hardware does not promise (a missing __syncthreads) therefore sees other orders, and its
// results change. Every launch has a seed; the same seed gives the same schedule.
//
// Detected and reported as launch errors: a divergent __syncthreads (threads exited or waiting
// at another call site), divergent warp operations, warp masks other than the full warp.
// Shared memory (the module's thread_local block) is poisoned with 0xFF bytes — NaN for every
// float type — at each block's start; device allocations are poisoned the same way.
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <link.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cuda_emu.h"
#include "emu_module.h"

#if defined(__x86_64__) && !defined(RLK_EMU_UCONTEXT)
#define RLK_EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#define RLK_EMU_ASM_SWITCH 0
#endif

namespace emu {
__thread const ThreadView *current;
}

// The kernel a worker thread is running, for the fault reporter (set while a launch runs).
static thread_local const char *current_kernel = nullptr;

namespace {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 1024;
constexpr size_t kStackBytes = 256 * 1024;

enum class State : uint8_t { ready, at_warp, at_barrier, done };

struct Fiber {
  void *sp = nullptr;  // saved stack pointer while switched out
#if !RLK_EMU_ASM_SWITCH
  ucontext_t context;
#endif
  char *stack = nullptr;  // kStackBytes above a PROT_NONE guard page
  emu::ThreadView view{};
  int linear = 0;
  State state = State::ready;
  const void *barrier_site = nullptr;
  // the pending warp operation
  emu::WarpOp op{};
  unsigned mask = 0;
  int param = 0, width = 0, size = 0;
  const char *op_name = "";
  uint64_t value = 0, result = 0;
};

struct Launch {
  const emu::KernelEntry *kernel = nullptr;
  const unsigned char *args = nullptr;  // one 8-byte slot per parameter
  dim3 grid, block;
  unsigned shared_bytes = 0;
  uint64_t seed = 0;
  long long blocks = 0;
  std::atomic<long long> next_block{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::string error;

  void fail(const std::string &message) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (error.empty()) error = message;
    failed = true;
  }
};

struct Worker {
  void *scheduler_sp = nullptr;
#if !RLK_EMU_ASM_SWITCH
  ucontext_t scheduler_context;
#endif
  std::vector<std::unique_ptr<Fiber>> fibers;  // reused across blocks; addresses stay put
  Fiber *running = nullptr;
  Launch *launch = nullptr;
  std::mt19937_64 rng;
  unsigned char *tls_begin = nullptr;  // this thread's copy of the module's thread_local block
  size_t tls_size = 0;
};

__thread Worker *tls_worker;  // in the module's thread_local block too: restored after poisoning

std::string block_name(const uint3 &b) {
  return "block (" + std::to_string(b.x) + ", " + std::to_string(b.y) + ", " + std::to_string(b.z) + ")";
}

// ---- context switch ----

#if RLK_EMU_ASM_SWITCH
extern "C" void rlk_emu_switch(void **save_sp, void *load_sp);
extern "C" void rlk_emu_fiber_start();
// Saves the callee-saved registers, MXCSR and the x87 control word on the current stack, stores
// the stack pointer in *save_sp, and restores the same from load_sp. A new fiber's stack is laid
// out so that the final `ret` enters rlk_emu_fiber_start with r12 = the fiber, r13 = its main.
asm(R"(
  .text
  .p2align 4
  .globl rlk_emu_switch
  .hidden rlk_emu_switch
  .type rlk_emu_switch, @function
rlk_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size rlk_emu_switch, .-rlk_emu_switch

  .p2align 4
  .globl rlk_emu_fiber_start
  .hidden rlk_emu_fiber_start
  .type rlk_emu_fiber_start, @function
rlk_emu_fiber_start:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size rlk_emu_fiber_start, .-rlk_emu_fiber_start
)");
#endif

extern "C" __attribute__((visibility("hidden"))) void rlk_emu_fiber_main(Fiber *f);

void prepare(Fiber &f) {
  if (!f.stack) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) abort();
    mprotect(m, page, PROT_NONE);  // an overflow faults instead of corrupting a neighbour
    f.stack = static_cast<char *>(m) + page;
  }
#if RLK_EMU_ASM_SWITCH
  uint64_t *sp = reinterpret_cast<uint64_t *>(f.stack + kStackBytes - 64);  // 16-byte aligned
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  sp[0] = mxcsr | ((uint64_t)fpucw << 32);
  sp[1] = 0;                                                     // r15
  sp[2] = 0;                                                     // r14
  sp[3] = reinterpret_cast<uint64_t>(&rlk_emu_fiber_main);       // r13
  sp[4] = reinterpret_cast<uint64_t>(&f);                        // r12
  sp[5] = 0;                                                     // rbx
  sp[6] = 0;                                                     // rbp
  sp[7] = reinterpret_cast<uint64_t>(&rlk_emu_fiber_start);      // return address
  f.sp = sp;
#else
  getcontext(&f.context);
  f.context.uc_stack.ss_sp = f.stack;
  f.context.uc_stack.ss_size = kStackBytes;
  f.context.uc_link = nullptr;
  const uintptr_t p = reinterpret_cast<uintptr_t>(&f);
  makecontext(&f.context, reinterpret_cast<void (*)()>(+[](unsigned hi, unsigned lo) {
                rlk_emu_fiber_main(reinterpret_cast<Fiber *>(((uintptr_t)hi << 32) | lo));
              }),
              2, (unsigned)(p >> 32), (unsigned)p);
#endif
}

void resume(Worker &w, Fiber &f) {
  w.running = &f;
  emu::current = &f.view;
#if RLK_EMU_ASM_SWITCH
  rlk_emu_switch(&w.scheduler_sp, f.sp);
#else
  swapcontext(&w.scheduler_context, &f.context);
#endif
  emu::current = nullptr;
  w.running = nullptr;
}

// Called on the fiber: back to the scheduler until it resumes this fiber.
void yield(Fiber &f) {
  Worker &w = *tls_worker;
#if RLK_EMU_ASM_SWITCH
  rlk_emu_switch(&f.sp, w.scheduler_sp);
#else
  swapcontext(&f.context, &w.scheduler_context);
#endif
}

// ---- what fibers call (through cuda_emu.h) ----

Fiber &self() { return *tls_worker->running; }

unsigned full_mask(int lanes) { return lanes == kWarp ? 0xffffffffu : (1u << lanes) - 1u; }

int lanes_of_warp(const Worker &w, const Fiber &f) {
  const dim3 b = w.launch->block;
  const int threads = (int)(b.x * b.y * b.z);
  const int first = f.linear / kWarp * kWarp;
  return std::min(kWarp, threads - first);
}

}  // namespace

extern "C" void rlk_emu_fiber_main(Fiber *f) {
  Worker &w = *tls_worker;
  w.launch->kernel->invoke(w.launch->kernel->fn, w.launch->args);
  f->state = State::done;
  yield(*f);
  abort();  // a finished fiber is never resumed
}

void emu::syncthreads(const void *site) {
  Fiber &f = self();
  f.state = State::at_barrier;
  f.barrier_site = site;
  yield(f);
}

void emu::warp_op(WarpOp op, unsigned mask, int param, int width, const void *value, void *out, int size,
                  const char *name) {
  Fiber &f = self();
  Worker &w = *tls_worker;
  const int lanes = lanes_of_warp(w, f);
  if (mask != full_mask(lanes)) {
    char buf[64];
    snprintf(buf, sizeof buf, "0x%08x", mask);
    char want[64];
    snprintf(want, sizeof want, "0x%08x", full_mask(lanes));
    w.launch->fail(std::string(name) + " with mask " + buf + " in " + block_name(f.view.block_idx) + ", thread " +
                   std::to_string(f.linear) + ": the emulator supports only the full warp mask (" + want +
                   " for this warp's " + std::to_string(lanes) + " lanes)");
  }
  if (width < 1 || width > kWarp || (width & (width - 1)) != 0) {
    w.launch->fail(std::string(name) + " with width " + std::to_string(width) + ": expected a power of two in [1, 32]");
  }
  f.state = State::at_warp;
  f.op = op;
  f.mask = mask;
  f.param = param;
  f.width = width;
  f.size = size;
  f.op_name = name;
  f.value = 0;
  memcpy(&f.value, value, (size_t)size);
  yield(f);
  memcpy(out, &f.result, (size_t)size);
}

namespace {

// ---- the scheduler ----

// Completes the warp operation every lane of [first, first + lanes) waits at.
bool exchange(Launch &L, Fiber **lane, int lanes) {
  Fiber &a = *lane[0];
  for (int l = 1; l < lanes; l++) {
    Fiber &b = *lane[l];
    if (b.op != a.op || b.width != a.width || b.size != a.size) {
      L.fail("divergent warp in " + block_name(a.view.block_idx) + ": thread " + std::to_string(a.linear) + " is at " +
             a.op_name + ", thread " + std::to_string(b.linear) + " at " + b.op_name + " (" +
             std::to_string(b.size * 8) + "-bit, width " + std::to_string(b.width) + ")");
      return false;
    }
  }
  uint32_t votes = 0;
  for (int l = 0; l < lanes; l++) votes |= (lane[l]->value != 0 ? 1u : 0u) << l;
  const uint32_t all = full_mask(lanes);
  for (int l = 0; l < lanes; l++) {
    Fiber &f = *lane[l];
    const int w = f.width, segment = l / w * w;
    int src = l;
    switch (f.op) {
      case emu::WarpOp::shfl_idx: src = segment + ((f.param % w) + w) % w; break;
      case emu::WarpOp::shfl_up: src = (l % w) < f.param ? l : l - f.param; break;
      case emu::WarpOp::shfl_down: src = (l % w) + f.param >= w ? l : l + f.param; break;
      case emu::WarpOp::shfl_xor: src = l ^ f.param; src = src >= segment + w ? l : src; break;  // later groups: own value
      case emu::WarpOp::all: f.result = votes == all; continue;
      case emu::WarpOp::any: f.result = votes != 0; continue;
      case emu::WarpOp::ballot: f.result = votes; continue;
      case emu::WarpOp::sync: f.result = 0; continue;
    }
    // a lane the warp does not have: undefined on a GPU, poison here
    f.result = src >= 0 && src < lanes ? lane[src]->value : ~0ull;
  }
  for (int l = 0; l < lanes; l++) lane[l]->state = State::ready;
  return true;
}

// Runs warp `warp` until each of its lanes waits at a block barrier or has finished.
bool run_warp(Worker &w, Launch &L, int warp, int threads) {
  const int first = warp * kWarp, lanes = std::min(kWarp, threads - first);
  Fiber *lane[kWarp];
  for (int l = 0; l < lanes; l++) lane[l] = w.fibers[first + l].get();
  int order[kWarp];
  for (;;) {
    int ready = 0;
    for (int l = 0; l < lanes; l++)
      if (lane[l]->state == State::ready) order[ready++] = l;
    std::shuffle(order, order + ready, w.rng);
    for (int i = 0; i < ready; i++) {
      resume(w, *lane[order[i]]);
      if (L.failed) return false;
    }
    int at_warp = 0;
    for (int l = 0; l < lanes; l++) at_warp += lane[l]->state == State::at_warp;
    if (at_warp == 0) return true;
    if (at_warp < lanes) {
      const Fiber *in = nullptr, *out = nullptr;
      for (int l = 0; l < lanes; l++) (lane[l]->state == State::at_warp ? in : out) = lane[l];
      L.fail(std::string("divergent warp in ") + block_name(in->view.block_idx) + ": thread " +
             std::to_string(in->linear) + " waits at " + in->op_name + " with the full-warp mask, but thread " +
             std::to_string(out->linear) + (out->state == State::done ? " has exited" : " waits at __syncthreads"));
      return false;
    }
    if (!exchange(L, lane, lanes)) return false;
  }
}

// Poisons the block's shared memory: this thread's copy of the module's thread_local block,
// except the dynamic shared memory past what this launch asked for.
void poison_shared(Worker &w, const Launch &L) {
  unsigned char *dyn = emu_dynamic_shared;
  unsigned char *begin = w.tls_begin, *end = w.tls_begin + w.tls_size;
  if (dyn >= begin && dyn + EMU_MAX_DYNAMIC_SHARED <= end) {
    memset(begin, 0xFF, (size_t)(dyn - begin) + L.shared_bytes);
    memset(dyn + EMU_MAX_DYNAMIC_SHARED, 0xFF, (size_t)(end - (dyn + EMU_MAX_DYNAMIC_SHARED)));
  } else {
    memset(begin, 0xFF, w.tls_size);
  }
  tls_worker = &w;  // the runtime's own thread_locals live in the same block
  emu::current = nullptr;
  current_kernel = L.kernel->name;
}

bool run_block(Worker &w, Launch &L, long long linear) {
  const dim3 g = L.grid, b = L.block;
  const uint3 block_idx{(unsigned)(linear % g.x), (unsigned)(linear / g.x % g.y), (unsigned)(linear / g.x / g.y)};
  const int threads = (int)(b.x * b.y * b.z), warps = (threads + kWarp - 1) / kWarp;
  poison_shared(w, L);
  w.rng.seed(L.seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(linear + 1)));  // the same schedule whatever the worker
  while ((int)w.fibers.size() < threads) w.fibers.push_back(std::make_unique<Fiber>());
  for (int i = 0; i < threads; i++) {
    Fiber &f = *w.fibers[i];
    f.linear = i;
    f.state = State::ready;
    f.view.thread_idx = uint3{(unsigned)(i % b.x), (unsigned)(i / b.x % b.y), (unsigned)(i / b.x / b.y)};
    f.view.block_idx = block_idx;
    f.view.block_dim = b;
    f.view.grid_dim = g;
    prepare(f);
  }
  std::vector<int> order(warps);
  for (long long epoch = 0;; epoch++) {
    for (int i = 0; i < warps; i++) order[i] = i;
    std::shuffle(order.begin(), order.end(), w.rng);  // fresh priorities every barrier epoch
    for (int warp : order)
      if (!run_warp(w, L, warp, threads)) return false;
    const Fiber *waiting = nullptr, *exited = nullptr, *elsewhere = nullptr;
    for (int i = 0; i < threads; i++) {
      const Fiber &f = *w.fibers[i];
      if (f.state == State::done) {
        exited = exited ? exited : &f;
      } else if (!waiting) {
        waiting = &f;
      } else if (f.barrier_site != waiting->barrier_site) {
        elsewhere = &f;
      }
    }
    if (!waiting) return true;  // every thread finished
    if (exited || elsewhere) {
      L.fail("divergent __syncthreads in " + block_name(block_idx) + " (barrier " + std::to_string(epoch + 1) +
             "): thread " + std::to_string(waiting->linear) + " waits at a barrier that thread " +
             std::to_string((exited ? exited : elsewhere)->linear) +
             (exited ? " exited without reaching" : " does not reach (it waits at another __syncthreads)"));
      return false;
    }
    for (int i = 0; i < threads; i++) w.fibers[i]->state = State::ready;
  }
}

// Finds this thread's copy of the module's thread_local block (dl_iterate_phdr knows it once the
// thread has touched one of the module's thread_locals).
void locate_tls(Worker &w) {
  tls_worker = &w;
  struct Query {
    uintptr_t probe;
    unsigned char *data;
    size_t size;
  } q{reinterpret_cast<uintptr_t>(&locate_tls), nullptr, 0};
  dl_iterate_phdr(
      [](dl_phdr_info *info, size_t, void *arg) -> int {
        Query &q = *static_cast<Query *>(arg);
        bool mine = false;
        size_t tls = 0;
        for (int i = 0; i < info->dlpi_phnum; i++) {
          const ElfW(Phdr) &p = info->dlpi_phdr[i];
          const uintptr_t start = info->dlpi_addr + p.p_vaddr;
          if (p.p_type == PT_LOAD && q.probe >= start && q.probe < start + p.p_memsz) mine = true;
          if (p.p_type == PT_TLS) tls = p.p_memsz;
        }
        if (!mine) return 0;
        q.data = static_cast<unsigned char *>(info->dlpi_tls_data);
        q.size = tls;
        return 1;
      },
      &q);
  if (!q.data || q.size == 0) {
    fprintf(stderr, "cuda emulator: cannot find this module's thread_local block\n");
    abort();
  }
  w.tls_begin = q.data;
  w.tls_size = q.size;
}

// ---- the worker pool: one block at a time per worker ----

struct Pool {
  std::mutex launch_mutex;  // one launch at a time
  std::mutex m;
  std::condition_variable work, done;
  Launch *launch = nullptr;
  uint64_t generation = 0;
  int busy = 0;
  int size = 0;

  explicit Pool(int n) : size(n) {
    for (int i = 0; i < n; i++) std::thread([this] { loop(); }).detach();
  }

  void loop() {
    Worker w;
    locate_tls(w);
    uint64_t seen = 0;
    for (;;) {
      Launch *L;
      {
        std::unique_lock<std::mutex> lock(m);
        work.wait(lock, [&] { return generation != seen; });
        seen = generation;
        L = launch;
      }
      w.launch = L;
      current_kernel = L->kernel->name;
      for (;;) {
        const long long b = L->next_block++;
        if (b >= L->blocks || L->failed || !run_block(w, *L, b)) break;
      }
      w.launch = nullptr;
      current_kernel = nullptr;
      std::lock_guard<std::mutex> lock(m);
      if (--busy == 0) done.notify_all();
    }
  }

  void run(Launch &L) {
    std::lock_guard<std::mutex> one(launch_mutex);
    std::unique_lock<std::mutex> lock(m);
    launch = &L;
    busy = size;
    generation++;
    work.notify_all();
    done.wait(lock, [&] { return busy == 0; });
    launch = nullptr;
  }
};

Pool &pool() {
  static Pool *p = [] {
    int n = (int)std::thread::hardware_concurrency();
    if (const char *env = getenv("RLK_EMU_WORKERS")) n = atoi(env);
    return new Pool(std::max(1, n));  // never destroyed: its threads outlive main
  }();
  return *p;
}

void write_error(char *error, size_t len, const std::string &message) {
  if (error && len > 0) snprintf(error, len, "%s", message.c_str());
}

}  // namespace

// ---- the C interface (EmulatedLauncher.java) ----

extern "C" {

__attribute__((visibility("default"))) int emu_kernel_count(void) {
  int n = 0;
  emu_registry(&n);
  return n;
}

__attribute__((visibility("default"))) const char *emu_kernel_name(int i) {
  int n = 0;
  const emu::KernelEntry *k = emu_registry(&n);
  return i >= 0 && i < n ? k[i].name : nullptr;
}

__attribute__((visibility("default"))) int emu_workers(void) { return pool().size; }

// Device memory is host memory, poisoned (0xFF: NaN) like fresh GPU memory is garbage. Each
// allocation is its own mapping between guard pages, placed so that its 256-byte-rounded end
// touches the upper guard page: reading or writing past the rounding faults, and the fault is
// reported with the kernel and the allocation (fault_reporter below) before the process stops.
// Bytes between the size asked for and the rounding keep the poison; a kernel that wrote there is
// reported when the allocation is freed. Freed memory is given back to the OS and its pages stay
// mapped PROT_NONE in a quarantine (the last kQuarantine frees), so a use after free faults too
// and an address is not handed out again soon. Live allocations are kept in a table, as a driver
// does: a foreign address is checked against it (emu_allocation_of, what cuPointerGetAttribute
// answers on a GPU) and freeing an address that is not an allocation is an error, not a crash.
struct Region {
  uintptr_t map;      // the mapping, guard pages included
  size_t map_bytes;
  uintptr_t start;    // what the caller got
  size_t bytes;       // what it asked for
  size_t rounded;     // bytes..rounded: poison that must stay
  bool freed;
  size_t slot;        // its entry in `reported`
};
static std::mutex allocations_mutex;
static std::map<uintptr_t, Region> allocations;  // start -> region, live
static std::deque<Region> quarantine;             // freed, oldest first
constexpr size_t kQuarantine = 4096;
static const size_t kPage = (size_t)sysconf(_SC_PAGESIZE);

// The fault reporter reads the regions without a lock (it runs in a signal handler): each region
// live or quarantined has an entry of this fixed array, written once when it is mapped, marked
// freed when it is freed, and cleared when it is unmapped (the entry is then reused).
constexpr size_t kReported = 1 << 16;
static Region reported[kReported];
static std::atomic<size_t> reported_count{0};  // entries ever used: the reporter scans these
static std::vector<size_t> free_slots;         // entries cleared, for reuse (under allocations_mutex)

// An entry for a new region (under allocations_mutex); kReported when the table is full, and
// then that region's faults are reported by the JVM alone.
static size_t take_slot() {
  if (!free_slots.empty()) {
    const size_t s = free_slots.back();
    free_slots.pop_back();
    return s;
  }
  const size_t n = reported_count.load(std::memory_order_relaxed);
  if (n == kReported) return kReported;
  reported_count.store(n + 1, std::memory_order_release);
  return n;
}

static struct sigaction previous_segv, previous_bus;

static void say(const char *text) {
  ssize_t ignored = write(2, text, strlen(text));
  (void)ignored;
}

static void fault_reporter(int sig, siginfo_t *info, void *context) {
  const uintptr_t a = (uintptr_t)info->si_addr;
  const size_t n = reported_count.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; i++) {
    const Region &r = reported[i];
    if (a < r.map || a >= r.map + r.map_bytes) continue;
    char line[512];
    const char *kernel = current_kernel ? current_kernel : "(no kernel: host code)";
    if (r.freed) {
      snprintf(line, sizeof line,
               "\nCUDA emulator: %s touched 0x%lx, inside allocation 0x%lx (%zu bytes), which was freed: use after "
               "free\n",
               kernel, (unsigned long)a, (unsigned long)r.start, r.bytes);
    } else {
      snprintf(line, sizeof line,
               "\nCUDA emulator: %s touched 0x%lx, byte %lld of allocation 0x%lx (%zu bytes): out of bounds\n", kernel,
               (unsigned long)a, (long long)(a - r.start), (unsigned long)r.start, r.bytes);
    }
    say(line);
    break;  // and fall through to the previous handler: the process stops with this line said
  }
  const struct sigaction &prev = sig == SIGBUS ? previous_bus : previous_segv;
  if (prev.sa_flags & SA_SIGINFO) {
    prev.sa_sigaction(sig, info, context);
  } else if (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN) {
    signal(sig, SIG_DFL);  // returning re-runs the faulting access, which now ends the process
  } else {
    prev.sa_handler(sig);
  }
}

static void install_fault_reporter() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fault_reporter;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
    sigaction(SIGBUS, &sa, &previous_bus);
  });
}

__attribute__((visibility("default"))) void *emu_malloc(size_t bytes) {
  install_fault_reporter();
  const size_t asked = std::max<size_t>(bytes, 1);
  const size_t rounded = (asked + 255) / 256 * 256;
  if (rounded < asked) return nullptr;  // wrapped around
  const size_t span = (rounded + kPage - 1) / kPage * kPage;
  if (span < rounded || span > SIZE_MAX - 2 * kPage) return nullptr;
  void *m = mmap(nullptr, span + 2 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  const uintptr_t map = (uintptr_t)m;
  if (mprotect((void *)(map + kPage), span, PROT_READ | PROT_WRITE) != 0) {
    munmap(m, span + 2 * kPage);
    return nullptr;
  }
  const uintptr_t start = map + kPage + (span - rounded);  // 256-aligned: span and rounded are multiples of 256
  memset((void *)start, 0xFF, rounded);
  std::lock_guard<std::mutex> lock(allocations_mutex);
  const size_t slot = take_slot();
  const Region r{map, span + 2 * kPage, start, bytes, rounded, false, slot};
  if (slot < kReported) reported[slot] = r;
  allocations[start] = r;
  return (void *)start;
}

// 0; 1 when p is not a live allocation (nothing is freed then); 2 when it was freed but a kernel
// had written past its end, inside the rounding (said on stderr).
__attribute__((visibility("default"))) int emu_free(void *p) {
  Region r;
  {
    std::lock_guard<std::mutex> lock(allocations_mutex);
    auto it = allocations.find((uintptr_t)p);
    if (it == allocations.end()) return 1;
    r = it->second;
    allocations.erase(it);
  }
  int status = 0;
  const unsigned char *tail = (const unsigned char *)r.start;
  for (size_t i = std::max<size_t>(r.bytes, 1); i < r.rounded; i++) {
    if (tail[i] != 0xFF) {
      fprintf(stderr, "CUDA emulator: allocation 0x%lx (%zu bytes) was written %zu bytes past its end\n",
              (unsigned long)r.start, r.bytes, i - r.bytes + 1);
      status = 2;
      break;
    }
  }
  madvise((void *)r.map, r.map_bytes, MADV_DONTNEED);  // the memory goes back; the addresses stay taken
  mprotect((void *)r.map, r.map_bytes, PROT_NONE);
  r.freed = true;
  std::lock_guard<std::mutex> lock(allocations_mutex);
  if (r.slot < kReported) reported[r.slot].freed = true;
  quarantine.push_back(r);
  if (quarantine.size() > kQuarantine) {
    const Region &old = quarantine.front();
    munmap((void *)old.map, old.map_bytes);
    if (old.slot < kReported) {
      reported[old.slot].map_bytes = 0;  // matches no address any more
      free_slots.push_back(old.slot);
    }
    quarantine.pop_front();
  }
  return status;
}

// 1 with the allocation's start and size when address lies inside a live allocation, else 0.
__attribute__((visibility("default"))) int emu_allocation_of(uintptr_t address, uintptr_t *start, size_t *bytes) {
  std::lock_guard<std::mutex> lock(allocations_mutex);
  auto it = allocations.upper_bound(address);
  if (it == allocations.begin()) return 0;
  --it;
  const size_t size = std::max<size_t>(it->second.bytes, 1);
  if (address - it->first >= size) return 0;
  *start = it->first;
  *bytes = it->second.bytes;
  return 1;
}

// What is allocated: the bytes asked for, and the number of allocations (the driver's
// cuMemGetInfo and its leak report at context release).
__attribute__((visibility("default"))) size_t emu_allocated_bytes(void) {
  std::lock_guard<std::mutex> lock(allocations_mutex);
  size_t total = 0;
  for (auto &a : allocations) total += a.second.bytes;
  return total;
}

// Frees every live allocation (a context's destruction); returns how many there were.
__attribute__((visibility("default"))) size_t emu_free_all(void) {
  std::vector<uintptr_t> live;
  {
    std::lock_guard<std::mutex> lock(allocations_mutex);
    for (auto &a : allocations) live.push_back(a.first);
  }
  for (uintptr_t p : live) emu_free((void *)p);
  return live.size();
}

__attribute__((visibility("default"))) size_t emu_live_allocations(void) {
  std::lock_guard<std::mutex> lock(allocations_mutex);
  return allocations.size();
}

// Launches kernel `name` on a grid of blocks; `args` holds one 8-byte slot per parameter and
// `arg_sizes` the bytes each slot carries. Returns 0, or 1 with a message in `error`.
__attribute__((visibility("default"))) int emu_launch(const char *name, unsigned gx, unsigned gy, unsigned gz,
                                                      unsigned bx, unsigned by, unsigned bz, unsigned shared_bytes,
                                                      const unsigned char *args, const int *arg_sizes, int nargs,
                                                      unsigned long long seed, char *error, size_t error_len) {
  int count = 0;
  const emu::KernelEntry *all = emu_registry(&count);
  const emu::KernelEntry *k = nullptr;
  for (int i = 0; i < count; i++)
    if (strcmp(all[i].name, name) == 0) k = &all[i];
  if (!k) {
    write_error(error, error_len, std::string("no kernel named ") + name + " in this module");
    return 1;
  }
  if (nargs != k->arity) {
    write_error(error, error_len, std::string(name) + " takes " + std::to_string(k->arity) + " parameters, " +
                                      std::to_string(nargs) + " given");
    return 1;
  }
  for (int i = 0; i < nargs; i++) {
    if (arg_sizes[i] != k->sizes[i]) {
      write_error(error, error_len, std::string(name) + " parameter " + std::to_string(i) + " is " +
                                        std::to_string(k->sizes[i]) + " bytes, " + std::to_string(arg_sizes[i]) +
                                        " given");
      return 1;
    }
  }
  const unsigned long long threads = (unsigned long long)bx * by * bz;
  if (gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535 || threads == 0 || threads > kMaxThreads || bz > 64) {
    write_error(error, error_len, "launch of " + std::string(name) + ": invalid configuration grid (" +
                                      std::to_string(gx) + ", " + std::to_string(gy) + ", " + std::to_string(gz) +
                                      ") block (" + std::to_string(bx) + ", " + std::to_string(by) + ", " +
                                      std::to_string(bz) + ")");
    return 1;
  }
  if (shared_bytes > EMU_MAX_DYNAMIC_SHARED) {
    write_error(error, error_len, "launch of " + std::string(name) + ": " + std::to_string(shared_bytes) +
                                      " bytes of dynamic shared memory, at most " +
                                      std::to_string(EMU_MAX_DYNAMIC_SHARED));
    return 1;
  }
  Launch L;
  L.kernel = k;
  L.args = args;
  L.grid = dim3(gx, gy, gz);
  L.block = dim3(bx, by, bz);
  L.shared_bytes = shared_bytes;
  L.seed = seed;
  L.blocks = (long long)gx * gy * gz;
  pool().run(L);
  if (L.failed) {
    write_error(error, error_len, "launch of " + std::string(name) + ": " + L.error);
    return 1;
  }
  return 0;
}

}  // extern "C"
