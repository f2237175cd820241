// Sums and dot products of one row, in double, by several running sums (lanes): the helper the row
// reductions share (reduce.cpp's row sums, activation.cpp's softmax backward).
//
// One vector of running sums (what `omp simd reduction` compiles) waits on its own adds, ~4 cycles per
// vector: 1.8x PyTorch's time for a 131k-element float row sum, 2.6x for the softmax row backward. Here
// the float kernels keep four vectors of doubles (AVX-512: 32 floats a step, AVX2: 16) and the generic
// and double ones kLanes plain sums. The order is fixed by n and the SIMD level, never by threads: the
// same bits on any thread count.
#pragma once
#include <cstddef>
#include <type_traits>

#include "cpu/simd.h"

namespace pe {
namespace cpu {
namespace lanes {

constexpr index_t kLanes = 8;

// sum_j a[j] * b[j] (kDot) or sum_j a[j], plain C++ (any T; double at every level).
template <bool kDot, class T>
PE_INLINE double dot_generic(const T* a, const T* b, index_t n) {
  double s[kLanes] = {};
  index_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (index_t j = 0; j < kLanes; ++j)
      s[j] += kDot ? static_cast<double>(a[i + j]) * static_cast<double>(b[i + j]) : static_cast<double>(a[i + j]);
  double tail = 0.0;
  for (; i < n; ++i) tail += kDot ? static_cast<double>(a[i]) * static_cast<double>(b[i]) : static_cast<double>(a[i]);
  return (((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]))) + tail;
}

#if PE_X86
template <bool kDot>
PE_TARGET_AVX512 PE_INLINE __m512d wide512(const float* a, const float* b, index_t i) {
  const __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(a + i));
  if constexpr (kDot) return _mm512_mul_pd(x, _mm512_cvtps_pd(_mm256_loadu_ps(b + i)));
  return x;
}
template <bool kDot>
PE_TARGET_AVX512 PE_INLINE double dot_avx512(const float* a, const float* b, index_t n) {
  __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
  index_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_add_pd(s0, wide512<kDot>(a, b, i));
    s1 = _mm512_add_pd(s1, wide512<kDot>(a, b, i + 8));
    s2 = _mm512_add_pd(s2, wide512<kDot>(a, b, i + 16));
    s3 = _mm512_add_pd(s3, wide512<kDot>(a, b, i + 24));
  }
  for (; i + 8 <= n; i += 8) s0 = _mm512_add_pd(s0, wide512<kDot>(a, b, i));
  double tail = 0.0;
  for (; i < n; ++i) tail += kDot ? static_cast<double>(a[i]) * static_cast<double>(b[i]) : static_cast<double>(a[i]);
  return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s2), _mm512_add_pd(s1, s3))) + tail;
}

template <bool kDot>
PE_TARGET_AVX2 PE_INLINE __m256d wide256(const float* a, const float* b, index_t i) {
  const __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(a + i));
  if constexpr (kDot) return _mm256_mul_pd(x, _mm256_cvtps_pd(_mm_loadu_ps(b + i)));
  return x;
}
template <bool kDot>
PE_TARGET_AVX2 PE_INLINE double dot_avx2(const float* a, const float* b, index_t n) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
  index_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_add_pd(s0, wide256<kDot>(a, b, i));
    s1 = _mm256_add_pd(s1, wide256<kDot>(a, b, i + 4));
    s2 = _mm256_add_pd(s2, wide256<kDot>(a, b, i + 8));
    s3 = _mm256_add_pd(s3, wide256<kDot>(a, b, i + 12));
  }
  for (; i + 4 <= n; i += 4) s0 = _mm256_add_pd(s0, wide256<kDot>(a, b, i));
  double tail = 0.0;
  for (; i < n; ++i) tail += kDot ? static_cast<double>(a[i]) * static_cast<double>(b[i]) : static_cast<double>(a[i]);
  const __m256d v = _mm256_add_pd(_mm256_add_pd(s0, s2), _mm256_add_pd(s1, s3));
  const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h))) + tail;
}
#endif

}  // namespace lanes
}  // namespace cpu
}  // namespace pe
