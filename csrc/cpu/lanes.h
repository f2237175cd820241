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
// The same sums of float rows on one SIMD level (V = Vec<double, isa>): four vectors of doubles, the floats
// widened as they load, 4 W floats a step, then W at a time, then the tail one by one; one body, compiled
// per level (the target attribute must be the function's own for the intrinsics to inline).
#define PE_LANES_WIDE(i) (kDot ? V::mul(V::load_widen(a + (i)), V::load_widen(b + (i))) : V::load_widen(a + (i)))
#define PE_LANES_DOT(name, target, isa)                                                                     \
  template <bool kDot>                                                                                      \
  target PE_INLINE double name(const float* a, const float* b, index_t n) {                                \
    using V = simd::Vec<double, isa>;                                                                       \
    constexpr index_t W = V::W;                                                                             \
    typename V::reg s0 = V::zero(), s1 = s0, s2 = s0, s3 = s0;                                              \
    index_t i = 0;                                                                                          \
    for (; i + 4 * W <= n; i += 4 * W) {                                                                    \
      s0 = V::add(s0, PE_LANES_WIDE(i));                                                                    \
      s1 = V::add(s1, PE_LANES_WIDE(i + W));                                                                \
      s2 = V::add(s2, PE_LANES_WIDE(i + 2 * W));                                                            \
      s3 = V::add(s3, PE_LANES_WIDE(i + 3 * W));                                                            \
    }                                                                                                       \
    for (; i + W <= n; i += W) s0 = V::add(s0, PE_LANES_WIDE(i));                                           \
    double tail = 0.0;                                                                                      \
    for (; i < n; ++i)                                                                                      \
      tail += kDot ? static_cast<double>(a[i]) * static_cast<double>(b[i]) : static_cast<double>(a[i]);    \
    return V::hsum(V::add(V::add(s0, s2), V::add(s1, s3))) + tail;                                          \
  }
PE_LANES_DOT(dot_avx512, PE_TARGET_AVX512, Isa::avx512)
PE_LANES_DOT(dot_avx2, PE_TARGET_AVX2, Isa::avx2)
#undef PE_LANES_DOT
#undef PE_LANES_WIDE
#endif

}  // namespace lanes
}  // namespace cpu
}  // namespace pe
