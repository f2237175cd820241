// Small GEMMs on one thread (issue 16 item 1): the whole product in one pass, nothing packed when B is not
// transposed.
//
// At 64^3 the packed path (gemm.cpp) spends a visible share of a ~4 us call outside the FMAs: it packs all of B
// (16 KiB), packs the last, partial strip of A, asks for its scratch buffers and plans units, and its 14-row
// strips leave one 8-row tile (64 = 4 x 14 + 8). When A and B fit in L1 / L2 none of that pays for itself:
//  * B not transposed: the NR-wide row segments of B are contiguous in its rows, so the tile loads them in
//    place (row stride ldb; masked loads for a last, narrow panel). B transposed: packed once per matrix, whole
//    (K x N, the one copy), then read like any packed panel.
//  * A in place either way: its values at depth p are MR broadcasts, from MR rows (A stored (M, K)) or from MR
//    consecutive values of row p (A stored (K, M)).
//  * the rows are cut into strips of equal height (64 = 5 strips of 13 / 12 rows), each strip's tile with
//    exactly its rows (no padded rows: in place, a padded row would read past A), so no thin last strip;
//  * all of K in one pass: C is written once, alpha, bias and beta applied in registers.
// The summation order of every element is the packed path's for K <= KC (one depth pass: p ascending, one FMA
// chain per element); results match it bit for bit then (tests/kernels/test_gemm_small.py).
//
// The driver side (when to take this path, the batch loop, B's packing) is run_small in gemm.cpp; the tiles
// below are the AVX-512 instance (Kernels::small), included by gemm_avx512.cpp only.
#pragma once
#include <array>
#include <utility>

#include "cpu/gemm_kernel.h"
#include "cpu/simd.h"

#if PE_X86
#include <immintrin.h>

namespace pe {
namespace gemm_detail {
namespace small_avx512 {

template <class T>
using Vec = simd::Vec<T, Isa::avx512>;

// One ROWS x (NV vectors) tile of C over the whole depth k. A: op(A)(i, p) at a[i*a_rs + p] (kColsA false:
// A stored (M, K), a_rs = lda) or a[i + p*a_ps] (kColsA: A stored (K, M), a_ps = lda). B: the tile's row p of
// op(B) at b + p*b_ps (in place: b_ps = ldb; packed: NR). n <= NV*W columns are valid (loaded masked, stored
// masked); every one of the ROWS rows is. kMasked: n < NV*W. Full tiles use plain loads and stores: a masked
// load costs an extra ALU uop on the FMA ports (64^3: ~7% slower with masked B loads on every tile); in a
// masked tile only the last vector's B loads are (the others are full: n > (NV-1)*W).
template <class T, int ROWS, int NV, bool kColsA, bool kMasked>
PE_TARGET_AVX512 void tile(index_t k, const T* a, index_t a_st, const T* b, index_t b_ps, T* c, index_t ldc, int n,
                           T alpha, T beta, const T* bias) {
  using S = Vec<T>;
  using V = typename S::reg;
  constexpr int W = S::W;
  typename S::mask mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const int left = n - v * W;
    mask[v] = S::mask_for(left < 0 ? 0 : left);
  }
  if (beta != T(0)) {  // C is read after the k loop: bring its rows in now
    constexpr int kLine = 64 / static_cast<int>(sizeof(T));
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV * W; j += kLine) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + j), _MM_HINT_T0);
  }

  V acc[ROWS][NV];
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();

#pragma GCC unroll 2
  for (index_t p = 0; p < k; ++p) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = kMasked && v == NV - 1 ? S::load_part(b + v * W, mask[v]) : S::load(b + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      const V ai = S::set1(kColsA ? a[i] : a[i * a_st]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fmadd(ai, bv[v], acc[i][v]);
    }
    a += kColsA ? a_st : 1;
    b += b_ps;
  }

  const V va = S::set1(alpha), vbeta = S::set1(beta);
  V vbias[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v)
    vbias[v] = !bias ? S::zero() : kMasked ? S::load_part(bias + v * W, mask[v]) : S::load(bias + v * W);
  const bool read_c = beta != T(0), beta_one = beta == T(1);
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
    T* ci = c + i * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      V r = S::fmadd(va, acc[i][v], vbias[v]);
      if (read_c) {
        const V old = kMasked ? S::load_part(ci + v * W, mask[v]) : S::load(ci + v * W);
        r = beta_one ? S::add(r, old) : S::fmadd(vbeta, old, r);
      }
      if (kMasked) S::store_part(ci + v * W, mask[v], r);
      else S::store(ci + v * W, r);
    }
  }
}

template <class T>
using TileFn = void (*)(index_t, const T*, index_t, const T*, index_t, T*, index_t, int, T, T, const T*);

// The tiles for strips of 1..MR rows (index rows - 1).
template <class T, int NV, bool kColsA, bool kMasked, size_t... R>
constexpr std::array<TileFn<T>, sizeof...(R)> row_tiles(std::index_sequence<R...>) {
  return {{&tile<T, static_cast<int>(R) + 1, NV, kColsA, kMasked>...}};
}

template <class T>
PE_TARGET_AVX512 void run(const SmallArgs<T>& s) {
  constexpr int MR = TileAvx512<T>::MR, NR = TileAvx512<T>::NR, W = Vec<T>::W;
  static_assert(NR == 2 * W, "two vectors per tile row");
  using Seq = std::make_index_sequence<MR>;
  // t[cols_a][masked][nv - 1][rows - 1]
  static constexpr std::array<TileFn<T>, MR> t[2][2][2] = {
      {{row_tiles<T, 1, false, false>(Seq{}), row_tiles<T, 2, false, false>(Seq{})},
       {row_tiles<T, 1, false, true>(Seq{}), row_tiles<T, 2, false, true>(Seq{})}},
      {{row_tiles<T, 1, true, false>(Seq{}), row_tiles<T, 2, true, false>(Seq{})},
       {row_tiles<T, 1, true, true>(Seq{}), row_tiles<T, 2, true, true>(Seq{})}}};
  const bool cols_a = s.cols_a;  // A stored (K, M): a strip's values at depth p are consecutive
  const index_t a_st = cols_a ? s.a_ps : s.a_rs;
  const index_t strips = (s.M + MR - 1) / MR, base = s.M / strips, extra = s.M % strips;
  index_t i0 = 0;
  for (index_t r = 0; r < strips; ++r) {
    const int rows = static_cast<int>(base + (r < extra ? 1 : 0));
    const T* a = s.a + i0 * s.a_rs;
    T* c = s.c + i0 * s.ldc;
    for (index_t j0 = 0; j0 < s.N; j0 += NR) {
      const int n = static_cast<int>(std::min<index_t>(NR, s.N - j0));
      const int nv = n > W ? 2 : 1;
      t[cols_a][n < nv * W][nv - 1][rows - 1](s.K, a, a_st, s.b + j0 / NR * s.b_js, s.b_ps, c + j0, s.ldc, n, s.alpha, s.beta,
                                 s.bias ? s.bias + j0 : nullptr);
    }
    i0 += rows;
  }
}

}  // namespace small_avx512
}  // namespace gemm_detail
}  // namespace pe

#endif  // PE_X86
