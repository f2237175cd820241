// The SIMD vocabulary of every kernel family.
//
// Two ways to write a kernel for every SIMD level, both picked per call by
// pe::isa() (so PYENGINE_ISA / set_isa select the path, and the tests' `isa`
// fixture covers generic, AVX2 and AVX-512 on one machine):
//
// 1. Auto-vectorised bodies (activation, norm, embedding, reduce, lstm, rnn). The
//    inner body (one row, or one span of an elementwise op) is an always-inline
//    template `name##_body<T>`. PE_ISA_VARIANTS wraps it in three thin
//    functions, one plain and two marked PE_TARGET_AVX2 / PE_TARGET_AVX512; GCC
//    inlines the body into each and vectorises it for that target;
//    `name##_for_isa<T>()` returns the variant for pe::isa(). Their float math
//    uses vm::exp_f / vm::exp_ab / vm::normal_f below: plain arithmetic that
//    vectorises (std::exp / std::erf are opaque libm calls that never vectorise
//    without -ffast-math).
// 2. Bodies compiled once per level inside functions that carry the level's
//    target attribute: a Body struct whose static run() is compiled by
//    run_avx512 / run_avx2 / run_generic and chosen by select_isa<Body>()
//    (loss, optim), a header included once per level (attention_impl.h), or a
//    file per level (gemm_avx2/avx512.cpp). Where they use intrinsics (loss,
//    attention, the GEMM micro-kernels and packers), they write them on one
//    vector type, simd::Vec<T, Isa>.
//
// One exp algorithm (ExpConst below), in the two forms these styles
// need: vm::exp_ab (plain arithmetic; keeps the low bits of a + b for GELU's
// e^{-x^2/2}) and Vec<T, I>::exp (intrinsics), both flushing results below the
// smallest normal number to 0.
// OpenMP regions stay outside the per-ISA functions: callers pick the variant
// once, then call it per row / chunk from their parallel loop. (Not
// PE_TARGET_CLONES: the loader picks a clone once from the CPU's features, so
// set_isa could not switch it and the generic / AVX2 code would go untested on
// an AVX-512 machine.)
// Requires no -ffast-math (see round_int); reductions use `omp simd reduction`,
// which needs the OpenMP build flag (without it they run scalar, still correct).
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

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

