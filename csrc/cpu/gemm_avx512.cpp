// AVX-512 micro-kernels of the GEMM family (the algorithm is described in gemm.cpp).
//
// Register tile MR x NR = 14 x 32 floats / 14 x 16 doubles: 28 zmm accumulators,
// 2 zmm for the row of B at step p, and one register for the broadcast of each
// A value (a load-port broadcast, vbroadcastss/sd), i.e. per k step: 2 vector
// loads, 14 broadcast loads, 28 FMAs, 31 of the 32 zmm registers. The two FMA
// ports need 2 x 4 (latency) independent chains; 28 leave room for load delays.
// Also here: the AVX-512 packers (in-register transposes) and the AVX-512 build
// of the matrix-vector loops. Only the functions below carry the AVX-512 target
// attribute; they are called only when pe::isa() says the CPU has AVX-512.
#include "cpu/gemm_gemv.h"
#include "cpu/gemm_kernel.h"
#include "cpu/simd.h"

#if PE_X86
#include <immintrin.h>

#include <array>
#include <utility>

namespace pe {
namespace gemm_detail {
namespace {

template <class T>
using Vec = simd::Vec<T, Isa::avx512>;

// The register tile: ROWS x (NV vectors) of the MR x NR micro-tile. The full
// tile is ROWS = MR, NV = NR / W; narrower instances serve edge tiles (the last
// rows of M, or N <= W), so that e.g. M = 64 = 4*14 + 8 does not pay a full
// 14-row tile for its last 8 rows. The packed panels keep their full strides
// (MR and NR values per k step) whatever the instance.
// kRowsA: A is read in place from ROWS rows of the stored matrix (row stride
// lda, op(A)(i, p) = a[i*lda + p]) instead of from a packed micro-panel.
// kSmall (the one-pass small path, small_avx512 below; flags): kSmallB: B read
// with row stride b_ps (in place, or a whole packed matrix) and m == ROWS;
// kSmallMask: n < NV*W, the last vector's B loads masked (else every load and
// store is a plain one: masked B loads on every tile measured 64^3 4.22 vs
// 4.04 us, likely an extra ALU uop per masked load on the FMA ports);
// kSmallColsA: A in place, stored (K, M): op(A)(i, p) = a[i + p*lda].
enum : int { kSmallB = 1, kSmallMask = 2, kSmallColsA = 4 };
template <class T, int ROWS, int NV, bool kRowsA = false, bool kPf = false, int kSmall = 0>
PE_TARGET_AVX512 void micro_tile(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n, T alpha,
                                 T beta, const T* bias, index_t lda = 0, const char* pf = nullptr,
                                 index_t pf_lines = 0, index_t b_ps = 0) {
  using S = Vec<T>;
  using V = typename S::reg;
  constexpr int MR = TileAvx512<T>::MR, NR = TileAvx512<T>::NR, W = S::W;
  static_assert(ROWS <= MR && NV * W <= NR, "the tile must fit the packed panels");

  // C is needed only after the k loop; start bringing its rows in now (every
  // 64-byte line of each row: a full float row of the tile spans two lines).
  if (beta != T(0)) {
    constexpr int kLine = 64 / static_cast<int>(sizeof(T));
    for (int i = 0; i < m; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV * W; j += kLine)
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + j), _MM_HINT_T0);
  }

  V acc[ROWS][NV];
#pragma GCC unroll 32
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();

  // The masks bound the columns (all-ones on a full tile).
  typename S::mask mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    int left = n - v * W;
    mask[v] = S::mask_for(left < 0 ? 0 : left);
  }
  constexpr bool kColsA = (kSmall & kSmallColsA) != 0, kMaskB = (kSmall & kSmallMask) != 0;
  constexpr bool kPlain = (kSmall & kSmallB) != 0 && !kMaskB;  // a full small tile: no masked access

