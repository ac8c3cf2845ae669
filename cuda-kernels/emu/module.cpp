// module.cpp — turns a kernel translation unit into an emulator module: compiles it (with
// cuda_emu.h, force-included by the build) and registers its kernels. The build generates
// EMU_REGISTRY from a first compilation of the same unit: one EMU_KERNEL(name) per exported
// extern "C" __global__ function, one EMU_DYNAMIC_SHARED(symbol) per `extern __shared__` array.
#include <tuple>
#include <utility>

#include "cuda_emu.h"
#include "emu_module.h"

#include EMU_KERNELS_TU

namespace emu {

template <typename T> T read_slot(const unsigned char *slot) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "kernel parameters are scalars or pointers");
  T v;
  memcpy(&v, slot, sizeof v);
  return v;
}

template <typename... A> struct Invoker {
  static constexpr int sizes[sizeof...(A) + 1] = {(int)sizeof(A)..., 0};
  static void invoke(void *fn, const unsigned char *args) { call(fn, args, std::index_sequence_for<A...>{}); }
  template <size_t... I> static void call(void *fn, const unsigned char *args, std::index_sequence<I...>) {
    reinterpret_cast<void (*)(A...)>(fn)(read_slot<A>(args + 8 * I)...);
  }
};

template <typename... A> KernelEntry entry(const char *name, void (*fn)(A...)) {
  return KernelEntry{name, reinterpret_cast<void *>(fn), &Invoker<A...>::invoke, (int)sizeof...(A), Invoker<A...>::sizes};
}

}  // namespace emu

extern "C" {
__thread unsigned char emu_dynamic_shared[EMU_MAX_DYNAMIC_SHARED] __attribute__((aligned(256)));  // a definition
}

// Every `extern __shared__` array of the module is another name for emu_dynamic_shared.
#define EMU_DYNAMIC_SHARED(symbol) \
  asm(".globl " #symbol "\n.type " #symbol ", @tls_object\n.set " #symbol ", emu_dynamic_shared\n");
#define EMU_KERNEL(name)
#include EMU_REGISTRY
#undef EMU_KERNEL
#undef EMU_DYNAMIC_SHARED

#define EMU_DYNAMIC_SHARED(symbol)
#define EMU_KERNEL(name) ::emu::entry(#name, &name),
static const emu::KernelEntry kRegistry[] = {
#include EMU_REGISTRY
    emu::KernelEntry{nullptr, nullptr, nullptr, 0, nullptr}};

// CRC-32 of the rlk_contract.h the module was compiled against (EmulatorLibrary checks it).
extern "C" __attribute__((visibility("default"))) unsigned emu_contract_crc(void) { return RLK_CONTRACT_CRC; }

extern "C" const emu::KernelEntry *emu_registry(int *count) {
  *count = (int)(sizeof kRegistry / sizeof kRegistry[0]) - 1;
  return kRegistry;
}
