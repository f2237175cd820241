// GEMM: C = alpha * op(A) @ op(B) + beta * C (+ bias), float and double, batched.
//
// Algorithm (Goto / BLIS style; shapes are those of op(A): (M, K), op(B): (K, N),
// C: (M, N), all row-major):
//
//   for each work unit (batch b, row block [i0, i0+mc), column range [j0, j1))  <- OpenMP
//     for pc in [0, K) step KC:                                  depth block
//       pack A[i0:i0+mc, pc:pc+kc] -> Ap   (MR-row micro-panels)  L2 / L3
//       for jc in [j0, j1) step NC:                               column block
//         pack B[pc:pc+kc, jc:jc+nc] -> Bp (NR-column micro-panels) L2
//         for ir in [0, mc) step MR:          A micro-panel (MR x kc) stays in L1
//           for jr in [0, nc) step NR:        B micro-panels stream from L2
//             micro-kernel: C[ir:ir+MR, jr:jr+NR] (+)= Ap_ir @ Bp_jr   (registers)
//
// Packing copies each block once into the exact order the micro-kernel reads
// it: Ap holds, per micro-panel, kc steps of MR consecutive values (one column
// of the panel), Bp kc steps of NR consecutive values (one row of the panel).
// The micro-kernel then reads both with unit stride, whatever the transposes
// and leading dimensions of A and B were (a transposed operand only changes
// which packer runs: a row copy or a transpose), and edge tiles are
// zero-padded to a full MR x NR so the hot loop never branches on the shape;
// only the store is bounded (masked) to the m x n valid part of C. (The
// AVX-512 kernel also has narrower instances for edge tiles, so a last panel
// of a few rows does not cost a full tile.)
//
// The register-blocked micro-kernel is the only part written per ISA
// (gemm_avx512.cpp, gemm_avx2.cpp, micro_generic below), with the packers
// (AVX-512 moves 16x16 / 8x8 blocks through in-register transposes; the others
// use the plain C++ ones in gemm_kernel.h). They reach the driver as a
// Kernels<T> table picked by pe::isa() on every call.
//
// Blocking parameters (per ISA and dtype, table `g_blocking` below):
//   MR x NR  the register tile (gemm_kernel.h).
//   KC       depth of one pass. The A micro-panel (MR x KC) is reused for every
//            B micro-panel of the column block, so it should sit in L1 with room
//            to spare for the B data streaming through: MR*KC*sizeof(T) about
//            half of L1 (14*384*4 = 21 KiB of a 48 KiB L1d). Larger KC also means
//            fewer passes over C (each pass loads and stores the C tile once).
//   NC       width of the packed B block (KC x NC), re-read from L2 by every A
//            micro-panel of the row block: KC*NC*sizeof(T) under half of L2
//            (384*512*4 = 768 KiB of 2 MiB).
//   MC       height of the packed A block (MC x KC), reused for every column
//            block of the unit; a multiple of MR. B is packed once per row
//            block, so a larger MC amortises that packing over more rows (896
//            measured ~3% faster than 448 for float on this core); MC is also
//            the unit of parallel work, cut down (see plan_units) until every
//            thread has work.
// The first depth pass applies beta and the bias; later passes accumulate
// (beta = 1, no bias). With beta == 0 C is written, never read.
// The values were picked by short 1-thread sweeps on the development machine
// (Sapphire Rapids, AVX-512); _C.set_gemm_blocking() changes them at run time
// for tuning. See dev/gemm_notes.md.
//
// M == 1 or N == 1 is a matrix-vector product, bound by memory bandwidth: it
// skips packing and streams the matrix once (run_gemv, gemm_gemv.h).
//
// Threads: work units are claimed one at a time (OpenMP dynamic schedule), so
// a thread that starts late or that the OS holds back leaves its share to the
// others. Two plans:
//  * many matrices (or small ones): units are (batch, row block, column range)
//    triples, each with thread-private packing buffers, so threads never share
//    writes or synchronise inside the GEMM. The row/column split is refined
//    until each thread has a unit (and the count divides evenly when few).
//  * few tall matrices on several threads (run_shared_b): one packed copy of B
//    shared by all threads instead of one per row block; units of a row block
//    x a column range (unit_grid), about 4 per thread; each B block is packed
//    by the first unit that needs it. (Before: one unit per thread, each
//    packing all of B, so that a late thread delayed the whole GEMM; see
//    dev/gemm_notes.md, "Two threads".) No thread waits for another inside
//    it: a block a peer is still packing is packed again privately, a thread
//    done with one slab runs on into the next, the last units are claimed in
//    pieces (dev/gemm_notes.md, "Two threads: nothing waits on a peer").
//    Not for A stored transposed with all of M in one row block (the weight
//    gradients): the first plan is faster there (see run()).
// Small problems run on one thread (pe::threads_for); on one thread, those with one depth pass and a small B
// skip packing and planning altogether (run_small; small_avx512 in gemm_avx512.cpp: same bits). Each C element is
// summed in the same order whatever the thread count and plan, so results do not depend on them.
#include "cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "cpu/gemm_gemv.h"
#include "cpu/gemm_kernel.h"
#include "cpu/gemm_trace.h"
#include "cpu/prefetch_ahead.h"
#include "cpu/scratch.h"
#include "cpu/simd.h"

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
    {{TileAvx512<float>::MR, TileAvx512<float>::NR, 896, 384, 512},
     {TileAvx512<double>::MR, TileAvx512<double>::NR, 448, 256, 256}},
};

// Widest C for which A is read in place rather than packed (see run()): 4 B
// micro-panels on AVX-512. Measured on the GPT's narrow shapes (N = 64..128,
// K = 64..512) 5-15% faster than packing, on 1 and 2 threads.
constexpr index_t kRowsAMaxN = 128;
// Short rows (lda up to 512 bytes: K <= 128 floats) and one column block (N <= NC): A is read in place
// whatever N. The MR rows of a strip (7 KiB at most) then stay in L1 for all
// the B micro-panels of the block, as a packed A micro-panel does, and A is
// never copied: the GPT's forward x W^T (M 2048, K 128, N 384 / 512) packed
// 1 MiB of A per call. The row block then takes up to kRowsAMaxMC rows, so B is
// packed once per call instead of once per 896 rows. Paired A/B on 1 thread
// (dev/gemm_notes.md, "Short depth"): +2-5% on those rows, faster in 64-84% of
// rounds. Not wider: with N = 1024 (two column blocks, M 4096, K 64) or 1 KiB
// rows (256^3) the in-place strip ran 3-6% slower in most rounds (the packed
// path's copy of A is amortised over more B micro-panels there, and the
// in-place micro-kernel addresses 14 rows).
// set_gemm_short_rows_a(False) turns this off (narrow-C rule alone) for A/B runs.
constexpr index_t kRowsAShortLdBytes = 512;
constexpr index_t kRowsAMaxMC = 4096;

