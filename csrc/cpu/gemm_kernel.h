// Internal to the GEMM family: the micro-kernel contract shared by gemm.cpp
// (blocking, packing, threading) and the per-ISA micro-kernel files.
#pragma once
#include "common.h"

namespace pe {
namespace gemm_detail {

// Micro-tile shapes, MR x NR, per ISA and dtype. NR runs along a row of C (the
// SIMD direction: NR / lanes vector registers per row), MR along its columns
// (one broadcast of A per row). The register budget decides them:
//   AVX-512 (32 zmm): 14 x 2 accumulators + 2 B vectors + 1 broadcast = 31.
//   AVX2    (16 ymm):  6 x 2 accumulators + 2 B vectors + 1 broadcast = 15.
//   generic (plain C++, 16 xmm on SSE2/NEON): 4 x 2 accumulators after the
//                     compiler vectorises the NR loop.
// 28 (or 12) independent FMA chains cover the FMA latency (4 cycles) times the
// FMA ports (2), so the kernel can run at peak if its loads keep up.
template <class T> struct TileAvx512;
template <> struct TileAvx512<float> { static constexpr int MR = 14, NR = 32; };
template <> struct TileAvx512<double> { static constexpr int MR = 14, NR = 16; };
template <class T> struct TileAvx2;
template <> struct TileAvx2<float> { static constexpr int MR = 6, NR = 16; };
template <> struct TileAvx2<double> { static constexpr int MR = 6, NR = 8; };
template <class T> struct TileGeneric;
template <> struct TileGeneric<float> { static constexpr int MR = 4, NR = 8; };
template <> struct TileGeneric<double> { static constexpr int MR = 4, NR = 4; };

// The micro-kernel contract. a: packed A micro-panel, k steps of MR values
// (op(A) column p of the tile's rows at a[p*MR .. p*MR+MR)); b: packed B
// micro-panel, k steps of NR values. Both are zero-padded to the full tile, so
// the kernel always computes a full MR x NR product in registers; only the
// store is bounded by m <= MR, n <= NR:
//   C[i][j] = alpha * sum_p a[p*MR+i] * b[p*NR+j] + bias[j] + beta * C[i][j]
// for i < m, j < n. beta == 0 never reads C; bias may be null (no bias). k may
// be 0 (the tile is then alpha*0 + bias + beta*C).
template <class T>
using MicroKernel = void (*)(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n, T alpha,
                             T beta, const T* bias);

// The micro-kernel with a software prefetch to L2 of pf_lines 64-byte lines from
// pf (one per k step), for data a later block will read: the next depth pass's
// operands while this one computes.
template <class T>
using MicroPfKernel = void (*)(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n, T alpha, T beta,
                               const T* bias, const char* pf, index_t pf_lines);

// The same product for a full MR-row tile, with A read in place from the rows
// of the stored (not transposed) A: op(A)(i, p) = a[i*lda + p]. Used when N is
// small, where packing A would be amortised over only a few B micro-panels.
template <class T>
using MicroRowsKernel = void (*)(index_t k, const T* a, index_t lda, const T* b, T* c, index_t ldc, int n,
                                 T alpha, T beta, const T* bias);

// Packing routines (see gemm.cpp): copy one micro-panel of op(A) or op(B),
// `valid` of its W rows/columns from the source, zero padding for the rest.
//   interleave: dst[p*W + r] = src[r*ld + p]   (source rows run along p)
//   copy:       dst[p*W + r] = src[p*ld + r]   (source rows run along r)
template <class T>
using PackFn = void (*)(T* dst, const T* src, index_t ld, int valid, index_t kc);

// Matrix-vector loops for M == 1 or N == 1 (gemm_gemv.h):
//   dots:  y[i] = sum_p x[i*ldx + p] * v[p],  i < n
//   axpys: y[j] = sum_p v[p] * x[p*ldx + j],  j < n
template <class T>
using GemvFn = void (*)(const T* x, index_t ldx, index_t n, const T* v, index_t k, T* y);

// One whole small matrix in one pass (small_avx512 in gemm_avx512.cpp; run_small in gemm.cpp):
//   C = alpha * op(A) @ op(B) + bias + beta * C, C (M, N) with row stride ldc,
//   op(A)(i, p) = a[i*a_rs + p*a_ps] (one of the two strides is 1; cols_a: a_rs == 1),
//   op(B)(p, j) = b[(j / NR)*b_js + p*b_ps + j % NR] (in place: b_js = NR, b_ps = ldb; packed: NR*K, NR).
template <class T>
struct SmallArgs {
  index_t M, N, K;
  const T* a;
  index_t a_rs, a_ps;
  bool cols_a;
  const T* b;
  index_t b_ps, b_js;
  T* c;
  index_t ldc;
  T alpha, beta;
  const T* bias;
};
template <class T>
using SmallKernel = void (*)(const SmallArgs<T>& s);

// What one ISA provides to the driver in gemm.cpp.
template <class T>
struct Kernels {
  MicroKernel<T> micro;
  PackFn<T> a_interleave;  // A stored (M, K): W = MR
  PackFn<T> a_copy;        // A stored (K, M): W = MR
  PackFn<T> b_copy;        // B stored (K, N): W = NR
  PackFn<T> b_interleave;  // B stored (N, K): W = NR
  GemvFn<T> dots;
  GemvFn<T> axpys;
  MicroRowsKernel<T> micro_rows = nullptr;  // optional (AVX-512 only)
  MicroPfKernel<T> micro_pf = nullptr;      // optional (AVX-512 only)
  SmallKernel<T> small = nullptr;           // optional (AVX-512 only)
};

// Plain C++ packers, used by the generic and AVX2 paths.
template <class T, int W>
void pack_interleave(T* dst, const T* src, index_t ld, int rows, index_t kc) {
  // Blocked by 8 steps of p, so the 8 destination rows being written stay in L1.
  for (index_t p0 = 0; p0 < kc; p0 += 8) {
    const int pb = kc - p0 < 8 ? static_cast<int>(kc - p0) : 8;
    T* d = dst + p0 * W;
    for (int r = 0; r < rows; ++r) {
      const T* s = src + r * ld + p0;
      for (int pp = 0; pp < pb; ++pp) d[pp * W + r] = s[pp];
    }
    for (int pp = 0; pp < pb; ++pp)
      for (int r = rows; r < W; ++r) d[pp * W + r] = T(0);
  }
}

template <class T, int W>
void pack_copy(T* dst, const T* src, index_t ld, int cols, index_t kc) {
  for (index_t p = 0; p < kc; ++p) {
    const T* s = src + p * ld;
    T* d = dst + p * W;
    if (cols == W) {
      for (int r = 0; r < W; ++r) d[r] = s[r];
    } else {
      for (int r = 0; r < cols; ++r) d[r] = s[r];
      for (int r = cols; r < W; ++r) d[r] = T(0);
    }
  }
}

template <class T> Kernels<T> kernels_generic();
#if PE_X86
template <class T> Kernels<T> kernels_avx2();
template <class T> Kernels<T> kernels_avx512();
#endif

}  // namespace gemm_detail
}  // namespace pe
