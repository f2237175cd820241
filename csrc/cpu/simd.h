// The SIMD vocabulary shared by the kernel families (everything but the GEMM
// micro-kernels, which are written per ISA in gemm_avx2/avx512.cpp, and the
// attention kernels' Vec<T, ISA> wrapper in attention_simd.h, which builds on
// this file's in-register transposes but keeps its own exp).
//
// Two ways to write a kernel for every SIMD level, both picked per call by
// pe::isa() (so PYENGINE_ISA / set_isa select the path, and the tests' `isa`
// fixture covers generic, AVX2 and AVX-512 on one machine):
//
// 1. Auto-vectorised bodies (activation, norm, embedding, reduce, lstm). The
//    inner body (one row, or one span of an elementwise op) is an always-inline
//    template `name##_body<T>`. PE_ISA_VARIANTS wraps it in three thin
//    functions, one plain and two marked PE_TARGET_AVX2 / PE_TARGET_AVX512; GCC
//    inlines the body into each and vectorises it for that target;
//    `name##_for_isa<T>()` returns the variant for pe::isa(). Their float math
//    uses vm::exp_f / vm::exp_ab / vm::normal_f below: plain arithmetic that
//    vectorises (std::exp / std::erf are opaque libm calls that never vectorise
//    without -ffast-math).
// 2. Intrinsics (loss, optim, attention): a Body struct whose static run() is
//    compiled once per level by run_avx512 / run_avx2 / run_generic and chosen
//    by select_isa<Body>(); their vector exp is simd::exp_avx512 / exp_avx2.
//
// So there are two float exps, each for its style: vm::exp_ab (scalar form,
// keeps the low bits of a + b for GELU's e^{-x^2/2}, flushes below FLT_MIN) and
// simd::exp_avx512 / exp_avx2 (intrinsics, denormal results included).
// OpenMP regions stay outside the per-ISA functions: callers pick the variant
// once, then call it per row / chunk from their parallel loop. (Not
// PE_TARGET_CLONES: the loader picks a clone once from the CPU's features, so
// set_isa could not switch it and the generic / AVX2 code would go untested on
// an AVX-512 machine.)
// Requires no -ffast-math (see round_int); reductions use `omp simd reduction`,
// which needs the OpenMP build flag (without it they run scalar, still correct).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "common.h"

#if PE_X86
#include <immintrin.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PE_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define PE_INLINE __forceinline
#else
#define PE_INLINE inline
#endif

#define PE_ISA_VARIANTS(name, params, args)                                                   \
  template <class T>                                                                          \
  void name##_generic params { name##_body<T> args; }                                         \
  template <class T>                                                                          \
  PE_TARGET_AVX2 void name##_avx2 params { name##_body<T> args; }                             \
  template <class T>                                                                          \
  PE_TARGET_AVX512 void name##_avx512 params { name##_body<T> args; }                         \
  template <class T>                                                                          \
  auto name##_for_isa() {                                                                     \
    switch (pe::isa()) {                                                                      \
      case pe::Isa::avx512: return &name##_avx512<T>;                                         \
      case pe::Isa::avx2: return &name##_avx2<T>;                                             \
      default: return &name##_generic<T>;                                                     \
    }                                                                                         \
  }