static GemmBlocking& blocking_ref(Isa level, char dtype) {
  return g_blocking[static_cast<int>(level)][dtype == 'd' ? 1 : 0];
}

// ------------------------------------------------------------------ scratch

// Thread-private packing buffers (Scratch, cpu/scratch.h: grow-only, 64-byte aligned, huge pages from 512 KiB).

static thread_local Scratch tl_pack_a, tl_pack_b;
// The B shared by the threads of run_shared_b: the calling thread's.
static thread_local Scratch tl_shared_b;

// ------------------------------------------------------------------ packing

// Packing an operand whose stored rows run along the micro-panels' width (A
// transposed, B not): one micro-panel takes MR or NR values from each of kc
// rows a row stride apart (4-16 KiB for the large squares: a new page per row,
// which the hardware prefetchers do not follow), and the next micro-panel the
// next values of the same rows. So such a block is packed kPackRows rows at a
// time across all of its micro-panels: each source row is then read from start
// to end, a sequential stream, while the destination micro-panels take
// kPackRows steps each. (Packing B micro-panel by micro-panel cost ~10% of
// 2048^3 and 4096^3 on one thread: see dev/gemm_notes.md, "Packing".)
constexpr index_t kPackRows = 16;

// R-wide micro-panels of an operand over depth [p0, p0+kc) and its other index [i0, i0+n): A's rows (R = MR)
// or B's columns (R = NR), the one packing routine both operands share. `along_depth`: the operand is stored
// with that other index as its rows (A (M, K), B (N, K)), so a micro-panel reads R rows along the depth
// (`interleave`); else the depth is its rows (A (K, M), B (K, N)) and kPackRows of them are copied at a time
// across all the micro-panels (`copy`), as said above.
template <class T, int R, class Interleave, class Copy>
static void pack_panels(Interleave interleave, Copy copy, T* dst, const T* src, index_t ld, bool along_depth,
                        index_t i0, index_t n, index_t p0, index_t kc) {
  if (along_depth) {
    for (index_t ir = 0; ir < n; ir += R)
      interleave(dst + ir * kc, src + (i0 + ir) * ld + p0, ld, static_cast<int>(std::min<index_t>(R, n - ir)), kc);
    return;
  }
  for (index_t q = 0; q < kc; q += kPackRows) {
    const index_t qn = std::min(kPackRows, kc - q);
    for (index_t ir = 0; ir < n; ir += R)
      copy(dst + ir * kc + q * R, src + (p0 + q) * ld + (i0 + ir), ld, static_cast<int>(std::min<index_t>(R, n - ir)),
           qn);
  }
}

// Ap: rows [i0, i0+mc) x depth [p0, p0+kc) of op(A), as ceil(mc/MR) micro-panels.
template <class T, int MR>
static void pack_a(const Kernels<T>& ks, T* ap, const GemmArgs<T>& g, const T* a, index_t i0, index_t mc,
                   index_t p0, index_t kc) {
  pack_panels<T, MR>(ks.a_interleave, ks.a_copy, ap, a, g.lda, !g.trans_a, i0, mc, p0, kc);
}

