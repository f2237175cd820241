// Matrix-vector products for GEMMs with M == 1 or N == 1 (see run_gemv in gemm.cpp).
//
// Such a GEMM reads its matrix once and does one multiply-add per element, so
// it is bound by memory bandwidth, not by the FMA units: the packed GEMM would
// only add a copy of the whole matrix (packing) and waste 13 of the 14 rows of
// its register tile. These two loops stream the matrix exactly once.
//
// They are plain C++ written so that the compiler vectorises them (fixed-length
// lane loops, several independent accumulators), marked always_inline so that
// each ISA file can wrap them in a function with its target attribute and get
// an AVX2 or AVX-512 build of the same source (gemm_avx2.cpp, gemm_avx512.cpp).
#pragma once
#include "common.h"

#define PE_GEMV_INLINE __attribute__((always_inline)) inline

namespace pe {
namespace gemm_detail {

// y[i] = sum_p x[i*ldx + p] * v[p] for i < rows: dot products of rows of x
// (contiguous along p) with v. Four rows at a time share each load of v.
template <class T>
PE_GEMV_INLINE void gemv_dots(const T* __restrict x, index_t ldx, index_t rows, const T* __restrict v, index_t k,
                              T* __restrict y) {
  constexpr int L = 64 / sizeof(T);  // lanes of one 512-bit vector (or two 256-bit ones)
  index_t i = 0;
  for (; i + 4 <= rows; i += 4) {
    const T* x0 = x + i * ldx;
    const T* x1 = x0 + ldx;
    const T* x2 = x1 + ldx;
    const T* x3 = x2 + ldx;
    T a0[L] = {}, a1[L] = {}, a2[L] = {}, a3[L] = {};
    index_t p = 0;
    for (; p + L <= k; p += L) {
      for (int l = 0; l < L; ++l) {
        const T vv = v[p + l];
        a0[l] += x0[p + l] * vv;
        a1[l] += x1[p + l] * vv;
        a2[l] += x2[p + l] * vv;
        a3[l] += x3[p + l] * vv;
      }
    }
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int l = 0; l < L; ++l) {
      s0 += a0[l];
      s1 += a1[l];
      s2 += a2[l];
      s3 += a3[l];
    }
    for (; p < k; ++p) {
      s0 += x0[p] * v[p];
      s1 += x1[p] * v[p];
      s2 += x2[p] * v[p];
      s3 += x3[p] * v[p];
    }
    y[i] = s0;
    y[i + 1] = s1;
    y[i + 2] = s2;
    y[i + 3] = s3;
  }
  for (; i < rows; ++i) {
    const T* x0 = x + i * ldx;
    T a0[L] = {};
    index_t p = 0;
    for (; p + L <= k; p += L)
      for (int l = 0; l < L; ++l) a0[l] += x0[p + l] * v[p + l];
    T s0 = 0;
    for (int l = 0; l < L; ++l) s0 += a0[l];
    for (; p < k; ++p) s0 += x0[p] * v[p];
    y[i] = s0;
  }
}

// y[j] = sum_p v[p] * x[p*ldx + j] for j < cols: a combination of rows of x
// (contiguous along j). Four rows per pass over y, which stays in L1 (the
// caller keeps `cols` to a chunk).
template <class T>
PE_GEMV_INLINE void gemv_axpys(const T* __restrict x, index_t ldx, index_t cols, const T* __restrict v, index_t k,
                               T* __restrict y) {
  for (index_t j = 0; j < cols; ++j) y[j] = T(0);
  index_t p = 0;
  for (; p + 4 <= k; p += 4) {
    const T v0 = v[p], v1 = v[p + 1], v2 = v[p + 2], v3 = v[p + 3];
    const T* x0 = x + p * ldx;
    const T* x1 = x0 + ldx;
    const T* x2 = x1 + ldx;
    const T* x3 = x2 + ldx;
    for (index_t j = 0; j < cols; ++j) y[j] += v0 * x0[j] + v1 * x1[j] + v2 * x2[j] + v3 * x3[j];
  }
  for (; p < k; ++p) {
    const T v0 = v[p];
    const T* x0 = x + p * ldx;
    for (index_t j = 0; j < cols; ++j) y[j] += v0 * x0[j];
  }
}

}  // namespace gemm_detail
}  // namespace pe
