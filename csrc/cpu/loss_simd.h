// Vector exp for float (AVX2 and AVX-512), and the per-ISA dispatch and parallel_for helpers of the loss and
// optim kernels.
//
// exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in a high and a low
// part so that r keeps its bits), exp(r) ~ 1 + r + r^2 P(r) with the degree-5 minimax P of Cephes' expf.
// Measured against float64 exp: within 1.01 ulp over [-110, 95], denormals included. x is clamped to
// [-104, 89] first (NaN passes through the clamp: max/min return their second operand when one is NaN), so
// -inf -> 0, +inf -> inf, and NaN stays NaN.
#pragma once
#include "common.h"

#if PE_X86
#include <immintrin.h>
#endif

// Bodies of kernels are written once as always-inline templates and compiled three times, inside functions
// marked for AVX-512, AVX2 or nothing (the generic x86-64 baseline), so the auto-vectoriser uses each level's
// instructions; pe::isa() picks one at run time (and tests force each level).
#if defined(__GNUC__) || defined(__clang__)
#define PE_INLINE inline __attribute__((always_inline))
#else
#define PE_INLINE inline
#endif

namespace pe {
namespace simd {

constexpr float kExpLo = -104.0f;  // exp(-104) < the smallest float denormal: result 0
constexpr float kExpHi = 89.0f;    // exp(89) > FLT_MAX: result inf
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693145751953125f;     // ln 2 with its low 12 bits zero: n * kLn2Hi is exact
constexpr float kLn2Lo = 1.428606765330187e-06f;  // ln 2 - kLn2Hi
// exp(r) - 1 - r = r^2 (c0 + c1 r + ... + c5 r^5) on |r| <= ln2/2 (Cephes expf)
constexpr float kExpP0 = 5.0000001201e-1f, kExpP1 = 1.6666665459e-1f, kExpP2 = 4.1665795894e-2f,
                kExpP3 = 8.3334519073e-3f, kExpP4 = 1.3981999507e-3f, kExpP5 = 1.9875691500e-4f;

#if PE_X86
PE_TARGET_AVX512 static inline __m512 exp_avx512(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(kExpLo), x);
  x = _mm512_min_ps(_mm512_set1_ps(kExpHi), x);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpP5);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP0));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);  // p * 2^n, with IEEE overflow/underflow
}

// 2^k for integer k in [-126, 127], built in the exponent field.
PE_TARGET_AVX2 static inline __m256 pow2i_avx2(__m256i k) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

PE_TARGET_AVX2 static inline __m256 exp_avx2(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(kExpLo), x);
  x = _mm256_min_ps(_mm256_set1_ps(kExpHi), x);
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpP5);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP0));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
  p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
  // n lies in [-150, 129]: scale in two halves, 2^(n/2) 2^(n - n/2), each a normal float, so that the one
  // rounding happens in the last multiply (denormal results) and overflow gives inf.
  __m256i k = _mm256_cvtps_epi32(n);
  __m256i k1 = _mm256_srai_epi32(k, 1);
  __m256i k2 = _mm256_sub_epi32(k, k1);
  return _mm256_mul_ps(_mm256_mul_ps(p, pow2i_avx2(k1)), pow2i_avx2(k2));
}

// Lanes [0, rem) set, for masked loads/stores of a row's tail (0 <= rem <= 8).
PE_TARGET_AVX2 static inline __m256i tail_mask_avx2(int rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif

}  // namespace simd

// An elementwise kernel is a struct with `Args` and `static PE_INLINE R run(const Args&, index_t lo,
// index_t hi)` over the range [lo, hi); these compile it once per SIMD level.
template <class Body>
PE_TARGET_AVX512 auto run_avx512(const typename Body::Args& a, index_t lo, index_t hi) {
  return Body::run(a, lo, hi);
}
template <class Body>
PE_TARGET_AVX2 auto run_avx2(const typename Body::Args& a, index_t lo, index_t hi) {
  return Body::run(a, lo, hi);
}
template <class Body>
auto run_generic(const typename Body::Args& a, index_t lo, index_t hi) {
  return Body::run(a, lo, hi);
}

template <class Body>
using RangeFn = decltype(&run_generic<Body>);

// Runs body(i) for i in [0, n) with `nt` threads, handing out `chunk` consecutive i at a time (dynamic
// schedule: on a shared machine a thread that gets less CPU time takes fewer chunks). With nt == 1 no
// OpenMP region is entered at all: even `if(false)` costs 1-2 us of team setup (measured on a 4x3 CE call).
template <class F>
inline void parallel_for(index_t n, int nt, index_t chunk, F&& body) {
  if (nt <= 1) {
    for (index_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(dynamic, chunk) num_threads(nt)
  for (index_t i = 0; i < n; ++i) body(i);
}

// The compiled copy for the SIMD level in use now.
template <class Body>
RangeFn<Body> select_isa() {
  switch (isa()) {
    case Isa::avx512: return &run_avx512<Body>;
    case Isa::avx2: return &run_avx2<Body>;
    default: return &run_generic<Body>;
  }
}

}  // namespace pe
