// GEMM: C = alpha * op(A) @ op(B) + beta * C (+ bias), float and double, batched.
//
// Algorithm (Goto / BLIS style; shapes are those of op(A): (M, K), op(B): (K, N),
// C: (M, N), all row-major):
//
//   for each work unit (batch b, row block [i0, i0+mc), column range [j0, j1))  <- OpenMP
//     for pc in [0, K) step KC:                                  depth block
//       pack A[i0:i0+mc, pc:pc+kc] -> Ap   (MR-row micro-panels)  ~ L2
//       for jc in [j0, j1) step NC:                               column block
//         pack B[pc:pc+kc, jc:jc+nc] -> Bp (NR-column micro-panels) ~ L2
//         for ir in [0, mc) step MR:          A micro-panel (MR x kc) stays in L1
//           for jr in [0, nc) step NR:        B micro-panels stream from L2
//             micro-kernel: C[ir:ir+MR, jr:jr+NR] (+)= Ap_ir @ Bp_jr   (registers)
//
// Packing copies each block once into the exact order the micro-kernel reads
// it: Ap holds, per micro-panel, kc steps of MR consecutive values (one column
// of the panel), Bp kc steps of NR consecutive values (one row of the panel).
// The micro-kernel then reads both with unit stride, whatever the transposes
// and leading dimensions of A and B were, and edge tiles are zero-padded to a
// full MR x NR so the kernel never branches on the shape in its hot loop;
// only its store is bounded (masked) to the m x n valid part of C.
//
// Blocking parameters (per ISA and dtype, table `g_blocking` below):
//   MR x NR  the register tile (gemm_kernel.h).
//   KC       depth of one pass. The A micro-panel (MR x KC) is reused for every
//            B micro-panel of the column block, so it should sit in L1 with room
//            to spare for the B data streaming through: MR*KC*sizeof(T) about
//            half of L1 (14*384*4 = 21 KiB of a 48 KiB L1d). Larger KC also means
//            fewer passes over C (each pass loads and stores the C tile once).
//   NC       width of the packed B block (KC x NC), re-read from L2 by every A
//            micro-panel of the row block: KC*NC*sizeof(T) about half of L2
//            (384*512*4 = 768 KiB of 2 MiB).
//   MC       height of the packed A block (MC x KC), reused for every column
//            block of the unit; a multiple of MR. Larger MC amortises the
//            packing of B over more rows; it is also the unit of parallel work,
//            so it is cut down (see plan_units) until every thread has work.
// The first depth pass applies beta and the bias; later passes accumulate
// (beta = 1, no bias). With beta == 0 C is written, never read.
//
// Threads: work units are (batch, row block, column range) triples, each with
// its own C tile and thread-private packing buffers, so threads never share
// writes or synchronise inside the GEMM. Small problems run on one thread
// (pe::threads_for), and the row/column split is refined until each thread
// has a unit (and the unit count divides evenly when there are few).
#include "cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

#include "cpu/gemm_kernel.h"