// ------------------------------------------------------------------ exp: one algorithm
// exp(x) = 2^n e^r with n = round(x log2 e) and r = x - n ln2 in [-ln2/2, ln2/2] (ln2 split in two, Cody &
// Waite, so that n ln2_hi is exact), e^r by the polynomial ExpConst<T>::c in r, 2^n put into the exponent.
// The float one is written twice, for the two kernel styles, on the same constants: vm::exp_ab (plain
// arithmetic that auto-vectorises) and simd::Vec<float, I>::exp (intrinsics); double: Vec<double, I>::exp.
// Range: results below the smallest normal number (x < lo) are 0, never computed as denormals. A scaling
// step that underflows (vscalefps, or a multiply with a denormal result) takes a microcode assist:
// measured 115 ns instead of 6 ns per 16 lanes on the Sapphire Rapids dev machine; and a denormal
// probability or gradient slows the GEMM that consumes it ~200x (a 512^3 float GEMM with denormal A:
// 2.2 ms -> 490 ms). That assist was also the "30% slower" once measured with the loss kernels' former
// exp (which computed denormals) inside attention at B16 H4 T128 D32: the attention rows' tails were
// then padded with -inf, whose exp underflowed on every row (reproduced on c41dfae: 1.85-2.05 ms ->
// 2.35-2.5 ms per forward, 1 thread). The tails are zero-padded since 22d3792, and exp no longer underflows.
template <class T>
struct ExpConst;
template <>
struct ExpConst<float> {
  // lo: e^lo is just above FLT_MIN. log2e, ln2: ln2_hi has 15 significant bits, |n| < 256.
  static constexpr float lo = -87.33f, hi = 89.0f;
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723e-6f;
  // e^r = 1 + r + r^2 (c[2] + c[3] r + ... + c[6] r^4): the degree-4 part fitted (relative-weighted least
  // squares, iterated towards minimax) for relative error 3e-9 on [-ln2/2, ln2/2]. Against float64 exp,
  // every 5th float in [-87.33, 88.7]: within 0.89 ulp evaluated by Horner (Vec::exp), 1.01 ulp as
  // 1 + r + r^2 P (vm::exp_ab's form). Cephes' degree-5 P, the loss kernels' former exp: 1.01 ulp, one
  // FMA more.
  static constexpr int degree = 6;
  static constexpr float c[degree + 1] = {1.0f,           1.0f,           4.999999334e-1f, 1.666651899e-1f,
                                          4.166840760e-2f, 8.368915527e-3f, 1.381417115e-3f};
};
template <>
struct ExpConst<double> {
  static constexpr double lo = -708.0, hi = 710.0;  // e^-708 > DBL_MIN; 2^1024 overflows
  static constexpr double log2e = 1.44269504088896340736;
  static constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  // Taylor: error r^14/14! < 5e-18 on |r| <= ln2/2.
  static constexpr int degree = 13;
  static constexpr double c[degree + 1] = {1.0,         1.0,          1.0 / 2,        1.0 / 6,         1.0 / 24,
                                           1.0 / 120,   1.0 / 720,    1.0 / 5040,     1.0 / 40320,     1.0 / 362880,
                                           1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
};

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
// exp(a + b) would lose when a is large (used for exp(-x^2/2), see below): the
// algorithm at the top of this file with
//   n = round((a + b) / ln2), r = (a - n ln2_hi) + b - n ln2_lo,  exp = 2^n e^r
// where a - n ln2_hi is exact too (Sterbenz: the two are within a factor of 2
// of each other once n != 0), and e^r = 1 + r + r^2 P(r), P = c[2..6].
// Range: results are exact to ~1 ulp while they are normal floats. Below
// FLT_MIN (a + b < lo = -87.33) the result is flushed to 0 rather than computed
// as a denormal (a second scaling step for that costs ~15% of softmax / GELU);
// above 88.3 it is +inf (the true overflow is at 88.72; every caller here
// passes arguments <= 0). -inf -> 0, +inf -> inf, NaN -> NaN (comparisons with
// NaN are false, and NaN flows through the polynomial).
PE_INLINE float exp_ab(float a, float b) {
  using C = ExpConst<float>;
  constexpr float kMax = 88.3f;  // keeps n <= 127, pow2_int's range
  const float s = a + b;
  const float n = round_int(s * C::log2e);  // in [-126, 127] where the result is used
  const float r = ((a - n * C::ln2_hi) + b) - n * C::ln2_lo;
  static_assert(C::degree == 6, "P is c[2..6]");
  float p = C::c[6];
  p = p * r + C::c[5];
  p = p * r + C::c[4];
  p = p * r + C::c[3];
  p = p * r + C::c[2];
  p = 1.0f + r + (r * r) * p;
  const float e = p * pow2_int(n);
  return s < C::lo ? 0.0f : (s > kMax ? std::numeric_limits<float>::infinity() : e);
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
namespace pe {
namespace simd {

// Vec<T, I>: the one vector type of the intrinsic kernels (loss, attention, the GEMM micro-kernels and
// packers), for T = float or double at I = Isa::generic (one scalar "lane"), Isa::avx2 (AVX2 + FMA) and
// Isa::avx512. Every member of the AVX2 / AVX-512 versions carries PE_TARGET_AVX2 / PE_TARGET_AVX512 and
// is always inlined, so it may only be called from functions with the same attribute; nothing here is
// compiled with per-file -m flags.
//
//   reg, W            the register type and its lanes
//   zero, set1, load, store (unaligned), add, sub, mul, fmadd(a, b, c) = a*b + c, max
//   mask, mask_for(n) lanes [0, n), n >= 0 (n >= W: all lanes)
//   load_part(p, m)   masked-off lanes read as 0 and are never touched in memory (no fault past a
//   store_part(p, m, x)  row's end), so edge tiles and row tails touch exactly their valid elements
//   keep_part(x, m, fill)  lanes outside m = fill
//   hsum, hmax        horizontal sum / max
//   load_widen(p)     (double, AVX2 / AVX-512) W floats at p, widened to double
//   exp               the algorithm described above ExpConst, by Horner on ExpConst<T>::c
//   transpose(r)      a W x W block in W registers: r[i] holds row i on entry, column i on exit
// The generic version has W = 1 and ignores masks (its one lane is always valid); its exp is libm's.
// exp clamps x to [lo, hi] first (NaN survives: max/min return their second operand when one is NaN);
// hi lies just past the overflow threshold, so the scaling step itself gives +inf: exactly at overflow
// with vscalef (AVX-512), from x = 88.38 on in float with AVX2, which builds 2^128 as +inf (vm::exp_ab:
// from 88.3 on). Callers pass x <= 0 up to rounding.
template <class T, Isa I>
struct Vec;

// ------------------------------------------------------------------ generic
template <class T>
struct Vec<T, Isa::generic> {
  using reg = T;
  using mask = int;
  static constexpr int W = 1;
  static PE_INLINE reg zero() { return T(0); }
  static PE_INLINE reg set1(T x) { return x; }
  static PE_INLINE reg load(const T* p) { return *p; }
  static PE_INLINE void store(T* p, reg x) { *p = x; }
  static PE_INLINE mask mask_for(int) { return 1; }
  static PE_INLINE reg load_part(const T* p, mask) { return *p; }
  static PE_INLINE void store_part(T* p, mask, reg x) { *p = x; }
  static PE_INLINE reg keep_part(reg x, mask, reg) { return x; }
  static PE_INLINE reg add(reg a, reg b) { return a + b; }
  static PE_INLINE reg sub(reg a, reg b) { return a - b; }
  static PE_INLINE reg mul(reg a, reg b) { return a * b; }
  static PE_INLINE reg fmadd(reg a, reg b, reg c) { return a * b + c; }
  static PE_INLINE reg max(reg a, reg b) { return a < b ? b : a; }
  static PE_INLINE T hsum(reg a) { return a; }
  static PE_INLINE T hmax(reg a) { return a; }
  static PE_INLINE void transpose(reg*) {}  // a 1 x 1 block
  static PE_INLINE reg exp(reg a) { return std::exp(a); }
};

#if PE_X86
#define PE_AVX2_MEMBER PE_TARGET_AVX2 static PE_INLINE
#define PE_AVX512_MEMBER PE_TARGET_AVX512 static PE_INLINE

// ------------------------------------------------------------------ AVX2 + FMA
template <>
struct Vec<float, Isa::avx2> {
  using reg = __m256;
  using mask = __m256i;  // all-ones / zero lanes, for vmaskmov and blendv
  static constexpr int W = 8;
  PE_AVX2_MEMBER reg zero() { return _mm256_setzero_ps(); }
  PE_AVX2_MEMBER reg set1(float x) { return _mm256_set1_ps(x); }
  PE_AVX2_MEMBER reg load(const float* p) { return _mm256_loadu_ps(p); }
  PE_AVX2_MEMBER void store(float* p, reg x) { _mm256_storeu_ps(p, x); }
  PE_AVX2_MEMBER mask mask_for(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  PE_AVX2_MEMBER reg load_part(const float* p, mask m) { return _mm256_maskload_ps(p, m); }
  PE_AVX2_MEMBER void store_part(float* p, mask m, reg x) { _mm256_maskstore_ps(p, m, x); }
  PE_AVX2_MEMBER reg keep_part(reg x, mask m, reg fill) { return _mm256_blendv_ps(fill, x, _mm256_castsi256_ps(m)); }
  PE_AVX2_MEMBER reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  PE_AVX2_MEMBER reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  PE_AVX2_MEMBER reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  PE_AVX2_MEMBER reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  PE_AVX2_MEMBER reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  PE_AVX2_MEMBER float hsum(reg a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  PE_AVX2_MEMBER float hmax(reg a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  PE_AVX2_MEMBER reg exp(reg x) {
    using C = ExpConst<float>;
    const reg xc = _mm256_min_ps(_mm256_set1_ps(C::hi), _mm256_max_ps(_mm256_set1_ps(C::lo), x));
    const reg n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(C::log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    reg r = _mm256_fnmadd_ps(n, _mm256_set1_ps(C::ln2_hi), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(C::ln2_lo), r);
    reg p = _mm256_set1_ps(C::c[C::degree]);
    for (int d = C::degree - 1; d >= 0; --d) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C::c[d]));
    // 2^n, n in [-126, 128], in the exponent field (n = 128 gives +inf).
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const reg y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(C::lo), _CMP_LT_OQ), y);
  }
  PE_AVX2_MEMBER void transpose(reg r[W]) {
    // 1: interleave 32-bit pairs of rows (2i, 2i+1) within each 128-bit lane.
    reg t[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // 2: 64-bit pairs: 128-bit half h of u[4g + c] = column 4h + c of rows 4g..4g+3.
    reg u[8];
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
};

template <>
struct Vec<double, Isa::avx2> {
  using reg = __m256d;
  using mask = __m256i;
  static constexpr int W = 4;
  PE_AVX2_MEMBER reg zero() { return _mm256_setzero_pd(); }
  PE_AVX2_MEMBER reg set1(double x) { return _mm256_set1_pd(x); }
  PE_AVX2_MEMBER reg load(const double* p) { return _mm256_loadu_pd(p); }
  PE_AVX2_MEMBER reg load_widen(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  PE_AVX2_MEMBER void store(double* p, reg x) { _mm256_storeu_pd(p, x); }
  PE_AVX2_MEMBER mask mask_for(int n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  PE_AVX2_MEMBER reg load_part(const double* p, mask m) { return _mm256_maskload_pd(p, m); }
  PE_AVX2_MEMBER void store_part(double* p, mask m, reg x) { _mm256_maskstore_pd(p, m, x); }
  PE_AVX2_MEMBER reg keep_part(reg x, mask m, reg fill) { return _mm256_blendv_pd(fill, x, _mm256_castsi256_pd(m)); }
  PE_AVX2_MEMBER reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  PE_AVX2_MEMBER reg sub(reg a, reg b) { return _mm256_sub_pd(a, b); }
  PE_AVX2_MEMBER reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
  PE_AVX2_MEMBER reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  PE_AVX2_MEMBER reg max(reg a, reg b) { return _mm256_max_pd(a, b); }
  PE_AVX2_MEMBER double hsum(reg a) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  PE_AVX2_MEMBER double hmax(reg a) {
    __m128d s = _mm_max_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_max_sd(s, _mm_unpackhi_pd(s, s)));
  }
  PE_AVX2_MEMBER reg exp(reg x) {
    using C = ExpConst<double>;
    const reg xc = _mm256_min_pd(_mm256_set1_pd(C::hi), _mm256_max_pd(_mm256_set1_pd(C::lo), x));
    const reg n = _mm256_round_pd(_mm256_mul_pd(xc, _mm256_set1_pd(C::log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    reg r = _mm256_fnmadd_pd(n, _mm256_set1_pd(C::ln2_hi), xc);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(C::ln2_lo), r);
    reg p = _mm256_set1_pd(C::c[C::degree]);
    for (int d = C::degree - 1; d >= 0; --d) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(C::c[d]));
    // 2^n without AVX-512's int64 conversion: n + 1.5*2^52 holds n in its low mantissa bits; rebias to
    // n + 1023 and shift into the exponent field (n = 1024 gives +inf).
    const double magic = 6755399441055744.0;  // 1.5 * 2^52
    const __m256i bits = _mm256_castpd_si256(_mm256_add_pd(n, _mm256_set1_pd(magic)));
    const __m256i e = _mm256_slli_epi64(_mm256_sub_epi64(bits, _mm256_set1_epi64x(0x4338000000000000LL - 1023)), 52);
    const reg y = _mm256_mul_pd(p, _mm256_castsi256_pd(e));
    return _mm256_andnot_pd(_mm256_cmp_pd(x, _mm256_set1_pd(C::lo), _CMP_LT_OQ), y);
  }
  PE_AVX2_MEMBER void transpose(reg r[W]) {
    const reg t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const reg t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
  }
};

// ------------------------------------------------------------------ AVX-512
template <>
struct Vec<float, Isa::avx512> {
  using reg = __m512;
  using mask = __mmask16;
  static constexpr int W = 16;
  PE_AVX512_MEMBER reg zero() { return _mm512_setzero_ps(); }
  PE_AVX512_MEMBER reg set1(float x) { return _mm512_set1_ps(x); }
  PE_AVX512_MEMBER reg load(const float* p) { return _mm512_loadu_ps(p); }
  PE_AVX512_MEMBER void store(float* p, reg x) { _mm512_storeu_ps(p, x); }
  PE_AVX512_MEMBER mask mask_for(int n) { return n >= W ? mask(0xFFFF) : mask((1u << n) - 1u); }
  PE_AVX512_MEMBER reg load_part(const float* p, mask m) { return _mm512_maskz_loadu_ps(m, p); }
  // 1 / d without a division: rcp14 and one Newton step r' = r + r (1 - d r), relative error ~2^-24 for a
  // normal d (vdivps, one per 16 lanes, bounded the sigmoid / GELU / log loops at ~2.5 cycles an element)
  PE_AVX512_MEMBER reg recip(reg d) {
    const reg r = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
  }
  PE_AVX512_MEMBER void store_part(float* p, mask m, reg x) { _mm512_mask_storeu_ps(p, m, x); }
  PE_AVX512_MEMBER reg keep_part(reg x, mask m, reg fill) { return _mm512_mask_mov_ps(fill, m, x); }
  PE_AVX512_MEMBER reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  PE_AVX512_MEMBER reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  PE_AVX512_MEMBER reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  PE_AVX512_MEMBER reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  PE_AVX512_MEMBER reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  PE_AVX512_MEMBER float hsum(reg a) { return _mm512_reduce_add_ps(a); }
  PE_AVX512_MEMBER float hmax(reg a) { return _mm512_reduce_max_ps(a); }
  PE_AVX512_MEMBER reg exp(reg x) {
    using C = ExpConst<float>;
    const reg xc = _mm512_min_ps(_mm512_set1_ps(C::hi), _mm512_max_ps(_mm512_set1_ps(C::lo), x));
    const reg n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(C::log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    reg r = _mm512_fnmadd_ps(n, _mm512_set1_ps(C::ln2_hi), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(C::ln2_lo), r);
    reg p = _mm512_set1_ps(C::c[C::degree]);
    for (int d = C::degree - 1; d >= 0; --d) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(C::c[d]));
    const reg y = _mm512_scalef_ps(p, n);  // p * 2^n, +inf on overflow
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(C::lo), _CMP_LT_OQ), _mm512_setzero_ps());
  }
  PE_AVX512_MEMBER void transpose(reg r[W]) {
    // 1: interleave 32-bit pairs of rows (2i, 2i+1) within each 128-bit lane.
    reg t[16];
    for (int i = 0; i < 8; ++i) {
      t[i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[i + 8] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // 2: interleave 64-bit pairs: u[4g + c] lane k = column 4k + c of rows 4g..4g+3.
    reg u[16];
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
      const reg v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
      const reg v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
      const reg v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
      r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
      r[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
      r[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
      r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
  }
};

template <>
struct Vec<double, Isa::avx512> {
  using reg = __m512d;
  using mask = __mmask8;
  static constexpr int W = 8;
  PE_AVX512_MEMBER reg zero() { return _mm512_setzero_pd(); }
  PE_AVX512_MEMBER reg set1(double x) { return _mm512_set1_pd(x); }
  PE_AVX512_MEMBER reg load(const double* p) { return _mm512_loadu_pd(p); }
  PE_AVX512_MEMBER reg load_widen(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  PE_AVX512_MEMBER void store(double* p, reg x) { _mm512_storeu_pd(p, x); }
  PE_AVX512_MEMBER mask mask_for(int n) { return n >= W ? mask(0xFF) : mask((1u << n) - 1u); }
  PE_AVX512_MEMBER reg load_part(const double* p, mask m) { return _mm512_maskz_loadu_pd(m, p); }
  PE_AVX512_MEMBER void store_part(double* p, mask m, reg x) { _mm512_mask_storeu_pd(p, m, x); }
  PE_AVX512_MEMBER reg keep_part(reg x, mask m, reg fill) { return _mm512_mask_mov_pd(fill, m, x); }
  PE_AVX512_MEMBER reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  PE_AVX512_MEMBER reg sub(reg a, reg b) { return _mm512_sub_pd(a, b); }
  PE_AVX512_MEMBER reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  PE_AVX512_MEMBER reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  PE_AVX512_MEMBER reg max(reg a, reg b) { return _mm512_max_pd(a, b); }
  PE_AVX512_MEMBER double hsum(reg a) { return _mm512_reduce_add_pd(a); }
  PE_AVX512_MEMBER double hmax(reg a) { return _mm512_reduce_max_pd(a); }
  PE_AVX512_MEMBER reg exp(reg x) {
    using C = ExpConst<double>;
    const reg xc = _mm512_min_pd(_mm512_set1_pd(C::hi), _mm512_max_pd(_mm512_set1_pd(C::lo), x));
    const reg n = _mm512_roundscale_pd(_mm512_mul_pd(xc, _mm512_set1_pd(C::log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    reg r = _mm512_fnmadd_pd(n, _mm512_set1_pd(C::ln2_hi), xc);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(C::ln2_lo), r);
    reg p = _mm512_set1_pd(C::c[C::degree]);
    for (int d = C::degree - 1; d >= 0; --d) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(C::c[d]));
    const reg y = _mm512_scalef_pd(p, n);
    return _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask(x, _mm512_set1_pd(C::lo), _CMP_LT_OQ), _mm512_setzero_pd());
  }
  PE_AVX512_MEMBER void transpose(reg r[W]) {
    // 1: t[2g + c] lane k = column 2k + c of rows 2g, 2g+1.
    reg t[8];
    for (int g = 0; g < 4; ++g) {
      t[2 * g] = _mm512_unpacklo_pd(r[2 * g], r[2 * g + 1]);
      t[2 * g + 1] = _mm512_unpackhi_pd(r[2 * g], r[2 * g + 1]);
    }
    // 2+3: 4x4 transpose of 128-bit lanes across t[c], t[2+c], t[4+c], t[6+c].
    for (int c = 0; c < 2; ++c) {
      const reg v0 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0x44), v1 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0xEE);
      const reg v2 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0x44);
      const reg v3 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0xEE);
      r[c] = _mm512_shuffle_f64x2(v0, v2, 0x88);
      r[2 + c] = _mm512_shuffle_f64x2(v0, v2, 0xDD);
      r[4 + c] = _mm512_shuffle_f64x2(v1, v3, 0x88);
      r[6 + c] = _mm512_shuffle_f64x2(v1, v3, 0xDD);
    }
  }
};

#undef PE_AVX2_MEMBER
#undef PE_AVX512_MEMBER
#endif  // PE_X86

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

// Runs body(i) for i in [0, n) with `nt` threads. Each thread starts on a share of its own, the same on
// every call (thread t: chunks [c t / nt, c (t + 1) / nt) of the c chunks of `chunk` consecutive i), and
// when its share is done takes what is left of the others' from their front, a chunk at a time (an atomic
// counter per share). So the same thread works on the same part of an array from one op to the next,
// and that part stays in its core's cache (a dynamic schedule moved it between cores on every call: a
// 131k-element mul on 2 threads took 27 us, PyTorch's fixed halves 16 us), while a thread that gets less
// of a busy machine still leaves the rest of its share to the others. body(i) must not depend on which
// thread runs it or in what order. With nt == 1 no OpenMP region is entered at all: even `if(false)`
// costs 1-2 us of team setup (measured on a 4x3 CE call).
template <class F>
inline void parallel_for(index_t n, int nt, index_t chunk, F&& body) {
  if (nt <= 1 || n <= chunk) {
    for (index_t i = 0; i < n; ++i) body(i);
    return;
  }
  chunk = chunk < 1 ? 1 : chunk;
  const index_t chunks = (n + chunk - 1) / chunk;
  if (chunks < nt) nt = static_cast<int>(chunks);
  struct alignas(64) Share {  // one cache line each: the threads' counters do not share lines
    std::atomic<index_t> next;
    index_t end;
  };
  // Allocated here (nothing may throw inside the region); on the stack for the usual team sizes, so a
  // ~10 us kernel pays no heap allocation per call.
  constexpr int kStackShares = 16;
  Share stack_shares[kStackShares];
  std::unique_ptr<Share[]> heap_shares(nt > kStackShares ? new Share[static_cast<size_t>(nt)] : nullptr);
  Share* shares = nt > kStackShares ? heap_shares.get() : stack_shares;
  for (int t = 0; t < nt; ++t) {
    shares[t].next.store(chunks * t / nt, std::memory_order_relaxed);
    shares[t].end = chunks * (t + 1) / nt;
  }
#pragma omp parallel num_threads(nt)
  {
    const int me = vm::thread_id();
    for (int k = 0; k < nt; ++k) {  // own share first, then the others' leftovers
      Share& sh = shares[static_cast<size_t>((me + k) % nt)];
      for (index_t c; (c = sh.next.fetch_add(1, std::memory_order_relaxed)) < sh.end;) {
        const index_t hi = std::min(n, (c + 1) * chunk);
        for (index_t i = c * chunk; i < hi; ++i) body(i);
      }
    }
  }
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