  // The hot loop: rank-1 update of the register tile per k step.
#pragma GCC unroll 2
  for (index_t p = 0; p < k; ++p) {
    V bv[NV];
    if (kPf && p < pf_lines) _mm_prefetch(pf + p * 64, _MM_HINT_T1);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = kMaskB && v == NV - 1 ? S::load_part(b + v * W, mask[v]) : S::load(b + v * W);
#pragma GCC unroll 32
    for (int i = 0; i < ROWS; ++i) {
      const V ai = S::set1(kRowsA ? a[i * lda] : a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fmadd(ai, bv[v], acc[i][v]);
    }
    a += kColsA ? lda : kRowsA ? 1 : MR;
    b += (kSmall & kSmallB) ? b_ps : NR;
  }

  // Epilogue: one code path for full and edge tiles; the masks bound the
  // columns and `i < m` the rows.
  const V va = S::set1(alpha), vbeta = S::set1(beta);
  V vbias[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v)
    vbias[v] = !bias ? S::zero() : kPlain ? S::load(bias + v * W) : S::load_part(bias + v * W, mask[v]);
  const bool read_c = beta != T(0), beta_one = beta == T(1);
#pragma GCC unroll 32
  for (int i = 0; i < ROWS; ++i) {
    if (i < m) {
      T* ci = c + i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        V r = S::fmadd(va, acc[i][v], vbias[v]);
        if (read_c) {
          const V old = kPlain ? S::load(ci + v * W) : S::load_part(ci + v * W, mask[v]);
          r = beta_one ? S::add(r, old) : S::fmadd(vbeta, old, r);
        }
        if (kPlain) S::store(ci + v * W, r);
        else S::store_part(ci + v * W, mask[v], r);
      }
    }
  }
}

}  // namespace

template <class T>
PE_TARGET_AVX512 void micro_avx512(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n,
                                   T alpha, T beta, const T* bias) {
  constexpr int MR = TileAvx512<T>::MR, W = Vec<T>::W, NV = TileAvx512<T>::NR / W;
  static_assert(NV == 2, "the dispatch below assumes NR = 2 vectors");
  if (n > W) {
    if (m > 8) micro_tile<T, MR, NV>(k, a, b, c, ldc, m, n, alpha, beta, bias);
    else if (m > 4) micro_tile<T, 8, NV>(k, a, b, c, ldc, m, n, alpha, beta, bias);
    else micro_tile<T, 4, NV>(k, a, b, c, ldc, m, n, alpha, beta, bias);
  } else {
    if (m > 8) micro_tile<T, MR, 1>(k, a, b, c, ldc, m, n, alpha, beta, bias);
    else if (m > 4) micro_tile<T, 8, 1>(k, a, b, c, ldc, m, n, alpha, beta, bias);
    else micro_tile<T, 4, 1>(k, a, b, c, ldc, m, n, alpha, beta, bias);
  }
}

// The same with the L2 prefetch of pf_lines lines from pf (see Kernels::micro_pf).
template <class T>
PE_TARGET_AVX512 void micro_pf_avx512(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n, T alpha,
                                      T beta, const T* bias, const char* pf, index_t pf_lines) {
  constexpr int MR = TileAvx512<T>::MR, W = Vec<T>::W, NV = TileAvx512<T>::NR / W;
  if (n > W) {
    if (m > 8) micro_tile<T, MR, NV, false, true>(k, a, b, c, ldc, m, n, alpha, beta, bias, 0, pf, pf_lines);
    else if (m > 4) micro_tile<T, 8, NV, false, true>(k, a, b, c, ldc, m, n, alpha, beta, bias, 0, pf, pf_lines);
    else micro_tile<T, 4, NV, false, true>(k, a, b, c, ldc, m, n, alpha, beta, bias, 0, pf, pf_lines);
  } else {
    if (m > 8) micro_tile<T, MR, 1, false, true>(k, a, b, c, ldc, m, n, alpha, beta, bias, 0, pf, pf_lines);
    else if (m > 4) micro_tile<T, 8, 1, false, true>(k, a, b, c, ldc, m, n, alpha, beta, bias, 0, pf, pf_lines);
    else micro_tile<T, 4, 1, false, true>(k, a, b, c, ldc, m, n, alpha, beta, bias, 0, pf, pf_lines);
  }
}