namespace pe {
namespace vm {

// ------------------------------------------------------------------ threads
// Thread id / team size inside an OpenMP parallel region (0 / 1 without OpenMP).
inline int thread_id() {
#if defined(PYENGINE_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int team_size() {
#if defined(PYENGINE_OPENMP)
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// ------------------------------------------------------------------ bit casts
// memcpy casts: well defined, and GCC turns them into plain register moves that
// vectorise (a vector of floats reinterpreted as a vector of ints).
PE_INLINE std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
PE_INLINE float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Round to the nearest integer (ties to even), as a float, for |v| < 2^22: adding
// 1.5 * 2^23 pushes the fraction bits out of the mantissa. One add and one
// subtract, vectorises on plain SSE2 (rintf needs SSE4.1). Valid because the
// build has no -ffast-math, so the compiler may not fold (v + M) - M to v.
constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23
PE_INLINE float round_int(float v) { return (v + kRoundMagic) - kRoundMagic; }

// 2^k for an integer-valued float k in [-126, 127]: write k + 127 into the
// exponent field. k + kRoundMagic has k in its low mantissa bits; all integer
// arithmetic is unsigned (wraps, never undefined).
PE_INLINE float pow2_int(float k) {
  std::uint32_t e = bits(k + kRoundMagic) - bits(kRoundMagic) + 127u;
  return from_bits(e << 23);
}

// ------------------------------------------------------------------ exp (float)
// exp(a + b) for |b| small (<= ~0.5), keeping the bits of a that a plain
// exp(a + b) would lose when a is large (used for exp(-x^2/2), see below).
//   n = round((a + b) / ln2), r = (a - n ln2_hi) + b - n ln2_lo,  exp = 2^n e^r
// ln2 is split so that n * ln2_hi is exact (ln2_hi has 15 significant bits,
// |n| < 256) and a - n ln2_hi is exact too (Sterbenz: the two are within a
// factor of 2 of each other once n != 0). |r| <= ln2/2 + rounding.
// e^r = 1 + r + r^2 P(r), P a degree-4 polynomial fitted (relative-weighted
// least squares, iterated towards minimax) for relative error 3e-9 on
// [-ln2/2, ln2/2]; 2^n is written straight into the exponent field.
// Range: results are exact to ~1 ulp while they are normal floats. Below
// FLT_MIN (a + b < -87.33) the result is flushed to 0 rather than computed as
// a denormal (a second scaling step for that costs ~15% of softmax / GELU);
// above 88.3 it is +inf (the true overflow is at 88.72; every caller here
// passes arguments <= 0). -inf -> 0, +inf -> inf, NaN -> NaN (comparisons with
// NaN are false, and NaN flows through the polynomial).
PE_INLINE float exp_ab(float a, float b) {
  constexpr float kMax = 88.3f, kMin = -87.33f;
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;     // 0x3F317200
  constexpr float kLn2Lo = 1.42860682030941723e-6f;  // ln2 - kLn2Hi
  const float s = a + b;
  const float n = round_int(s * kLog2e);  // in [-126, 127] where the result is used
  const float r = ((a - n * kLn2Hi) + b) - n * kLn2Lo;
  float p = 1.381417115e-3f;
  p = p * r + 8.368915527e-3f;
  p = p * r + 4.166840760e-2f;
  p = p * r + 1.666651899e-1f;
  p = p * r + 4.999999334e-1f;
  p = 1.0f + r + (r * r) * p;
  const float e = p * pow2_int(n);
  return s < kMin ? 0.0f : (s > kMax ? std::numeric_limits<float>::infinity() : e);
}
PE_INLINE float exp_f(float x) { return exp_ab(x, 0.0f); }

// exp for either dtype: the float approximation above, libm for double (double
// kernels stay on exact libm functions; they are not the hot path).
PE_INLINE float vexp(float x) { return exp_f(x); }
PE_INLINE double vexp(double x) { return std::exp(x); }

// ------------------------------------------------------------------ normal CDF (float)
// GELU needs Phi(x) = 0.5 erfc(-x / sqrt 2) and the density's g = e^{-x^2/2}.
// With a = |x| / sqrt 2 and t = 1 / (1 + a / 2):
//     erfc(a) = t e^{-a^2} Q(t) = t Q(t) g,   so   Phi(x) = h g        (x < 0)
//                                                  Phi(x) = 1 - h g    (x >= 0)
// with h = 0.5 t Q(t). Q(t) = erfc(a) e^{a^2} / t is smooth on t in [0.16, 1]
// (a in [0, 10.5]); a degree-10 polynomial fitted (relative-weighted least
// squares, iterated towards minimax) for relative error 3.6e-9 there. Working
// with erfc rather than 1 + erf keeps full relative precision in the left tail,
// where Phi is tiny and 1 + erf would cancel; keeping h and g apart lets callers
// multiply by g last, so x Phi(x) is exact to a few ulp for as long as g is a
// normal float (x >= -13.2, |x Phi(x)| >= 1.6e-38), not only while Phi is.
// g is computed without losing the low bits of x^2: x = xh + xl with xh keeping
// 12 mantissa bits, so xh^2 / 2 is exact and
//     x^2 / 2 = xh^2 / 2 + xl (xh + xl / 2)       (second part small)
// goes to exp_ab as (big, small); a rounded x^2 would cost |x^2/2| 2^-24
// relative error in g (5e-6 at x = -13).
// |x| >= 14.5: g is 0 in float; set it explicitly (x^2 may overflow to NaN).
// NaN gives g = 0 but t = NaN, so h and everything built on it stay NaN.
struct NormalF {
  float h;  // 0.5 erfc(|x| / sqrt 2) / g
  float g;  // e^{-x^2/2}
};
PE_INLINE NormalF normal_f(float x) {
  float ax = std::fabs(x);
  float xh = from_bits(bits(x) & 0xFFFFF000u);
  float xl = x - xh;
  float g = exp_ab(-0.5f * (xh * xh), -(xl * (xh + 0.5f * xl)));
  g = ax < 14.5f ? g : 0.0f;
  float t = 1.0f / (1.0f + ax * 0.353553390593273762f);  // 1 / (1 + a/2), a = |x|/sqrt2
  float q = 3.631831132e-02f;
  q = q * t - 1.943003362e-01f;
  q = q * t + 3.899050483e-01f;
  q = q * t - 3.022820399e-01f;
  q = q * t - 9.888440507e-03f;
  q = q * t + 2.779300149e-02f;
  q = q * t + 5.809254818e-02f;
  q = q * t + 1.846998890e-01f;
  q = q * t + 2.453360294e-01f;
  q = q * t + 2.822368053e-01f;
  q = q * t + 2.820891872e-01f;
  return {0.5f * (t * q), g};
}

}  // namespace vm
}  // namespace pe

// ====================================================================== intrinsics (style 2)
// simd::exp_avx512 / exp_avx2: exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 in
// [-ln2/2, ln2/2] (ln 2 split in a high and a low part so that r keeps its bits), exp(r) ~ 1 + r + r^2 P(r)
// with the degree-5 minimax P of Cephes' expf. Measured against float64 exp: within 1.01 ulp over
// [-110, 95], denormals included. x is clamped to [-104, 89] first (NaN passes through the clamp: max/min
// return their second operand when one is NaN), so -inf -> 0, +inf -> inf, and NaN stays NaN.
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
PE_TARGET_AVX512 PE_INLINE __m512 exp_avx512(__m512 x) {
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
PE_TARGET_AVX2 PE_INLINE __m256 pow2i_avx2(__m256i k) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

PE_TARGET_AVX2 PE_INLINE __m256 exp_avx2(__m256 x) {
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

// In-register square transposes: r[i] holds row i on entry, column i on exit. Used by the packers of
// the GEMM (16x16 / 8x8 on AVX-512) and of the attention kernels (K_j -> K_j^T).
PE_TARGET_AVX512 PE_INLINE void transpose_avx512(__m512 r[16]) {
  // 1: interleave 32-bit pairs of rows (2i, 2i+1) within each 128-bit lane.
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[i + 8] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // 2: interleave 64-bit pairs: u[4g + c] lane k = column 4k + c of rows 4g..4g+3.
  __m512 u[16];
  for (int g = 0; g < 4; ++g) {
    const __m512d lo0 = _mm512_castps_pd(t[2 * g]), lo1 = _mm512_castps_pd(t[2 * g + 1]);
    const __m512d hi0 = _mm512_castps_pd(t[2 * g + 8]), hi1 = _mm512_castps_pd(t[2 * g + 9]);
    u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, lo1));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, lo1));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi0, hi1));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi0, hi1));
  }
  // 3+4: 4x4 transpose of 128-bit lanes across u[c], u[4+c], u[8+c], u[12+c].
  for (int c = 0; c < 4; ++c) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    r[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}

