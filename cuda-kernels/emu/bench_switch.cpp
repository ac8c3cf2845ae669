// bench_switch.cpp — what a fiber switch costs in the emulator, x86-64 switch against ucontext.
//   make -C cuda-kernels/emu bench-switch
// Loads both builds of the self-test module and times selftest_switches: every thread of a
// 1024-thread block does `iterations` __syncwarp, each a switch out of and back into the fiber.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <chrono>

typedef int (*launch_fn)(const char *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                         const unsigned char *, const int *, int, unsigned long long, char *, size_t);
typedef void *(*malloc_fn)(size_t);

static double ns_per_switch(const char *path) {
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "%s\n", dlerror());
    exit(1);
  }
  launch_fn launch = (launch_fn)dlsym(lib, "emu_launch");
  malloc_fn dev_malloc = (malloc_fn)dlsym(lib, "emu_malloc");
  const int threads = 1024, blocks = 2, iterations = 2000;
  void *out = dev_malloc(4 * threads * blocks);
  unsigned char args[16];
  *(int *)args = iterations;
  *(void **)(args + 8) = out;
  const int sizes[2] = {4, 8};
  char error[512];
  double best = 1e30;
  for (int rep = 0; rep < 5; rep++) {
    auto t0 = std::chrono::steady_clock::now();
    if (launch("selftest_switches", blocks, 1, 1, threads, 1, 1, 0, args, sizes, 2, 42 + rep, error, sizeof error)) {
      fprintf(stderr, "%s\n", error);
      exit(1);
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = s < best ? s : best;
  }
  // every __syncwarp switches each fiber out and back: two switches per thread and iteration;
  // blocks run on separate workers, so the time is that of one block
  return best / (2.0 * threads * iterations) * 1e9;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s asm-module.so ucontext-module.so\n", argv[0]);
    return 2;
  }
  const double fast = ns_per_switch(argv[1]), portable = ns_per_switch(argv[2]);
  printf("x86-64 switch: %.1f ns per switch\nucontext:      %.1f ns per switch\nratio:         %.1fx\n", fast, portable,
         portable / fast);
  return 0;
}