// A full MR-row tile with A read in place (see Kernels::micro_rows).
template <class T>
PE_TARGET_AVX512 void micro_rows_avx512(index_t k, const T* a, index_t lda, const T* b, T* c, index_t ldc, int n,
                                        T alpha, T beta, const T* bias) {
  constexpr int MR = TileAvx512<T>::MR, W = Vec<T>::W, NV = TileAvx512<T>::NR / W;
  if (n > W) micro_tile<T, MR, NV, true>(k, a, b, c, ldc, MR, n, alpha, beta, bias, lda);
  else micro_tile<T, MR, 1, true>(k, a, b, c, ldc, MR, n, alpha, beta, bias, lda);
}

// ------------------------------------------------------------------ small problems
// Kernels::small (run_small in gemm.cpp: one thread, one depth pass, B small): one whole matrix, nothing
// packed unless B is transposed. The NR-wide row segments of a B not transposed are contiguous in its rows, so
// the tiles load them in place (row stride ldb); a transposed B comes packed whole (K x N, row stride NR per
// panel). A is read in place either way: at depth p a strip's values are MR broadcasts from MR rows (A stored
// (M, K)) or MR consecutive values of row p (A stored (K, M)). The rows are cut into strips of equal height
// (64 = 13 + 13 + 13 + 13 + 12, not 4 x 14 + 8), each tile with exactly its strip's rows (in place, a padded
// row would read past A). All of K in one pass: C written once, alpha, bias and beta in registers; each element
// summed over p ascending in one FMA chain, as in the packed path's single depth pass (same bits).

namespace {

template <class T>
using SmallTile = void (*)(index_t, const T*, const T*, T*, index_t, int, int, T, T, const T*, index_t, const char*,
                           index_t, index_t);

// The tiles for strips of 1..MR rows (index rows - 1).
template <class T, int NV, int kFlags, size_t... R>
constexpr std::array<SmallTile<T>, sizeof...(R)> small_tiles(std::index_sequence<R...>) {
  return {{&micro_tile<T, static_cast<int>(R) + 1, NV, (kFlags & kSmallColsA) == 0, false, kFlags>...}};
}

}  // namespace

template <class T>
PE_TARGET_AVX512 void small_avx512(const SmallArgs<T>& s) {
  constexpr int MR = TileAvx512<T>::MR, NR = TileAvx512<T>::NR, W = Vec<T>::W;
  static_assert(NR == 2 * W, "two vectors per tile row");
  using Seq = std::make_index_sequence<MR>;
  constexpr int B = kSmallB, M = kSmallMask, C = kSmallColsA;
  // t[cols_a][masked][nv - 1][rows - 1]
  static constexpr std::array<SmallTile<T>, MR> t[2][2][2] = {
      {{small_tiles<T, 1, B>(Seq{}), small_tiles<T, 2, B>(Seq{})},
       {small_tiles<T, 1, B | M>(Seq{}), small_tiles<T, 2, B | M>(Seq{})}},
      {{small_tiles<T, 1, B | C>(Seq{}), small_tiles<T, 2, B | C>(Seq{})},
       {small_tiles<T, 1, B | M | C>(Seq{}), small_tiles<T, 2, B | M | C>(Seq{})}}};
  const index_t a_st = s.cols_a ? s.a_ps : s.a_rs;
  const index_t strips = (s.M + MR - 1) / MR, base = s.M / strips, extra = s.M % strips;
  index_t i0 = 0;
  for (index_t r = 0; r < strips; ++r) {
    const int rows = static_cast<int>(base + (r < extra ? 1 : 0));
    const T* a = s.a + i0 * s.a_rs;
    T* c = s.c + i0 * s.ldc;
    for (index_t j0 = 0; j0 < s.N; j0 += NR) {
      const int n = static_cast<int>(std::min<index_t>(NR, s.N - j0));
      const int nv = n > W ? 2 : 1;
      t[s.cols_a][n < nv * W][nv - 1][rows - 1](s.K, a, s.b + j0 / NR * s.b_js, c + j0, s.ldc, rows, n, s.alpha,
                                                 s.beta, s.bias ? s.bias + j0 : nullptr, a_st, nullptr, 0, s.b_ps);
    }
    i0 += rows;
  }
}

