#include "backend/cpu/kernels.h"

#include <cpuid.h>

#include <cstdlib>
#include <cstring>

namespace inferd::cpu {

namespace generic {
const Kernels& get_kernels();
}
namespace avx2 {
const Kernels& get_kernels();
}
namespace avx512 {
const Kernels& get_kernels();
}
namespace avx512vnni {
const Kernels& get_kernels();
}

const Kernels* kernels_for(const char* isa) {
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
  // F16C from CPUID (leaf 1, ECX): clang before 16 has no "f16c" for __builtin_cpu_supports.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  if (std::strcmp(isa, "generic") == 0) return &generic::get_kernels();
  if (std::strcmp(isa, "avx2") == 0) return has2 ? &avx2::get_kernels() : nullptr;
  if (std::strcmp(isa, "avx512") == 0) return has512 ? &avx512::get_kernels() : nullptr;
  if (std::strcmp(isa, "avx512vnni") == 0)
    return has512 && __builtin_cpu_supports("avx512vnni") ? &avx512vnni::get_kernels() : nullptr;
  return nullptr;
}

const Kernels& kernels() {
  // INFERD_CPU_ISA=generic|avx2|avx512|avx512vnni forces a path (for tests and comparisons).
  static const Kernels* const k = []() -> const Kernels* {
    if (const char* force = std::getenv("INFERD_CPU_ISA")) {
      if (const Kernels* f = kernels_for(force)) return f;
    }
    for (const char* isa : {"avx512vnni", "avx512", "avx2"})
      if (const Kernels* f = kernels_for(isa)) return f;
    return &generic::get_kernels();
  }();
  return *k;
}

}  // namespace inferd::cpu
