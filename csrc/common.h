// Shared pieces of the compiled core: thread count, CPU feature detection, and
// the small helpers every kernel family uses. Kernels (csrc/cpu/*.cpp) know
// nothing of Python: they take raw pointers, sizes and strides.
#pragma once
#include <cstddef>
#include <cstdint>
#include <climits>

#if defined(PYENGINE_OPENMP)
#include <omp.h>
#endif

namespace pe {

using index_t = std::int64_t;

// Tiling arithmetic (a >= 0, b > 0): ceil(a / b), and a rounded up to a multiple of b.
constexpr index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }
constexpr index_t round_up(index_t a, index_t b) { return ceil_div(a, b) * b; }

// ---------------------------------------------------------------- threads
// One process-wide thread count, used as `num_threads(...)` on every OpenMP
// region (not omp_set_num_threads, which only sets the calling thread's value).
int num_threads();
void set_num_threads(int n);

// The threads a kernel may use now: num_threads(), lowered while other processes
// leave fewer cores free. Every OpenMP region ends in a join, so a team larger
// than the free cores waits, at every kernel, for a peer the scheduler put behind
// another process (a slice, ~1-3 ms, for a kernel of ~50 us). The runnable
// threads of other processes are sampled from /proc (loadavg's count minus this
// process's own running threads) at most every ~50 ms, by whichever call finds
// the sample stale; a core counts as taken if it was in 2 of the last 4 samples
// (a momentary reading, e.g. a kernel thread, does not count). Rules in common.cpp
// (sample_load, usable_threads).
// `grains`: the kernel's work in units of its grain (threads_for); while other
// processes take every core, a kernel of fewer than busy_min_grains() grains runs
// on the calling thread: a short kernel's join would wait longer for a peer
// behind someone else's slice than the kernel lasts.
// PYENGINE_ADAPT_THREADS=0 or set_adapt_threads(false) turns this off.
int usable_threads(index_t grains = INT64_MAX);
void set_busy_min_grains(index_t g);
index_t busy_min_grains();
void set_adapt_threads(bool on);
bool adapt_threads();
// Whether idle OpenMP workers spin for long (libgomp's default, OMP_WAIT_POLICY=ACTIVE, GOMP_SPINCOUNT
// above 10000) or sleep (PASSIVE, or after a brief spin: pyengine's default GOMP_SPINCOUNT=3000):
// spinning teams back off further on a loaded machine.
void set_workers_spin(bool on);
bool workers_spin();
int busy_threads();  // runnable threads of other processes, as the adaptation sees them (samples when stale)
// The adaptation's verdict on its last n load samples (runnable threads of other processes each): the
// largest count seen in at least two of them, so that one momentary reading does not take a core.
int window_busy(const int* samples, int n);

// Threads worth using for `work` units of roughly `grain` each: small problems
// run on one thread, where fork/join costs more than it saves (~2-5 us).
inline int threads_for(index_t work, index_t grain = 32768) {
  if (work <= grain) return 1;
#if defined(PYENGINE_OPENMP)
  if (omp_in_parallel()) return 1;  // called from a kernel's own parallel region: run on this thread
#endif
  index_t t = work / grain;
  int n = usable_threads(t);
  return t < n ? static_cast<int>(t) : n;
}

// ---------------------------------------------------------------- SIMD levels
// Chosen once at run time from the CPU's features; PYENGINE_ISA=generic|avx2|avx512
// (or set_isa() from Python) forces a lower level, so tests cover every path.
enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };
Isa isa();             // the level kernels should use now
Isa isa_supported();   // the best level this CPU supports
void set_isa(Isa level);  // clamps to isa_supported()
const char* isa_name(Isa level);

}  // namespace pe

// Function-level target attributes keep the default build portable: only the
// functions marked below may use AVX2/FMA or AVX-512 instructions, and they are
// called only after isa() says the CPU has them. (Per-file -mavx512f flags would
// risk the linker keeping an AVX-512 copy of an inline template for everyone.)
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define PE_X86 1
#define PE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define PE_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#else
#define PE_X86 0
#define PE_TARGET_AVX2
#define PE_TARGET_AVX512
#endif

// Simple loops: GCC compiles one clone per ISA and picks one at load time
// (ifunc). Used for elementwise kernels where auto-vectorisation is enough.
#if PE_X86 && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define PE_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PE_TARGET_CLONES
#endif