// Bp: depth [p0, p0+kc) x columns [j0, j0+nc) of op(B), as ceil(nc/NR) micro-panels.
template <class T, int NR>
static void pack_b(const Kernels<T>& ks, T* bp, const GemmArgs<T>& g, const T* b, index_t j0, index_t nc,
                   index_t p0, index_t kc) {
  pack_panels<T, NR>(ks.b_interleave, ks.b_copy, bp, b, g.ldb, g.trans_b, j0, nc, p0, kc);
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

template <class T>
static void dots_generic(const T* x, index_t ldx, index_t n, const T* v, index_t k, T* y) {
  gemv_dots(x, ldx, n, v, k, y);
}
template <class T>
static void axpys_generic(const T* x, index_t ldx, index_t n, const T* v, index_t k, T* y) {
  gemv_axpys(x, ldx, n, v, k, y);
}

template <class T>
Kernels<T> kernels_generic() {
  constexpr int MR = TileGeneric<T>::MR, NR = TileGeneric<T>::NR;
  return {micro_generic<T>,         pack_interleave<T, MR>, pack_copy<T, MR>, pack_copy<T, NR>,
          pack_interleave<T, NR>,  dots_generic<T>,        axpys_generic<T>};
}

// ------------------------------------------------------------------ driver

// Problems below this many multiply-adds per thread are not worth a fork/join
// (~2-5 us): 2^20 FMAs is ~10 us on one core at a realistic fraction of peak.
constexpr index_t kGrainFma = index_t(1) << 20;

// run_shared_b: the most packed B held at once (a slab of columns), and the
// units it aims at per thread (more units let a thread that runs while the
// other waits for a core take over its share; fewer re-read B less often).
constexpr index_t kSharedBBytes = index_t(24) << 20;
constexpr int kUnitsPerThread = 4;
constexpr index_t kTailSplit = 4;  // pieces of each of the last units of a phase (run_shared_b)
static std::atomic<int> g_shared_b{kUnitsPerThread};  // set_gemm_shared_b; 0: off
static std::atomic<bool> g_own_b{false};  // set_gemm_own_b (tests): run_shared_b packs every B block privately
static std::atomic<bool> g_depth_split{true};  // set_gemm_depth_split (run_depth_split): on, see there
static std::atomic<bool> g_short_rows_a{true};  // set_gemm_short_rows_a: see kRowsAShortLdBytes
static std::atomic<bool> g_small{true};  // set_gemm_small: see run_small


struct Plan {
  index_t mc;       // rows per unit (multiple of MR, <= MC)
  index_t ncols;    // columns per unit (multiple of NR, or all of N)
  index_t mb, nb;   // units per matrix along M and N
  index_t units;    // batch * mb * nb
  int threads;
};

// Splits the problem into units: rows in blocks of at most MC, all columns in
// one range; then, while there are fewer units than threads (or few units that
// do not divide evenly), cuts one dimension finer (rows down to MR, columns down
// to NR), then the other. Which one first: every extra unit along M packs its
// own copy of the B columns it covers (K x N values), every extra unit along N
// its own copy of the A rows (M x K), so the cut goes along the longer side.
// (An LSTM step, 32 x 128 @ 128 x 512, cut by rows made both threads pack all of
// W and ran slower on 2 threads than on 1; cut by columns it runs 1.5x faster.)
static Plan plan_units(index_t batch, index_t M, index_t N, index_t K, int MR, int NR, index_t MC) {
  Plan pl{};
  const index_t work = batch * M * N * std::max<index_t>(K, 1);
  int nt = threads_for(work, kGrainFma);
  index_t mb = ceil_div(M, MC), nb = 1;
  const index_t max_mb = ceil_div(M, MR), max_nb = ceil_div(N, NR);
  const bool cols_first = N > M;
  auto balanced = [&](index_t units) { return units >= nt && (units % nt == 0 || units >= 4 * nt); };
  while (nt > 1 && !balanced(batch * mb * nb)) {
    if (cols_first && nb < max_nb) ++nb;
    else if (mb < max_mb) ++mb;
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

// Runs `units` calls of do_unit(u), on threads when there are several.
template <class F>
static void for_units(index_t units, int threads, const F& do_unit) {
  if (threads <= 1) {
    for (index_t u = 0; u < units; ++u) do_unit(u);
    return;
  }
#if defined(PYENGINE_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (index_t u = 0; u < units; ++u) do_unit(u);
#else
  for (index_t u = 0; u < units; ++u) do_unit(u);
#endif
}

// Offset of batch bi of an operand with batch stride s and inner-level stride is (see GemmArgs::inner).
template <class T>
static inline index_t batch_offset(const GemmArgs<T>& g, index_t bi, index_t s, index_t is) {
  return g.inner > 0 ? bi / g.inner * s + bi % g.inner * is : bi * s;
}

// M == 1 or N == 1: a matrix-vector product y = op(X) @ v of R = max(M, N)
// outputs, streamed once through the ISA's dots/axpys loops (gemm_gemv.h)
// instead of packed. Units are (batch, chunk of outputs).
template <class T>
static void run_gemv(const GemmArgs<T>& g, const Kernels<T>& ks) {
  const index_t K = g.K;
  // N == 1: y = op(A) @ op(B)[:, 0]; C column 0, stride ldc; the bias has one element.
  // M == 1: y = op(B)^T @ op(A)[0, :]; C row 0, stride 1; the bias has N elements.
  const bool col = g.N == 1;
  const index_t R = col ? g.M : g.N;
  const T* xbase = col ? g.a : g.b;
  const index_t ldx = col ? g.lda : g.ldb, xstride = col ? g.stride_a : g.stride_b;
  const index_t xistride = col ? g.istride_a : g.istride_b;
  // The rows of op(X) (R x K) run along p exactly when the stored matrix is not
  // transposed for A (col) / transposed for B (row): then dots, else axpys.
  const bool use_dots = col ? !g.trans_a : g.trans_b;
  const T* vbase = col ? g.b : g.a;
  const index_t vstride = col ? g.stride_b : g.stride_a, vistride = col ? g.istride_b : g.istride_a;
  const index_t vinc = col ? (g.trans_b ? 1 : g.ldb) : (g.trans_a ? g.lda : 1);  // between v[p] and v[p+1]
  const index_t cinc = col ? g.ldc : 1;
  const index_t binc = col ? 0 : 1;

  // Chunks of outputs: dots read `chunk` whole rows; axpys keep a y chunk in L1.
  const index_t chunk = use_dots ? 64 : 1024;
  const index_t nchunks = ceil_div(R, chunk);
  const index_t units = g.batch * nchunks;
  const int nt = static_cast<int>(
      std::min<index_t>(threads_for(g.batch * R * std::max<index_t>(K, 1), kGrainFma), units));
  std::atomic<bool> out_of_memory{false};

  for_units(units, nt, [&](index_t u) {
    const index_t bi = u / nchunks, r0 = (u % nchunks) * chunk, rn = std::min(chunk, R - r0);
    T* y = static_cast<T*>(tl_pack_b.get(static_cast<size_t>(chunk) * sizeof(T)));
    if (!y) {
      out_of_memory = true;
      return;
    }
    // v contiguous: use it in place, else gather it once per unit.
    const T* v = vbase + batch_offset(g, bi, vstride, vistride);
    if (vinc != 1 && K > 1) {
      T* vb = static_cast<T*>(tl_pack_a.get(static_cast<size_t>(K) * sizeof(T)));
      if (!vb) {
        out_of_memory = true;
        return;
      }
      for (index_t p = 0; p < K; ++p) vb[p] = v[p * vinc];
      v = vb;
    }
    const T* x = xbase + batch_offset(g, bi, xstride, xistride);
    if (use_dots) ks.dots(x + r0 * ldx, ldx, rn, v, K, y);  // op(X) row r at x + r*ldx
    else ks.axpys(x + r0, ldx, rn, v, K, y);                // op(X)(r, p) at x[p*ldx + r]
    T* c = g.c + batch_offset(g, bi, g.stride_c, g.istride_c) + r0 * cinc;
    const T* bias = g.bias ? g.bias + r0 * binc : nullptr;
    for (index_t r = 0; r < rn; ++r) {
      T val = g.alpha * y[r];
      if (bias) val += bias[r * binc];
      if (g.beta != T(0)) val += g.beta * c[r * cinc];
      c[r * cinc] = val;
    }
  });
  if (out_of_memory) throw std::bad_alloc();
}

// The A block of one depth pass: rows [i0, i0+mc) x depth [pc, pc+kc) into ap,
// or, when A is read in place (rows_a), only its last, partial MR strip.
template <class T, int MR>
static void pack_a_block(const Kernels<T>& ks, T* ap, const GemmArgs<T>& g, const T* a, bool rows_a, index_t i0,
                         index_t mc, index_t pc, index_t kc) {
  if (!rows_a) {
    pack_a<T, MR>(ks, ap, g, a, i0, mc, pc, kc);
  } else if (mc % MR) {
    const index_t ir = mc - mc % MR;
    ks.a_interleave(ap + ir * kc, a + (i0 + ir) * g.lda + pc, g.lda, static_cast<int>(mc - ir), kc);
  }
}

// Contiguous byte ranges that the micro-kernel calls of a block prefetch into L2, kc lines per call
// (Kernels::micro_pf), in order: the next depth pass's source rows, fetched while this pass computes.
struct L2Ahead {
  const char* p[2] = {nullptr, nullptr};
  index_t lines[2] = {0, 0};
  int cur = 0;
  void add(const void* base, index_t bytes) {
    for (int r = 0; r < 2; ++r)
      if (lines[r] == 0) {
        p[r] = static_cast<const char*>(base);
        lines[r] = (bytes + 63) / 64;
        return;
      }
  }
  // The next at most n lines of one range: (start, count); count 0 when all are taken.
  const char* take(index_t n, index_t& got) {
    while (cur < 2 && lines[cur] == 0) ++cur;
    if (cur >= 2) {
      got = 0;
      return nullptr;
    }
    got = std::min(n, lines[cur]);
    const char* q = p[cur];
    p[cur] += got * 64;
    lines[cur] -= got;
    return q;
  }
};

// C[i0:i0+mc, jc:jc+nc] (+)= A block (ap, or A in place) @ packed B block bp
// (kc x nc as NR-column micro-panels), one micro-kernel call per MR x NR tile.
// The first depth pass (`first`) applies beta and the bias, later ones add.
// `ahead`: ranges each packed-A call prefetches kc lines of (see L2Ahead).
template <class T, int MR, int NR>
static void block_kernel(const GemmArgs<T>& g, const Kernels<T>& ks, bool rows_a, const T* ap, const T* a,
                         index_t i0, index_t mc, index_t pc, index_t kc, bool first, const T* bp, T* c, index_t jc,
                         index_t nc, L2Ahead* ahead = nullptr) {
  const T beta = first ? g.beta : T(1);
  const bool prefetch = ahead != nullptr && ks.micro_pf != nullptr;
  // Outside the depth split (which prefetches its next pass instead, L2Ahead), each call of a row tile
  // prefetches its share of the next tile's C rows and, when A is read in place, of its A rows. In a training
  // step both come from L3 or memory (C: a fresh output; A: written by another op) and nothing streamed them
  // in: a tile's first calls waited on them. 1 thread, each call after a 64 MiB sweep, GFLOP/s (AMD EPYC,
  // peak 116): forward x W^T M2048 K128 N384 93-94 -> 103-105, N512 96 -> 106-107; dx = g W M2048 K384 N128
  // 97-98 -> 106-107, K128 N512 96-97 -> 102-105; within 1% with the operands in cache. On 2 threads a C line
  // the other core wrote last (a recycled output) costs a cross-core transfer, and those shapes ran at one
  // thread's speed: 96-122 -> 180-203 GFLOP/s, 0.55-0.90x -> 0.95-1.10x OpenBLAS (dev/gemm_notes.md, "Cold
  // operands").
  const index_t panels = ceil_div(nc, NR), sz = static_cast<index_t>(sizeof(T));
  for (index_t ir = 0; ir < mc; ir += MR) {
    const int m = static_cast<int>(std::min<index_t>(MR, mc - ir));
    T* crow = c + (i0 + ir) * g.ldc;
    const index_t next_rows = std::min<index_t>(MR, mc - ir - MR);  // <= 0 on the block's last tile
    Ahead next;  // (prefetch_ahead.h)
    next.l2 = true;
    if (next_rows > 0) {  // A first: the next tile's first call reads all its A rows, its C a panel at a time
      if (rows_a) next.add_rows(a + (i0 + ir + MR) * g.lda + pc, kc * sz, next_rows, g.lda * sz);
      if (!prefetch) next.add_rows(crow + MR * g.ldc + jc, nc * sz, next_rows, g.ldc * sz);
    }
    const index_t per_call = ceil_div(next.total(), panels);
    for (index_t jr = 0; jr < nc; jr += NR) {
      const int n = static_cast<int>(std::min<index_t>(NR, nc - jr));
      const T* bias = first && g.bias ? g.bias + jc + jr : nullptr;
      next.touch(per_call);
      if (rows_a && m == MR) {
        ks.micro_rows(kc, a + (i0 + ir) * g.lda + pc, g.lda, bp + jr * kc, crow + jc + jr, g.ldc, n, g.alpha, beta,
                      bias);
      } else if (prefetch) {
        index_t lines = 0;
        const char* pf = ahead->take(kc, lines);
        ks.micro_pf(kc, ap + ir * kc, bp + jr * kc, crow + jc + jr, g.ldc, m, n, g.alpha, beta, bias, pf, lines);
      } else {
        ks.micro(kc, ap + ir * kc, bp + jr * kc, crow + jc + jr, g.ldc, m, n, g.alpha, beta, bias);
      }
    }
  }
}

// How run_shared_b cuts an M x w slab into units: mb row blocks of `rows`
// (a multiple of MR, at most MC, at least 4 strips where M allows) times nb
// column ranges of `cols` (a multiple of NR). Every row block reads all of the
// shared B of the slab again (from L3: K x w values), every column range packs
// its own copy of the A rows (K x M values, counted twice: a pack reads and
// writes); of the grids with `target` units (or as many as M and w allow), the
// one that moves the least. Square 2048 on 2 threads x 4 units: 4 x 2 instead
// of 8 x 1 (see dev/gemm_notes.md, "Two threads").
struct UnitGrid {
  index_t rows, cols, mb, nb;
};
static UnitGrid unit_grid(index_t M, index_t w, int MR, int NR, index_t MC, index_t target) {
  const index_t mb_min = ceil_div(M, MC), npan = ceil_div(w, NR);
  const index_t mb_max = std::max(mb_min, std::min(ceil_div(M, 4 * MR), target));
  UnitGrid best{};
  bool best_short = true;
  index_t best_cost = 0;
  for (index_t mb = mb_min; mb <= mb_max; ++mb) {
    UnitGrid u;
    u.rows = round_up(ceil_div(M, mb), MR);
    u.mb = ceil_div(M, u.rows);
    u.cols = round_up(ceil_div(w, std::min(npan, std::max<index_t>(ceil_div(target, u.mb), 1))), NR);
    u.nb = ceil_div(w, u.cols);
    const bool is_short = u.mb * u.nb < target;
    const index_t cost = u.mb * w + 2 * u.nb * M;
    if (mb == mb_min || (best_short && !is_short) || (best_short == is_short && cost < best_cost)) {
      best = u;
      best_short = is_short;
      best_cost = cost;
    }
  }
  return best;
}

// The shared B of run_shared_b is packed lazily, one KC x NC block at a time,
// by the first unit that needs it; one flag per block says unpacked / being
// packed / ready. Nothing waits for a peer: a unit that finds its block claimed
// but not yet written (the packer is still at it, or the OS holds it back), or
// whose slab buffer an earlier slab's units still read, packs the columns it
// needs into a thread-private buffer and computes from that (the forward conv's
// rule, conv_phase.h). Packing is deterministic, so a private copy holds the
// same values as the shared one and the bits do not change.
enum : int { kBlockEmpty = 0, kBlockPacking = 1, kBlockReady = 2 };

// Several threads on few, tall matrices: one packed copy of B shared by all
// threads instead of one per row block (see "Threads" in the header comment).
// The work is a sequence of phases, (batch, slab of columns [n0, n1), group of
// depth blocks), each cut into units (unit_grid: row block x column range) that
// the threads claim one at a time from the phase's counter; a unit packs its A
// block per depth pass and runs block_kernel on the shared B blocks, packing
// each on first use. One matrix whose B fits one slab and group (the common
// case) is one phase. Several phases (B larger than kSharedBBytes: 4096^3, or a
// few matrices) alternate between two slab buffers, and a thread that has run
// out of units of one phase goes on to the next instead of waiting at a barrier
// for a peer that still holds the last unit: the next phase's buffer is free
// once every unit of the phase two before it is done (a per-phase count), and
// until then the thread packs its B blocks privately. Only groups of depth
// blocks (K above ~12k at the narrowest slab) keep a barrier between them: each
// C tile must see its depth passes in order. Every C tile is computed by one
// thread, its depth passes in order, so the bits do not depend on who runs what.
template <class T, int MR, int NR>
static void run_shared_b(const GemmArgs<T>& g, const Kernels<T>& ks, index_t KC, index_t MC, index_t NC,
                         bool rows_a, int nt, int units_per_thread) {
  const index_t M = g.M, N = g.N, K = g.K;
  const index_t nkb = ceil_div(K, KC);
  // Slab width: the shared B of all depth blocks of a slab within kSharedBBytes
  // where possible (then A is packed once per slab); else groups of depth blocks.
  const index_t per_col = nkb * KC * static_cast<index_t>(sizeof(T));
  const index_t ns = std::min(std::max(kSharedBBytes / per_col / NC * NC, NC), round_up(N, NR));
  const index_t kgb =
      std::max<index_t>(std::min(kSharedBBytes / (KC * ns * static_cast<index_t>(sizeof(T))), nkb), 1);
  const index_t nslabs = ceil_div(N, ns), ngroups = ceil_div(nkb, kgb);
  const index_t nphases = g.batch * nslabs * ngroups;
  // Two slab buffers when there are several phases (see above), one otherwise.
  const index_t nbuf = std::min<index_t>(nphases, 2);
  const size_t slot = static_cast<size_t>(std::min(kgb * KC, K) * ns);
  T* bs = static_cast<T*>(tl_shared_b.get(static_cast<size_t>(nbuf) * slot * sizeof(T)));
  if (!bs) throw std::bad_alloc();
  const index_t kc_max = std::min(K, KC);
  // One flag per (batch, depth block, NC column block of N): slabs are whole NC blocks.
  const index_t njb = ceil_div(N, NC);
  const size_t nflags = static_cast<size_t>(g.batch * nkb * njb);
  std::unique_ptr<std::atomic<int>[]> flags(new (std::nothrow) std::atomic<int>[nflags]);
  // Per phase: pieces (units, or parts of the last units) claimed (next) and finished (done).
  std::unique_ptr<std::atomic<index_t>[]> counts(new (std::nothrow) std::atomic<index_t>[2 * nphases]);
  if (!flags || !counts) throw std::bad_alloc();
  for (size_t i = 0; i < nflags; ++i) flags[i].store(kBlockEmpty, std::memory_order_relaxed);
  for (index_t i = 0; i < 2 * nphases; ++i) counts[i].store(0, std::memory_order_relaxed);
  const index_t target = static_cast<index_t>(units_per_thread) * nt;
  const bool own_only = g_own_b.load(std::memory_order_relaxed);
  // The last nt units of a phase are claimed as kTailSplit pieces each (row blocks of `rows` / kTailSplit, whole
  // strips): the thread that finishes last then holds at most a piece, not a unit, when the OS holds it back.
  // Per slab (its width decides them), computed once: the unit grid and its pieces, whole units first, then
  // the pieces of the last ones.
  const index_t ntail = nt;
  std::vector<UnitGrid> slab_grid(static_cast<size_t>(nslabs));
  std::vector<index_t> slab_pieces(static_cast<size_t>(nslabs));
  for (index_t si = 0; si < nslabs; ++si) {
    const UnitGrid ug = unit_grid(M, std::min(N, (si + 1) * ns) - si * ns, MR, NR, MC, target);
    const index_t units = ug.mb * ug.nb, tail = std::min(units, ntail);
    const index_t sub = round_up(ceil_div(ug.rows, kTailSplit), MR);
    slab_grid[static_cast<size_t>(si)] = ug;
    slab_pieces[static_cast<size_t>(si)] = units - tail + tail * ceil_div(ug.rows, sub);
  }
  std::atomic<bool> out_of_memory{false};

  // PE_GEMM_TRACE (dev only, gemm_trace.h): per-thread timings of this call; null when off.
  std::unique_ptr<gemm_trace::Call> trace(gemm_trace::path() ? new gemm_trace::Call("shared_b", M, N, K, nt)
                                                              : nullptr);
#if defined(PYENGINE_OPENMP)
#pragma omp parallel num_threads(nt)
#endif
  {
    gemm_trace::Thread* tt = gemm_trace::enter(trace.get(), vm::thread_id());
    for (index_t ph = 0; ph < nphases; ++ph) {
      const index_t bi = ph / (nslabs * ngroups), si = ph / ngroups % nslabs, gi = ph % ngroups;
      const T* a = g.a + batch_offset(g, bi, g.stride_a, g.istride_a);
      const T* b = g.b + batch_offset(g, bi, g.stride_b, g.istride_b);
      T* c = g.c + batch_offset(g, bi, g.stride_c, g.istride_c);
      const index_t n0 = si * ns, n1 = std::min(N, n0 + ns), wpad = round_up(n1 - n0, NR);
      const UnitGrid ug = slab_grid[static_cast<size_t>(si)];
      const index_t nunits = ug.mb * ug.nb, nwhole = nunits - std::min(nunits, ntail);
      const index_t sub_rows = round_up(ceil_div(ug.rows, kTailSplit), MR), nsub = ceil_div(ug.rows, sub_rows);
      const index_t npieces = slab_pieces[static_cast<size_t>(si)];
      const index_t kb0 = gi * kgb, pg = kb0 * KC, pend = std::min(K, (kb0 + kgb) * KC);
      if (gi > 0) {  // a later depth group of the same slab: every tile's earlier passes first
        gemm_trace::Span span(tt, gemm_trace::kBarrier);
#if defined(PYENGINE_OPENMP)
#pragma omp barrier
#endif
      }
      T* buf = bs + static_cast<size_t>(ph % nbuf) * slot;
      // The buffer is free once every unit of the phase that used it before (ph - nbuf) is done; monotone, so
      // once seen free it stays free for this phase.
      bool buf_free = ph < nbuf;
      auto buffer_free = [&]() {
        if (!buf_free) {
          const index_t prev = ph - nbuf;
          buf_free = counts[2 * prev + 1].load(std::memory_order_acquire) ==
                     slab_pieces[static_cast<size_t>(prev / ngroups % nslabs)];
        }
        return buf_free;
      };
      // Columns [jc, jn) (inside the NC block jb0) of depth block pc: from the shared block (packed here if
      // nobody has claimed it and the buffer is free), else from a private copy in tl_pack_b.
      auto b_panels = [&](index_t pc, index_t kc, index_t jb0, index_t jc, index_t jn) -> const T* {
        T* blk = buf + (pc - pg) * wpad + (jb0 - n0) * kc;
        std::atomic<int>& flag = flags[static_cast<size_t>((bi * nkb + pc / KC) * njb + jb0 / NC)];
        int state = flag.load(std::memory_order_acquire);
        if (state == kBlockReady) return blk + (jc - jb0) * kc;
        if (state == kBlockEmpty && !own_only && buffer_free() &&
            flag.compare_exchange_strong(state, kBlockPacking, std::memory_order_acq_rel)) {
          gemm_trace::Span span(tt, gemm_trace::kPackB);
          pack_b<T, NR>(ks, blk, g, b, jb0, std::min(NC, n1 - jb0), pc, kc);
          flag.store(kBlockReady, std::memory_order_release);
          return blk + (jc - jb0) * kc;
        }
        // Claimed but unwritten, or the buffer still in use: a private copy of just these columns (their
        // micro-panels are the shared block's from column jc on: jc - jb0 is a multiple of NR).
        T* own = static_cast<T*>(tl_pack_b.get(static_cast<size_t>(NC * kc_max) * sizeof(T)));
        if (!own) return nullptr;
        gemm_trace::Span span(tt, gemm_trace::kPackBOwn);
        pack_b<T, NR>(ks, own, g, b, jc, jn - jc, pc, kc);
        return own;
      };
      std::atomic<index_t>& next = counts[2 * ph];
      std::atomic<index_t>& done = counts[2 * ph + 1];
      for (index_t x; (x = next.fetch_add(1, std::memory_order_relaxed)) < npieces;) {
        // Piece x: unit u whole (x < nwhole), or the ((x - nwhole) % nsub)-th sub_rows rows of tail unit u.
        const index_t u = x < nwhole ? x : nwhole + (x - nwhole) / nsub;
        const index_t ui0 = (u / ug.nb) * ug.rows, umc = std::min(ug.rows, M - ui0);
        const index_t i0 = x < nwhole ? ui0 : ui0 + (x - nwhole) % nsub * sub_rows;
        const index_t mc = x < nwhole ? umc : std::min(sub_rows, ui0 + umc - i0);
        const index_t j0 = n0 + (u % ug.nb) * ug.cols, j1 = std::min(j0 + ug.cols, n1);
        T* ap = static_cast<T*>(tl_pack_a.get(static_cast<size_t>(ug.rows * kc_max) * sizeof(T)));
        if (mc <= 0) {  // (a piece past the last row of a short unit)
          done.fetch_add(1, std::memory_order_acq_rel);
          continue;
        }
        if (tt) ++tt->units;
        for (index_t pc = pg; ap && pc < pend && !out_of_memory.load(std::memory_order_relaxed); pc += KC) {
          const index_t kc = std::min(KC, K - pc);
          {
            gemm_trace::Span span(tt, gemm_trace::kPackA);
            pack_a_block<T, MR>(ks, ap, g, a, rows_a, i0, mc, pc, kc);
          }
          // Column ranges are multiples of NR but not of NC: a range starting inside an NC block uses that
          // block's micro-panels from its start column on.
          for (index_t jc = j0; jc < j1;) {
            const index_t jb0 = jc / NC * NC, jnext = std::min(j1, jb0 + NC);
            const T* bp = b_panels(pc, kc, jb0, jc, jnext);
            if (!bp) {
              out_of_memory = true;
              break;
            }
            gemm_trace::Span span(tt, gemm_trace::kKernel);
            block_kernel<T, MR, NR>(g, ks, rows_a, ap, a, i0, mc, pc, kc, pc == 0, bp, c, jc, jnext - jc);
            jc = jnext;
          }
        }
        if (!ap) out_of_memory = true;
        done.fetch_add(1, std::memory_order_acq_rel);  // (after this unit's last read of the slab buffer)
      }
    }
    gemm_trace::Call::leave(tt, trace ? trace->t0() : 0);
  }
  if (out_of_memory) throw std::bad_alloc();
}

// ------------------------------------------------------------------ depth split

// Small C, long depth: the GPT's weight gradients dW = X^T dY (M, N = 128..512,
// K = batch x time = 2048). Cut by rows or columns among threads, each thread
// would pack all of the depth of the operand it shares, for a sliver of C; on
// one thread, MC / NC blocks smaller than C would re-pack A or B. Instead the
// depth is cut into chunks of kDepthChunk, a constant, so the cut (and the
// summation order of every element of C) is the same on any thread count:
// each chunk is one unit, which packs A and B once per depth pass over the
// whole of C (one row block of all M rows, NC-wide column blocks) and writes
// its own partial product (M x N, alpha 1, no bias); then the partials are
// added in chunk order, and alpha, the bias and beta * C applied, rows split
// among the threads. Bits are identical on 1, 2, 3 threads
// (tests/kernels/test_gemm.py, test_depth_split); the cost is writing and re-reading
// K / kDepthChunk partial C's, small next to the product when C is small
// (kSplitMaxC) and K long (use_depth_split).
// On by default (_C.set_gemm_depth_split(False) turns it off for A/B runs).
// Quiet-machine A/B (2026-12-06 18:26 UTC, dev/gemm_dw_bench.py, wall GFLOP/s
// best of 9, alternating): 2 threads, 128x128 / 128x384 / 128x512 with K 2048:
// 186-203 / 189-213 / 184-197 split vs 128-144 / 146-168 / 148-150 by the
// plans above (PyTorch 183-213 / 197-224 / 196); 512x128 and 384x384 level.
// 1 thread: 0-4% behind the plans (the partials' writes and the final sum).
// See dev/gemm_notes.md, "Weight-gradient shapes".
// While a pass computes, its micro-kernel calls prefetch the next pass's rows of
// A and B into L2 (L2Ahead, one line per k step: Kernels::micro_pf, AVX-512),
// where they are contiguous (A stored (K, M), B (K, N): the dW shapes): the
// packing of the next pass then reads L2, not L3 with no FMAs to overlap.
// Paired A/B (1 thread, the five L4 C128 dW shapes): +2-8% median, faster in
// 71-86% of rounds; 2 threads +3-17% (dev/gemm_notes.md, "Short depth").
constexpr index_t kDepthChunk = 512;
constexpr index_t kSplitMaxC = index_t(256) << 10;      // elements of C (1 MiB of float)
constexpr index_t kSplitMaxParts = index_t(4) << 20;   // elements of all partials (16 MiB of float)

template <class T>
static bool use_depth_split(const GemmArgs<T>& g) {
  const index_t mn = g.M * g.N;
  return g.batch == 1 && g.K >= 2 * kDepthChunk && mn <= kSplitMaxC && 4 * mn <= g.K * g.K &&
         ceil_div(g.K, kDepthChunk) * mn <= kSplitMaxParts;
}

// The partial C's of run_depth_split: the calling thread's.
static thread_local Scratch tl_partials;

template <class T, int MR, int NR>
static void run_depth_split(const GemmArgs<T>& g, const Kernels<T>& ks, index_t KC, index_t NC) {
  const index_t M = g.M, N = g.N, K = g.K, MN = M * N;
  const index_t nchunks = ceil_div(K, kDepthChunk);
  // Depth passes inside a chunk: as few as KC allows, of equal depth (a chunk of
  // 512 with KC 384 runs as 2 x 256, not 384 + 128).
  const index_t npass = ceil_div(kDepthChunk, KC), kc_max = ceil_div(kDepthChunk, npass);
  const index_t nc_max = std::min(NC, round_up(N, NR));
  T* parts = static_cast<T*>(tl_partials.get(static_cast<size_t>(nchunks * MN) * sizeof(T)));
  if (!parts) throw std::bad_alloc();
  // Rows of C per unit of the final sum: ~16 KiB of C.
  const index_t sum_rows = std::max<index_t>(1, (index_t(4096) + N - 1) / N);
  const index_t sum_units = ceil_div(M, sum_rows);
  const int nt = static_cast<int>(std::min<index_t>(threads_for(M * N * K, kGrainFma), nchunks));
  std::atomic<bool> out_of_memory{false};

  GemmArgs<T> gp = g;  // the chunks' products: plain, into their partials (row stride N)
  gp.alpha = T(1);
  gp.beta = T(0);
  gp.bias = nullptr;
  gp.ldc = N;

  std::unique_ptr<gemm_trace::Call> trace(gemm_trace::path() ? new gemm_trace::Call("depth_split", M, N, K, nt)
                                                              : nullptr);
#if defined(PYENGINE_OPENMP)
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
  {
    gemm_trace::Thread* tt = gemm_trace::enter(trace.get(), vm::thread_id());
#if defined(PYENGINE_OPENMP)
#pragma omp for schedule(dynamic, 1) nowait
#endif
    for (index_t u = 0; u < nchunks; ++u) {
      T* ap = static_cast<T*>(tl_pack_a.get(static_cast<size_t>(round_up(M, MR) * kc_max) * sizeof(T)));
      T* bp = static_cast<T*>(tl_pack_b.get(static_cast<size_t>(nc_max * kc_max) * sizeof(T)));
      if (!ap || !bp) {
        out_of_memory = true;
        continue;
      }
      const index_t p0 = u * kDepthChunk, p1 = std::min(K, p0 + kDepthChunk);
      const index_t np = ceil_div(p1 - p0, kc_max);
      T* part = parts + u * MN;
      if (tt) ++tt->units;
      for (index_t q = 0, pc = p0; q < np; ++q) {
        const index_t kc = ceil_div(p1 - pc, np - q);
        {
          gemm_trace::Span span(tt, gemm_trace::kPackA);
          pack_a<T, MR>(ks, ap, g, g.a, 0, M, pc, kc);
        }
        // The next depth pass's rows of A and B (this chunk's next, or the next chunk's first: on one thread
        // the data the next pass packs) into L2 while this pass computes, where they are contiguous.
        L2Ahead ahead;
        const index_t pn = pc + kc, kn = std::min(kc, K - pn), sz = static_cast<index_t>(sizeof(T));
        if (kn > 0 && g.trans_a) ahead.add(g.a + pn * g.lda, (kn - 1) * g.lda * sz + M * sz);
        if (kn > 0 && !g.trans_b) ahead.add(g.b + pn * g.ldb, (kn - 1) * g.ldb * sz + N * sz);
        for (index_t jc = 0; jc < N; jc += NC) {
          const index_t nc = std::min(NC, N - jc);
          {
            gemm_trace::Span span(tt, gemm_trace::kPackB);
            pack_b<T, NR>(ks, bp, g, g.b, jc, nc, pc, kc);
          }
          gemm_trace::Span span(tt, gemm_trace::kKernel);
          block_kernel<T, MR, NR>(gp, ks, false, ap, nullptr, 0, M, pc, kc, pc == p0, bp, part, jc, nc, &ahead);
        }
        pc += kc;
      }
    }
    {
      gemm_trace::Span span(tt, gemm_trace::kBarrier);
#if defined(PYENGINE_OPENMP)
#pragma omp barrier
#endif
    }
    // (every partial is complete)
    {
      gemm_trace::Span sum_span(tt, gemm_trace::kSum);
#if defined(PYENGINE_OPENMP)
      // (dynamic: a thread the OS holds back leaves its rows to the others; each element's sum order is fixed)
#pragma omp for schedule(dynamic, 1)
#endif
      for (index_t r = 0; r < sum_units; ++r) {
        for (index_t i = r * sum_rows; i < std::min(M, (r + 1) * sum_rows); ++i) {
          T* ci = g.c + i * g.ldc;
          T* p = parts + i * N;  // the sum gathers in chunk 0's partial: ((p0 + p1) + p2) + ...
          for (index_t q = 1; q < nchunks; ++q) {
            const T* pq = p + q * MN;
            for (index_t j = 0; j < N; ++j) p[j] += pq[j];
          }
          for (index_t j = 0; j < N; ++j) {
            T val = g.alpha * p[j];
            if (g.bias) val += g.bias[j];
            if (g.beta != T(0)) val += g.beta * ci[j];
            ci[j] = val;
          }
        }
      }
    }
    gemm_trace::Call::leave(tt, trace ? trace->t0() : 0);
  }
  if (out_of_memory) throw std::bad_alloc();
}

// ------------------------------------------------------------------ small problems

// One thread, one depth pass (K <= KC) and B small enough to be re-read in place from L1 / L2 for every strip
// of A: Kernels::small (small_avx512 in gemm_avx512.cpp) runs each matrix in one call, nothing packed unless B
// is transposed (then all of B once per matrix), no units, no scratch for A. Same bits as the packed path (one depth pass there
// too). set_gemm_small(False) turns it off for A/B runs. B up to 128 KiB (128^3 float, 128^3 double, 160^3
// float, M256 K256 N128 were 3-13% faster than packed, best of 25 alternating rounds, 1 thread; 64^3 float
// 4.6 -> 4.0 us: dev/gemm_notes.md, "Small problems").
constexpr index_t kSmallMaxBBytes = index_t(128) << 10;

template <class T>
static bool use_small(const GemmArgs<T>& g, const Kernels<T>& ks, index_t KC) {
  return ks.small != nullptr && g_small.load(std::memory_order_relaxed) && g.K >= 1 && g.K <= KC &&
         g.K * g.N * static_cast<index_t>(sizeof(T)) <= kSmallMaxBBytes &&
         threads_for(g.batch * g.M * g.N * g.K, kGrainFma) == 1;
}

template <class T, int NR>
static void run_small(const GemmArgs<T>& g, const Kernels<T>& ks) {
  T* bp = nullptr;
  if (g.trans_b) {
    bp = static_cast<T*>(tl_pack_b.get(static_cast<size_t>(round_up(g.N, NR) * g.K) * sizeof(T)));
    if (!bp) throw std::bad_alloc();
  }
  SmallArgs<T> s{g.M, g.N, g.K, nullptr, g.trans_a ? 1 : g.lda, g.trans_a ? g.lda : 1, g.trans_a, nullptr,
                 g.trans_b ? NR : g.ldb, g.trans_b ? NR * g.K : NR, nullptr, g.ldc, g.alpha, g.beta, g.bias};
  for (index_t bi = 0; bi < g.batch; ++bi) {
    s.a = g.a + batch_offset(g, bi, g.stride_a, g.istride_a);
    s.b = g.b + batch_offset(g, bi, g.stride_b, g.istride_b);
    s.c = g.c + batch_offset(g, bi, g.stride_c, g.istride_c);
    if (g.trans_b) {
      if (bi == 0 || g.stride_b != 0 || g.istride_b != 0) pack_b<T, NR>(ks, bp, g, s.b, 0, g.N, 0, g.K);
      s.b = bp;
    }
    ks.small(s);
  }
}

template <class T, int MR, int NR>
static void run(const GemmArgs<T>& g, const Kernels<T>& ks, const GemmBlocking& blk) {
  const index_t M = g.M, N = g.N, K = g.K;
  if (g.batch <= 0 || M <= 0 || N <= 0) return;
  if (M == 1 || N == 1) {
    run_gemv(g, ks);
    return;
  }
  const index_t KC = std::max<index_t>(blk.kc, 1);
  if (use_small(g, ks, KC)) {
    run_small<T, NR>(g, ks);
    return;
  }
  const index_t NC = std::max<index_t>(round_up(blk.nc, NR), NR);
  // Narrow C (N up to kRowsAMaxN): a packed A block would serve only a few B
  // micro-panels, so the copy costs more than it saves; read A in place instead.
  // Only for short rows (lda up to 2 KiB): the MR row streams then stay apart in
  // L1 and the prefetchers keep up; with longer rows it measured slower than
  // packing (K = 768: 114 vs 133 GFLOP/s; K = 4096: 93 vs 124). Rows of up to
  // kRowsAShortLdBytes: in place whatever N (see there).
  const index_t lda_bytes = g.lda * static_cast<index_t>(sizeof(T));
  const bool short_rows = g_short_rows_a.load() && lda_bytes <= kRowsAShortLdBytes && N <= NC;
  const bool rows_a =
      ks.micro_rows != nullptr && !g.trans_a && ((N <= kRowsAMaxN && lda_bytes <= 2048) || short_rows);
  index_t MC = std::max<index_t>(round_up(blk.mc, MR), MR);
  if (rows_a && short_rows) MC = std::max(MC, round_up(std::min(M, kRowsAMaxMC), MR));
  const Plan pl = plan_units(g.batch, M, N, K, MR, NR, MC);

  // Packing buffer sizes (elements); kc <= KC, the B block is at most NC wide.
  const index_t kc_max = std::max<index_t>(std::min(K, KC), 1);
  // One matrix (or a few) tall enough to cut by rows among the threads: share
  // one packed B (run_shared_b) rather than pack it once per row block.
  if (use_depth_split(g) && g_depth_split.load()) {
    run_depth_split<T, MR, NR>(g, ks, KC, NC);
    return;
  }
  // Not when A is stored transposed and all of M fits one row block (pl.mb == 1: the plans above then pack
  // each B column once anyway, in L2-sized blocks the packing thread reads at once, and A once per thread):
  // the weight gradients dW = X^T dY with M 384..768, K 2048 ran 1.15-1.3x faster on 2 threads that way
  // (paired A/B, dev/gemm_notes.md, "Two threads, third pass"); with A not transposed (512^3, 768^3) the
  // shared B stays ahead.
  const int units_per_thread = g_shared_b.load();
  const bool one_block_ta = g.trans_a && pl.mb == 1 && g.batch == 1;
  if (pl.threads > 1 && K > 0 && g.batch < 2 * pl.threads && M >= 8 * MR && units_per_thread > 0 && !one_block_ta) {
    run_shared_b<T, MR, NR>(g, ks, KC, MC, NC, rows_a, pl.threads, units_per_thread);
    return;
  }
  const size_t a_elems = static_cast<size_t>(pl.mc * kc_max);
  const size_t b_elems = static_cast<size_t>(std::min(NC, round_up(pl.ncols, NR)) * kc_max);
  std::atomic<bool> out_of_memory{false};

  std::unique_ptr<gemm_trace::Call> trace(gemm_trace::path() ? new gemm_trace::Call("units", M, N, K, pl.threads)
                                                              : nullptr);
  auto do_unit = [&](index_t u) {
    gemm_trace::Thread* tt = trace ? trace->resume(vm::thread_id()) : nullptr;
    if (tt) ++tt->units;
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
    const T* a = g.a + batch_offset(g, bi, g.stride_a, g.istride_a);
    const T* b = g.b + batch_offset(g, bi, g.stride_b, g.istride_b);
    T* c = g.c + batch_offset(g, bi, g.stride_c, g.istride_c);

    // K == 0 still makes one (empty) pass, which applies beta and the bias.
    for (index_t pc = 0; pc < K || pc == 0; pc += KC) {
      const index_t kc = std::min(KC, K - pc);
      {
        gemm_trace::Span span(tt, gemm_trace::kPackA);
        pack_a_block<T, MR>(ks, ap, g, a, rows_a, i0, mc, pc, kc);
      }
      for (index_t jc = j0; jc < j1; jc += NC) {
        const index_t nc = std::min(NC, j1 - jc);
        {
          gemm_trace::Span span(tt, gemm_trace::kPackB);
          pack_b<T, NR>(ks, bp, g, b, jc, nc, pc, kc);
        }
        gemm_trace::Span span(tt, gemm_trace::kKernel);
        block_kernel<T, MR, NR>(g, ks, rows_a, ap, a, i0, mc, pc, kc, pc == 0, bp, c, jc, nc);
      }
      if (K == 0) break;
    }
    gemm_trace::Call::leave(tt, trace ? trace->t0() : 0);
  };

  for_units(pl.units, pl.threads, do_unit);
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
    case Isa::avx512: {
      static const Kernels<T> ks = kernels_avx512<T>();
      run<T, TileAvx512<T>::MR, TileAvx512<T>::NR>(g, ks, blocking_ref(Isa::avx512, dt));
      return;
    }
    case Isa::avx2: {
      static const Kernels<T> ks = kernels_avx2<T>();
      run<T, TileAvx2<T>::MR, TileAvx2<T>::NR>(g, ks, blocking_ref(Isa::avx2, dt));
      return;
    }
#endif
    default: {
      static const Kernels<T> ks = kernels_generic<T>();
      run<T, TileGeneric<T>::MR, TileGeneric<T>::NR>(g, ks, blocking_ref(Isa::generic, dt));
      return;
    }
  }
}

template void gemm<float>(const GemmArgs<float>&);
template void gemm<double>(const GemmArgs<double>&);

GemmBlocking gemm_blocking(Isa level, char dtype) { return gemm_detail::blocking_ref(level, dtype); }

void set_gemm_blocking(Isa level, char dtype, index_t mc, index_t kc, index_t nc) {
  GemmBlocking& b = gemm_detail::blocking_ref(level, dtype);
  b.mc = std::max<index_t>(round_up(std::max<index_t>(mc, 1), b.mr), b.mr);
  b.kc = std::max<index_t>(kc, 1);
  b.nc = std::max<index_t>(round_up(std::max<index_t>(nc, 1), b.nr), b.nr);
}

int set_gemm_shared_b(int units_per_thread) { return gemm_detail::g_shared_b.exchange(units_per_thread); }

bool set_gemm_own_b(bool on) { return gemm_detail::g_own_b.exchange(on); }

bool set_gemm_depth_split(bool on) { return gemm_detail::g_depth_split.exchange(on); }

bool set_gemm_short_rows_a(bool on) { return gemm_detail::g_short_rows_a.exchange(on); }

bool set_gemm_small(bool on) { return gemm_detail::g_small.exchange(on); }

}  // namespace pe