namespace pe {
namespace gemm_detail {

// ------------------------------------------------------------------ blocking

// Indexed [isa][dtype]: dtype 0 = float, 1 = double. See the header comment
// for what each parameter is for; values are for a Sapphire Rapids class core
// (48 KiB L1d, 2 MiB L2) on AVX-512, and a 32 KiB / 256 KiB+ core on AVX2.
static GemmBlocking g_blocking[3][2] = {
    // generic: 4x8 / 4x4 tiles
    {{TileGeneric<float>::MR, TileGeneric<float>::NR, 64, 256, 256},
     {TileGeneric<double>::MR, TileGeneric<double>::NR, 64, 256, 128}},
    // avx2: 6x16 / 6x8 tiles
    {{TileAvx2<float>::MR, TileAvx2<float>::NR, 144, 256, 256},
     {TileAvx2<double>::MR, TileAvx2<double>::NR, 72, 256, 128}},
    // avx512: 14x32 / 14x16 tiles
    {{TileAvx512<float>::MR, TileAvx512<float>::NR, 448, 384, 512},
     {TileAvx512<double>::MR, TileAvx512<double>::NR, 224, 256, 256}},
};

static GemmBlocking& blocking_ref(Isa level, char dtype) {
  return g_blocking[static_cast<int>(level)][dtype == 'd' ? 1 : 0];
}

// ------------------------------------------------------------------ scratch

// Thread-private, 64-byte aligned, grow-only packing buffers: no allocation per
// call once warm, and OpenMP's worker threads keep theirs between calls.
class Scratch {
 public:
  ~Scratch() { std::free(p_); }
  // Returns null on allocation failure (the caller is inside an OpenMP region
  // and must not throw).
  void* get(size_t bytes) {
    if (bytes > cap_) {
      std::free(p_);
      size_t rounded = (bytes + 63) / 64 * 64;
      p_ = std::aligned_alloc(64, rounded);
      cap_ = p_ ? rounded : 0;
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

thread_local Scratch tl_pack_a, tl_pack_b;

// ------------------------------------------------------------------ packing

// dst[p*W + r] = src[r*ld + p] for r < rows; 0 for rows <= r < W; p < kc.
// Gathers `rows` source rows, each contiguous along p, into a panel
// interleaved by p (A without transpose, B with). Blocked by 8 steps of p so
// that the 8 destination rows being written stay in L1.
template <class T, int W>
static void pack_interleave(T* dst, const T* src, index_t ld, int rows, index_t kc) {
  for (index_t p0 = 0; p0 < kc; p0 += 8) {
    const int pb = static_cast<int>(std::min<index_t>(8, kc - p0));
    T* d = dst + p0 * W;
    for (int r = 0; r < rows; ++r) {
      const T* s = src + r * ld + p0;
      for (int pp = 0; pp < pb; ++pp) d[pp * W + r] = s[pp];
    }
    for (int pp = 0; pp < pb; ++pp)
      for (int r = rows; r < W; ++r) d[pp * W + r] = T(0);
  }
}

// dst[p*W + r] = src[p*ld + r] for r < cols; 0 for cols <= r < W; p < kc.
// Source rows already run along r (B without transpose, A with): row copies.
template <class T, int W>
static void pack_copy(T* dst, const T* src, index_t ld, int cols, index_t kc) {
  if (cols == W) {
    for (index_t p = 0; p < kc; ++p) {
      const T* s = src + p * ld;
      T* d = dst + p * W;
      for (int r = 0; r < W; ++r) d[r] = s[r];
    }
    return;
  }
  for (index_t p = 0; p < kc; ++p) {
    const T* s = src + p * ld;
    T* d = dst + p * W;
    for (int r = 0; r < cols; ++r) d[r] = s[r];
    for (int r = cols; r < W; ++r) d[r] = T(0);
  }
}

// Ap: rows [i0, i0+mc) x depth [p0, p0+kc) of op(A), as ceil(mc/MR) micro-panels.
template <class T, int MR>
static void pack_a(T* ap, const GemmArgs<T>& g, const T* a, index_t i0, index_t mc, index_t p0, index_t kc) {
  for (index_t ir = 0; ir < mc; ir += MR) {
    const int rows = static_cast<int>(std::min<index_t>(MR, mc - ir));
    T* dst = ap + ir * kc;
    if (!g.trans_a)  // A stored (M, K): op(A)(i, p) = a[i*lda + p]
      pack_interleave<T, MR>(dst, a + (i0 + ir) * g.lda + p0, g.lda, rows, kc);
    else  // A stored (K, M): op(A)(i, p) = a[p*lda + i]
      pack_copy<T, MR>(dst, a + p0 * g.lda + (i0 + ir), g.lda, rows, kc);
  }
}

// Bp: depth [p0, p0+kc) x columns [j0, j0+nc) of op(B), as ceil(nc/NR) micro-panels.
template <class T, int NR>
static void pack_b(T* bp, const GemmArgs<T>& g, const T* b, index_t j0, index_t nc, index_t p0, index_t kc) {
  for (index_t jr = 0; jr < nc; jr += NR) {
    const int cols = static_cast<int>(std::min<index_t>(NR, nc - jr));
    T* dst = bp + jr * kc;
    if (!g.trans_b)  // B stored (K, N): op(B)(p, j) = b[p*ldb + j]
      pack_copy<T, NR>(dst, b + p0 * g.ldb + (j0 + jr), g.ldb, cols, kc);
    else  // B stored (N, K): op(B)(p, j) = b[j*ldb + p]
      pack_interleave<T, NR>(dst, b + (j0 + jr) * g.ldb + p0, g.ldb, cols, kc);
  }
}

// ------------------------------------------------------------------ generic micro-kernel

// Plain C++ (any CPU). The compiler vectorises the j loops (NR = 2 SSE/NEON
// vectors); the tile is small enough to stay in registers.
template <class T>
void micro_generic(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n, T alpha, T beta,
                   const T* bias) {
  constexpr int MR = TileGeneric<T>::MR, NR = TileGeneric<T>::NR;
  T acc[MR][NR] = {};
  for (index_t p = 0; p < k; ++p) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    for (int j = 0; j < n; ++j) {
      T r = alpha * acc[i][j];
      if (bias) r += bias[j];
      if (beta != T(0)) r += beta * ci[j];
      ci[j] = r;
    }
  }
}

template void micro_generic<float>(index_t, const float*, const float*, float*, index_t, int, int, float, float,
                                   const float*);
template void micro_generic<double>(index_t, const double*, const double*, double*, index_t, int, int, double,
                                    double, const double*);

// ------------------------------------------------------------------ driver

// Problems below this many multiply-adds per thread are not worth a fork/join
// (~2-5 us): 2^20 FMAs is ~10 us on one core at a realistic fraction of peak.
constexpr index_t kGrainFma = index_t(1) << 20;

static index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }
static index_t round_up(index_t a, index_t b) { return ceil_div(a, b) * b; }

struct Plan {
  index_t mc;       // rows per unit (multiple of MR, <= MC)
  index_t ncols;    // columns per unit (multiple of NR, or all of N)
  index_t mb, nb;   // units per matrix along M and N
  index_t units;    // batch * mb * nb
  int threads;
};

// Splits the problem into units: rows in blocks of at most MC, all columns in
// one range; then, while there are fewer units than threads (or few units that
// do not divide evenly), cuts the rows finer (down to MR), then the columns.
static Plan plan_units(index_t batch, index_t M, index_t N, index_t K, int MR, int NR, index_t MC) {
  Plan pl{};
  const index_t work = batch * M * N * std::max<index_t>(K, 1);
  int nt = threads_for(work, kGrainFma);
  index_t mb = ceil_div(M, MC), nb = 1;
  const index_t max_mb = ceil_div(M, MR), max_nb = ceil_div(N, NR);
  auto balanced = [&](index_t units) { return units >= nt && (units % nt == 0 || units >= 4 * nt); };
  while (nt > 1 && !balanced(batch * mb * nb)) {
    if (mb < max_mb) ++mb;
    else if (nb < max_nb) ++nb;
    else break;
  }
  pl.mc = round_up(ceil_div(M, mb), MR);
  pl.ncols = nb == 1 ? N : round_up(ceil_div(N, nb), NR);
  pl.mb = ceil_div(M, pl.mc);
  pl.nb = ceil_div(N, pl.ncols);
  pl.units = batch * pl.mb * pl.nb;
  pl.threads = static_cast<int>(std::min<index_t>(nt, pl.units));
  return pl;
}

template <class T, int MR, int NR>
static void run(const GemmArgs<T>& g, MicroKernel<T> micro, const GemmBlocking& blk) {
  const index_t M = g.M, N = g.N, K = g.K;
  if (g.batch <= 0 || M <= 0 || N <= 0) return;
  const index_t KC = std::max<index_t>(blk.kc, 1);
  const index_t MC = std::max<index_t>(round_up(blk.mc, MR), MR);
  const index_t NC = std::max<index_t>(round_up(blk.nc, NR), NR);
  const Plan pl = plan_units(g.batch, M, N, K, MR, NR, MC);

  // Packing buffer sizes (elements); kc <= KC, the B block is at most NC wide.
  const index_t kc_max = std::max<index_t>(std::min(K, KC), 1);
  const size_t a_elems = static_cast<size_t>(pl.mc * kc_max);
  const size_t b_elems = static_cast<size_t>(std::min(NC, round_up(pl.ncols, NR)) * kc_max);
  std::atomic<bool> out_of_memory{false};

  auto do_unit = [&](index_t u) {
    T* ap = static_cast<T*>(tl_pack_a.get(a_elems * sizeof(T)));
    T* bp = static_cast<T*>(tl_pack_b.get(b_elems * sizeof(T)));
    if (!ap || !bp) {
      out_of_memory = true;
      return;
    }
    const index_t bi = u / (pl.mb * pl.nb);
    const index_t rest = u % (pl.mb * pl.nb);
    const index_t i0 = (rest / pl.nb) * pl.mc, j0 = (rest % pl.nb) * pl.ncols;
    const index_t mc = std::min(pl.mc, M - i0), j1 = std::min(j0 + pl.ncols, N);
    const T* a = g.a + bi * g.stride_a;
    const T* b = g.b + bi * g.stride_b;
    T* c = g.c + bi * g.stride_c;

    // K == 0 still makes one (empty) pass, which applies beta and the bias.
    for (index_t pc = 0; pc < K || pc == 0; pc += KC) {
      const index_t kc = std::min(KC, K - pc);
      const bool first = pc == 0;
      const T beta = first ? g.beta : T(1);
      pack_a<T, MR>(ap, g, a, i0, mc, pc, kc);
      for (index_t jc = j0; jc < j1; jc += NC) {
        const index_t nc = std::min(NC, j1 - jc);
        pack_b<T, NR>(bp, g, b, jc, nc, pc, kc);
        for (index_t ir = 0; ir < mc; ir += MR) {
          const int m = static_cast<int>(std::min<index_t>(MR, mc - ir));
          T* crow = c + (i0 + ir) * g.ldc;
          for (index_t jr = 0; jr < nc; jr += NR) {
            const int n = static_cast<int>(std::min<index_t>(NR, nc - jr));
            const T* bias = first && g.bias ? g.bias + jc + jr : nullptr;
            micro(kc, ap + ir * kc, bp + jr * kc, crow + jc + jr, g.ldc, m, n, g.alpha, beta, bias);
          }
        }
      }
      if (K == 0) break;
    }
  };

  if (pl.threads <= 1) {
    for (index_t u = 0; u < pl.units; ++u) do_unit(u);
  } else {
#if defined(PYENGINE_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(pl.threads)
    for (index_t u = 0; u < pl.units; ++u) do_unit(u);
#else
    for (index_t u = 0; u < pl.units; ++u) do_unit(u);
#endif
  }
  if (out_of_memory) throw std::bad_alloc();
}

}  // namespace gemm_detail

// ------------------------------------------------------------------ public entry points

template <class T>
void gemm(const GemmArgs<T>& g) {
  using namespace gemm_detail;
  const char dt = sizeof(T) == 4 ? 'f' : 'd';
  switch (isa()) {
#if PE_X86
    case Isa::avx512:
      run<T, TileAvx512<T>::MR, TileAvx512<T>::NR>(g, micro_avx512<T>, blocking_ref(Isa::avx512, dt));
      return;
    case Isa::avx2:
      run<T, TileAvx2<T>::MR, TileAvx2<T>::NR>(g, micro_avx2<T>, blocking_ref(Isa::avx2, dt));
      return;
#endif
    default:
      run<T, TileGeneric<T>::MR, TileGeneric<T>::NR>(g, micro_generic<T>, blocking_ref(Isa::generic, dt));
      return;
  }
}

template void gemm<float>(const GemmArgs<float>&);
template void gemm<double>(const GemmArgs<double>&);

GemmBlocking gemm_blocking(Isa level, char dtype) { return gemm_detail::blocking_ref(level, dtype); }

void set_gemm_blocking(Isa level, char dtype, index_t mc, index_t kc, index_t nc) {
  GemmBlocking& b = gemm_detail::blocking_ref(level, dtype);
  b.mc = std::max<index_t>(gemm_detail::round_up(std::max<index_t>(mc, 1), b.mr), b.mr);
  b.kc = std::max<index_t>(kc, 1);
  b.nc = std::max<index_t>(gemm_detail::round_up(std::max<index_t>(nc, 1), b.nr), b.nr);
}

}  // namespace pe