PE_TARGET_AVX512 PE_INLINE void transpose_avx512(__m512d r[8]) {
  // 1: t[2g + c] lane k = column 2k + c of rows 2g, 2g+1.
  __m512d t[8];
  for (int g = 0; g < 4; ++g) {
    t[2 * g] = _mm512_unpacklo_pd(r[2 * g], r[2 * g + 1]);
    t[2 * g + 1] = _mm512_unpackhi_pd(r[2 * g], r[2 * g + 1]);
  }
  // 2+3: 4x4 transpose of 128-bit lanes across t[c], t[2+c], t[4+c], t[6+c].
  for (int c = 0; c < 2; ++c) {
    const __m512d v0 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0x44), v1 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0xEE);
    const __m512d v2 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0x44);
    const __m512d v3 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0xEE);
    r[c] = _mm512_shuffle_f64x2(v0, v2, 0x88);
    r[2 + c] = _mm512_shuffle_f64x2(v0, v2, 0xDD);
    r[4 + c] = _mm512_shuffle_f64x2(v1, v3, 0x88);
    r[6 + c] = _mm512_shuffle_f64x2(v1, v3, 0xDD);
  }
}

PE_TARGET_AVX2 PE_INLINE void transpose_avx2(__m256 r[8]) {
  // 1: interleave 32-bit pairs of rows (2i, 2i+1) within each 128-bit lane.
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // 2: 64-bit pairs: 128-bit half h of u[4g + c] = column 4h + c of rows 4g..4g+3.
  __m256 u[8];
  for (int g = 0; g < 2; ++g) {
    u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  // 3: swap 128-bit halves between the row groups.
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

PE_TARGET_AVX2 PE_INLINE void transpose_avx2(__m256d r[4]) {
  const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
  const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
  r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
  r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
  r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
  r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

// Lanes [0, rem) set, for masked loads/stores of a row's tail (0 <= rem <= 8).
PE_TARGET_AVX2 PE_INLINE __m256i tail_mask_avx2(int rem) {
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
