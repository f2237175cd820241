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

#define PE_AVX512_INLINE PE_TARGET_AVX512 __attribute__((always_inline)) static inline

namespace pe {
namespace gemm_detail {
namespace {

// The few vector operations the kernel needs, for float and double.
template <class T> struct V512;

template <> struct V512<float> {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int W = 16;
  PE_AVX512_INLINE V zero() { return _mm512_setzero_ps(); }
  PE_AVX512_INLINE V set1(float x) { return _mm512_set1_ps(x); }
  PE_AVX512_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  PE_AVX512_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  PE_AVX512_INLINE V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  PE_AVX512_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  // Lanes [0, n) for n in [0, W]. Masked loads never fault on masked-off lanes,
  // which is what lets the edge tiles read exactly the n valid columns.
  PE_AVX512_INLINE Mask mask(int n) { return n >= W ? Mask(0xFFFF) : Mask((1u << n) - 1u); }
  PE_AVX512_INLINE V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  PE_AVX512_INLINE void store(float* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }

  // In-register 16x16 transpose (simd.h): r[i] holds row i on entry, column i on exit.
  PE_AVX512_INLINE void transpose(V r[16]) { simd::Vec<float, Isa::avx512>::transpose(r); }
};

template <> struct V512<double> {
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int W = 8;
  PE_AVX512_INLINE V zero() { return _mm512_setzero_pd(); }
  PE_AVX512_INLINE V set1(double x) { return _mm512_set1_pd(x); }
  PE_AVX512_INLINE V load(const double* p) { return _mm512_loadu_pd(p); }
  PE_AVX512_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  PE_AVX512_INLINE V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  PE_AVX512_INLINE V add(V a, V b) { return _mm512_add_pd(a, b); }
  PE_AVX512_INLINE Mask mask(int n) { return n >= W ? Mask(0xFF) : Mask((1u << n) - 1u); }
  PE_AVX512_INLINE V load(const double* p, Mask m) { return _mm512_maskz_loadu_pd(m, p); }
  PE_AVX512_INLINE void store(double* p, Mask m, V v) { _mm512_mask_storeu_pd(p, m, v); }

  // In-register 8x8 transpose (simd.h): r[i] holds row i on entry, column i on exit.
  PE_AVX512_INLINE void transpose(V r[8]) { simd::Vec<double, Isa::avx512>::transpose(r); }
};

// The register tile: ROWS x (NV vectors) of the MR x NR micro-tile. The full
// tile is ROWS = MR, NV = NR / W; narrower instances serve edge tiles (the last
// rows of M, or N <= W), so that e.g. M = 64 = 4*14 + 8 does not pay a full
// 14-row tile for its last 8 rows. The packed panels keep their full strides
// (MR and NR values per k step) whatever the instance.
// kRowsA: A is read in place from ROWS rows of the stored matrix (row stride
// lda, op(A)(i, p) = a[i*lda + p]) instead of from a packed micro-panel.
template <class T, int ROWS, int NV, bool kRowsA = false>
PE_TARGET_AVX512 void micro_tile(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n, T alpha,
                                 T beta, const T* bias, index_t lda = 0) {
  using S = V512<T>;
  using V = typename S::V;
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

  // The hot loop: rank-1 update of the register tile per k step.
#pragma GCC unroll 2
  for (index_t p = 0; p < k; ++p) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * W);
#pragma GCC unroll 32
    for (int i = 0; i < ROWS; ++i) {
      const V ai = S::set1(kRowsA ? a[i * lda] : a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fma(ai, bv[v], acc[i][v]);
    }
    a += kRowsA ? 1 : MR;
    b += NR;
  }

