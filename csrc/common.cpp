#include "common.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace pe {

static int default_threads() {
#if defined(PYENGINE_OPENMP)
  return std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

static int g_threads = default_threads();
int num_threads() { return g_threads; }
void set_num_threads(int n) { g_threads = std::max(1, n); }

Isa isa_supported() {
#if PE_X86
  static const Isa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
      return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
    return Isa::generic;
  }();
  return best;
#else
  return Isa::generic;
#endif
}

static Isa initial_isa() {
  Isa level = isa_supported();
  if (const char* env = std::getenv("PYENGINE_ISA")) {
    if (!std::strcmp(env, "generic")) level = std::min(level, Isa::generic);
    else if (!std::strcmp(env, "avx2")) level = std::min(level, Isa::avx2);
  }
  return level;
}

static Isa g_isa = initial_isa();
Isa isa() { return g_isa; }
void set_isa(Isa level) { g_isa = std::min(level, isa_supported()); }

const char* isa_name(Isa level) {
  switch (level) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace pe
