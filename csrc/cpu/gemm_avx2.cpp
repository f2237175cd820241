// AVX2 + FMA micro-kernels of the GEMM family (the algorithm is described in gemm.cpp).
//
// Register tile MR x NR = 6 x 16 floats / 6 x 8 doubles: 12 ymm accumulators,
// 2 ymm for the row of B at step p and 1 for the broadcast of A (15 of the 16
// ymm registers). Per k step: 2 vector loads, 6 broadcasts, 12 FMAs.
#include "cpu/gemm_gemv.h"
#include "cpu/gemm_kernel.h"
#include "cpu/simd.h"

#if PE_X86
#include <immintrin.h>

namespace pe {
namespace gemm_detail {

template <class T>
PE_TARGET_AVX2 void micro_avx2(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n, T alpha,
                               T beta, const T* bias) {
  using S = simd::Vec<T, Isa::avx2>;
  using V = typename S::reg;
  constexpr int MR = TileAvx2<T>::MR, NR = TileAvx2<T>::NR, W = S::W, NV = NR / W;
  static_assert(NR % W == 0, "NR must be a whole number of vectors");

  // C is needed only after the k loop; start bringing each row in now (its
  // first and last element: a row of the tile may straddle two 64-byte lines).
  if (beta != T(0))
    for (int i = 0; i < m; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
    }

  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();

#pragma GCC unroll 2
  for (index_t p = 0; p < k; ++p) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V ai = S::set1(a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fmadd(ai, bv[v], acc[i][v]);
    }
    a += MR;
    b += NR;
  }

  const V va = S::set1(alpha), vbeta = S::set1(beta);
  const bool read_c = beta != T(0), beta_one = beta == T(1);
  if (n == NR) {
    // Full-width rows: plain loads and stores (vmaskmov is slower on some CPUs).
    V vbias[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) vbias[v] = bias ? S::load(bias + v * W) : S::zero();
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      if (i < m) {
        T* ci = c + i * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          V r = S::fmadd(va, acc[i][v], vbias[v]);
          if (read_c) {
            const V old = S::load(ci + v * W);
            r = beta_one ? S::add(r, old) : S::fmadd(vbeta, old, r);
          }
          S::store(ci + v * W, r);
        }
      }
    }
    return;
  }
  typename S::mask mask[NV];
  V vbias[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    int left = n - v * W;
    mask[v] = S::mask_for(left < 0 ? 0 : left);
    vbias[v] = bias ? S::load_part(bias + v * W, mask[v]) : S::zero();
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if (i < m) {
      T* ci = c + i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        V r = S::fmadd(va, acc[i][v], vbias[v]);
        if (read_c) {
          const V old = S::load_part(ci + v * W, mask[v]);
          r = beta_one ? S::add(r, old) : S::fmadd(vbeta, old, r);
        }
        S::store_part(ci + v * W, mask[v], r);
      }
    }
  }
}

// Packing stays plain C++ here (pack_interleave / pack_copy in gemm_kernel.h);
// the matrix-vector loops are gemm_gemv.h's, compiled for AVX2 + FMA.
template <class T>
PE_TARGET_AVX2 static void dots_avx2(const T* x, index_t ldx, index_t n, const T* v, index_t k, T* y) {
  gemv_dots(x, ldx, n, v, k, y);
}
template <class T>
PE_TARGET_AVX2 static void axpys_avx2(const T* x, index_t ldx, index_t n, const T* v, index_t k, T* y) {
  gemv_axpys(x, ldx, n, v, k, y);
}

template <class T>
Kernels<T> kernels_avx2() {
  constexpr int MR = TileAvx2<T>::MR, NR = TileAvx2<T>::NR;
  return {micro_avx2<T>,          pack_interleave<T, MR>, pack_copy<T, MR>, pack_copy<T, NR>,
          pack_interleave<T, NR>, dots_avx2<T>,           axpys_avx2<T>};
}
template Kernels<float> kernels_avx2<float>();
template Kernels<double> kernels_avx2<double>();

}  // namespace gemm_detail
}  // namespace pe

#endif  // PE_X86
