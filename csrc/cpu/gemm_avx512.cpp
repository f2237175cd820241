// AVX-512 micro-kernels of the GEMM family (the algorithm is described in gemm.cpp).
//
// Register tile MR x NR = 14 x 32 floats / 14 x 16 doubles: 28 zmm accumulators,
// 2 zmm for the row of B at step p, and each A value broadcast straight from
// memory into the FMA ({1to16} operand), i.e. per k step: 2 vector loads,
// 14 broadcast loads, 28 FMAs. Only the functions below carry the AVX-512 target
// attribute; they are called only when pe::isa() says the CPU has AVX-512.
#include "cpu/gemm_kernel.h"

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
};

}  // namespace

template <class T>
PE_TARGET_AVX512 void micro_avx512(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n,
                                   T alpha, T beta, const T* bias) {
  using S = V512<T>;
  using V = typename S::V;
  constexpr int MR = TileAvx512<T>::MR, NR = TileAvx512<T>::NR, W = S::W, NV = NR / W;
  static_assert(NR % W == 0, "NR must be a whole number of vectors");

  // C is needed only after the k loop; start bringing its rows in now.
  if (beta != T(0))
    for (int i = 0; i < m; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);

  V acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();

  // The hot loop: rank-1 update of the register tile per k step.
#pragma GCC unroll 2
  for (index_t p = 0; p < k; ++p) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * W);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const V ai = S::set1(a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fma(ai, bv[v], acc[i][v]);
    }
    a += MR;
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
  for (int i = 0; i < MR; ++i) {
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

template void micro_avx512<float>(index_t, const float*, const float*, float*, index_t, int, int, float, float,
                                  const float*);
template void micro_avx512<double>(index_t, const double*, const double*, double*, index_t, int, int, double,
                                   double, const double*);

}  // namespace gemm_detail
}  // namespace pe

#endif  // PE_X86