  // Epilogue: one code path for full and edge tiles; the masks bound the
  // columns (all-ones on a full tile) and `i < m` the rows.
  typename S::Mask mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    int left = n - v * W;
    mask[v] = S::mask(left < 0 ? 0 : left);
  }
  const V va = S::set1(alpha), vbeta = S::set1(beta);
  V vbias[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) vbias[v] = bias ? S::load(bias + v * W, mask[v]) : S::zero();
  const bool read_c = beta != T(0), beta_one = beta == T(1);
#pragma GCC unroll 32
  for (int i = 0; i < ROWS; ++i) {
    if (i < m) {
      T* ci = c + i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        V r = S::fma(va, acc[i][v], vbias[v]);
        if (read_c) {
          const V old = S::load(ci + v * W, mask[v]);
          r = beta_one ? S::add(r, old) : S::fma(vbeta, old, r);
        }
        S::store(ci + v * W, mask[v], r);
      }
    }
  }
}

}  // namespace

template <class T>
PE_TARGET_AVX512 void micro_avx512(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n,
                                   T alpha, T beta, const T* bias) {
  constexpr int MR = TileAvx512<T>::MR, W = V512<T>::W, NV = TileAvx512<T>::NR / W;
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

// A full MR-row tile with A read in place (see Kernels::micro_rows).
template <class T>
PE_TARGET_AVX512 void micro_rows_avx512(index_t k, const T* a, index_t lda, const T* b, T* c, index_t ldc, int n,
                                        T alpha, T beta, const T* bias) {
  constexpr int MR = TileAvx512<T>::MR, W = V512<T>::W, NV = TileAvx512<T>::NR / W;
  if (n > W) micro_tile<T, MR, NV, true>(k, a, b, c, ldc, MR, n, alpha, beta, bias, lda);
  else micro_tile<T, MR, 1, true>(k, a, b, c, ldc, MR, n, alpha, beta, bias, lda);
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
  using S = V512<T>;
  using V = typename S::V;
  constexpr int L = S::W;
  for (int r0 = 0; r0 < W; r0 += L) {
    const typename S::Mask smask = S::mask(W - r0);  // lanes of dst this group fills
    const int gr = rows - r0 < 0 ? 0 : (rows - r0 > L ? L : rows - r0);
    if (gr == 0) {  // rows of zero padding only
      for (index_t p = 0; p < kc; ++p) S::store(dst + p * W + r0, smask, S::zero());
      continue;
    }
    const T* s = src + r0 * ld;
    for (index_t p0 = 0; p0 < kc; p0 += L) {
      const int pn = kc - p0 < L ? static_cast<int>(kc - p0) : L;
      const typename S::Mask lmask = S::mask(pn);
      V v[L];
#pragma GCC unroll 16
      for (int i = 0; i < L; ++i) v[i] = i < gr ? S::load(s + i * ld + p0, lmask) : S::zero();
      S::transpose(v);
      T* d = dst + p0 * W + r0;
#pragma GCC unroll 16
      for (int q = 0; q < L; ++q)
        if (q < pn) S::store(d + q * W, smask, v[q]);
    }
  }
}

template <class T, int W>
PE_TARGET_AVX512 void pack_copy_avx512(T* dst, const T* src, index_t ld, int cols, index_t kc) {
  using S = V512<T>;
  constexpr int L = S::W, NV = (W + L - 1) / L;
  typename S::Mask lmask[NV], smask[NV];
  for (int v = 0; v < NV; ++v) {
    const int left = cols - v * L;
    lmask[v] = S::mask(left < 0 ? 0 : left);
    smask[v] = S::mask(W - v * L);
  }
  for (index_t p = 0; p < kc; ++p) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) S::store(dst + p * W + v * L, smask[v], S::load(src + p * ld + v * L, lmask[v]));
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
          pack_interleave_avx512<T, NR>, dots_avx512<T>,          axpys_avx512<T>, micro_rows_avx512<T>};
}
template Kernels<float> kernels_avx512<float>();
template Kernels<double> kernels_avx512<double>();

}  // namespace gemm_detail
}  // namespace pe

#endif  // PE_X86