// ------------------------------------------------------------------ packing
// Same contract as pack_interleave / pack_copy in gemm_kernel.h. The interleave
// (a transpose: A without transpose, B with) is the expensive one in plain C++,
// one element at a time; here it moves L x L blocks (L = 16 floats / 8
// doubles) through an in-register transpose. Masked loads stop at the valid
// rows and at kc, masked stores at W, so nothing outside the panel is touched.

namespace {

template <class T, int W>
PE_TARGET_AVX512 void pack_interleave_avx512(T* dst, const T* src, index_t ld, int rows, index_t kc) {
  using S = Vec<T>;
  using V = typename S::reg;
  constexpr int L = S::W;
  for (int r0 = 0; r0 < W; r0 += L) {
    const typename S::mask smask = S::mask_for(W - r0);  // lanes of dst this group fills
    const int gr = rows - r0 < 0 ? 0 : (rows - r0 > L ? L : rows - r0);
    if (gr == 0) {  // rows of zero padding only
      for (index_t p = 0; p < kc; ++p) S::store_part(dst + p * W + r0, smask, S::zero());
      continue;
    }
    const T* s = src + r0 * ld;
    for (index_t p0 = 0; p0 < kc; p0 += L) {
      const int pn = kc - p0 < L ? static_cast<int>(kc - p0) : L;
      const typename S::mask lmask = S::mask_for(pn);
      V v[L];
#pragma GCC unroll 16
      for (int i = 0; i < L; ++i) v[i] = i < gr ? S::load_part(s + i * ld + p0, lmask) : S::zero();
      S::transpose(v);
      T* d = dst + p0 * W + r0;
#pragma GCC unroll 16
      for (int q = 0; q < L; ++q)
        if (q < pn) S::store_part(d + q * W, smask, v[q]);
    }
  }
}

template <class T, int W>
PE_TARGET_AVX512 void pack_copy_avx512(T* dst, const T* src, index_t ld, int cols, index_t kc) {
  using S = Vec<T>;
  constexpr int L = S::W, NV = (W + L - 1) / L;
  typename S::mask lmask[NV], smask[NV];
  for (int v = 0; v < NV; ++v) {
    const int left = cols - v * L;
    lmask[v] = S::mask_for(left < 0 ? 0 : left);
    smask[v] = S::mask_for(W - v * L);
  }
  for (index_t p = 0; p < kc; ++p) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) S::store_part(dst + p * W + v * L, smask[v], S::load_part(src + p * ld + v * L, lmask[v]));
  }
}

// The matrix-vector loops of gemm_gemv.h, compiled for AVX-512.
template <class T>
PE_TARGET_AVX512 void dots_avx512(const T* x, index_t ldx, index_t n, const T* v, index_t k, T* y) {
  gemv_dots(x, ldx, n, v, k, y);
}
template <class T>
PE_TARGET_AVX512 void axpys_avx512(const T* x, index_t ldx, index_t n, const T* v, index_t k, T* y) {
  gemv_axpys(x, ldx, n, v, k, y);
}

}  // namespace

template <class T>
Kernels<T> kernels_avx512() {
  constexpr int MR = TileAvx512<T>::MR, NR = TileAvx512<T>::NR;
  return {micro_avx512<T>,         pack_interleave_avx512<T, MR>, pack_copy_avx512<T, MR>, pack_copy_avx512<T, NR>,
          pack_interleave_avx512<T, NR>, dots_avx512<T>,          axpys_avx512<T>, micro_rows_avx512<T>,
          micro_pf_avx512<T>, small_avx512<T>};
}
template Kernels<float> kernels_avx512<float>();
template Kernels<double> kernels_avx512<double>();

}  // namespace gemm_detail
}  // namespace pe

#endif  // PE_X86
