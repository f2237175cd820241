// A small SIMD vocabulary for the attention kernels: Vec<T, ISA> for T = float or
// double at ISA = 0 (generic: one scalar "lane"), 1 (AVX2 + FMA) and 2 (AVX-512).
// Every member of the AVX2 / AVX-512 versions is marked PE_TARGET_AVX2 /
// PE_TARGET_AVX512, so it may only be inlined into functions carrying the same
// attribute (attention_impl.h); nothing here is compiled with per-file -m flags.
//
// Members: W (lanes), MR x NV (the micro-kernel's register block: MR rows by NV
// vectors), reg, mask (selects the first n lanes of a vector: mask_for(n),
// 1 <= n <= W), zero, set1, load, store, load_part (masked-out lanes read as 0
// and are never touched in memory), store_part, keep_part(x, mask, fill) (lanes
// outside the mask = fill), add, sub, mul, fmadd(a, b, c) = a*b + c, max, hsum,
// hmax, exp, and transpose (a W x W block held in W registers; simd.h's
// in-register transposes).
//
// exp: x = n ln2 + r with |r| <= ln2/2 (Cody & Waite's two-constant ln2), e^r by
// its Taylor polynomial (degree 7 for float: error r^8/8! < 6e-9; degree 13 for
// double: r^14/14! < 5e-18), times 2^n. Inputs below `lo` (e^lo is about the
// smallest normal number) give exactly 0, as -inf must; NaN propagates. The
// attention kernels only call it on s - max <= 0 (up to rounding).
// (Why not simd.h's exp_avx512 / exp_avx2, which the loss kernels use: swapped
// in here it made the attention forward pass 30% slower at B16 H4 T128 D32,
// although the two cost the same in a loop of their own; until that is
// understood the attention kernels keep this one.)
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "common.h"
#include "simd.h"  // pe::simd::transpose_avx512 / transpose_avx2

#if PE_X86
#include <immintrin.h>
#endif

namespace pe {
namespace attn {
namespace simd {

template <class T>
struct ExpConst;
template <>
struct ExpConst<float> {
  static constexpr float lo = -87.0f, hi = 88.0f;
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  static constexpr int degree = 7;
};
template <>
struct ExpConst<double> {
  static constexpr double lo = -708.0, hi = 709.0;
  static constexpr double log2e = 1.44269504088896340736;
  static constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  static constexpr int degree = 13;
};
// 1/k!, k = 0..13 (Taylor coefficients of e^r).
constexpr double kInvFact[14] = {1.0,
                                 1.0,
                                 1.0 / 2,
                                 1.0 / 6,
                                 1.0 / 24,
                                 1.0 / 120,
                                 1.0 / 720,
                                 1.0 / 5040,
                                 1.0 / 40320,
                                 1.0 / 362880,
                                 1.0 / 3628800,
                                 1.0 / 39916800,
                                 1.0 / 479001600,
                                 1.0 / 6227020800.0};

template <class T, int ISA>
struct Vec;

// ------------------------------------------------------------------ generic
template <class T>
struct Vec<T, 0> {
  using reg = T;
  using mask = int;
  static constexpr int W = 1, MR = 4, NV = 4;
  static inline reg zero() { return T(0); }
  static inline reg set1(T x) { return x; }
  static inline reg load(const T* p) { return *p; }
  static inline void store(T* p, reg x) { *p = x; }
  static inline mask mask_for(int) { return 1; }
  static inline reg load_part(const T* p, mask) { return *p; }
  static inline void store_part(T* p, mask, reg x) { *p = x; }
  static inline reg keep_part(reg x, mask, reg) { return x; }
  static inline reg add(reg a, reg b) { return a + b; }
  static inline reg sub(reg a, reg b) { return a - b; }
  static inline reg mul(reg a, reg b) { return a * b; }
  static inline reg fmadd(reg a, reg b, reg c) { return a * b + c; }
  static inline reg max(reg a, reg b) { return a < b ? b : a; }
  static inline T hsum(reg a) { return a; }
  static inline T hmax(reg a) { return a; }
  static inline void transpose(reg*) {}  // a 1 x 1 block
  static inline reg exp(reg a) { return std::exp(a); }
};

#if PE_X86
// ------------------------------------------------------------------ AVX2 + FMA
template <>
struct Vec<float, 1> {
  using reg = __m256;
  using mask = __m256i;
  static constexpr int W = 8, MR = 6, NV = 2;  // 12 accumulators + 2 B + 1 A of 16 registers
  PE_TARGET_AVX2 static inline reg zero() { return _mm256_setzero_ps(); }
  PE_TARGET_AVX2 static inline reg set1(float x) { return _mm256_set1_ps(x); }
  PE_TARGET_AVX2 static inline reg load(const float* p) { return _mm256_loadu_ps(p); }
  PE_TARGET_AVX2 static inline void store(float* p, reg x) { _mm256_storeu_ps(p, x); }
  PE_TARGET_AVX2 static inline mask mask_for(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  PE_TARGET_AVX2 static inline reg load_part(const float* p, mask m) { return _mm256_maskload_ps(p, m); }
  PE_TARGET_AVX2 static inline void store_part(float* p, mask m, reg x) { _mm256_maskstore_ps(p, m, x); }
  PE_TARGET_AVX2 static inline reg keep_part(reg x, mask m, reg fill) { return _mm256_blendv_ps(fill, x, _mm256_castsi256_ps(m)); }
  PE_TARGET_AVX2 static inline reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  PE_TARGET_AVX2 static inline reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  PE_TARGET_AVX2 static inline reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  PE_TARGET_AVX2 static inline reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  PE_TARGET_AVX2 static inline reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  PE_TARGET_AVX2 static inline float hsum(reg a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  PE_TARGET_AVX2 static inline float hmax(reg a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  PE_TARGET_AVX2 static inline void transpose(reg r[W]) { pe::simd::transpose_avx2(r); }
  PE_TARGET_AVX2 static inline reg exp(reg x) {
    using C = ExpConst<float>;
    // max/min return their second operand when one is NaN: NaN survives the clamp.
    reg xc = _mm256_min_ps(_mm256_set1_ps(C::hi), _mm256_max_ps(_mm256_set1_ps(C::lo), x));
    reg n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(C::log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    reg r = _mm256_fnmadd_ps(n, _mm256_set1_ps(C::ln2_hi), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(C::ln2_lo), r);
    reg p = _mm256_set1_ps(float(kInvFact[C::degree]));
    for (int d = C::degree - 1; d >= 0; --d) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(float(kInvFact[d])));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    reg y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(C::lo), _CMP_LT_OQ), y);
  }
};

template <>
struct Vec<double, 1> {
  using reg = __m256d;
  using mask = __m256i;
  static constexpr int W = 4, MR = 6, NV = 2;
  PE_TARGET_AVX2 static inline reg zero() { return _mm256_setzero_pd(); }
  PE_TARGET_AVX2 static inline reg set1(double x) { return _mm256_set1_pd(x); }
  PE_TARGET_AVX2 static inline reg load(const double* p) { return _mm256_loadu_pd(p); }
  PE_TARGET_AVX2 static inline void store(double* p, reg x) { _mm256_storeu_pd(p, x); }
  PE_TARGET_AVX2 static inline mask mask_for(int n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  PE_TARGET_AVX2 static inline reg load_part(const double* p, mask m) { return _mm256_maskload_pd(p, m); }
  PE_TARGET_AVX2 static inline void store_part(double* p, mask m, reg x) { _mm256_maskstore_pd(p, m, x); }
  PE_TARGET_AVX2 static inline reg keep_part(reg x, mask m, reg fill) { return _mm256_blendv_pd(fill, x, _mm256_castsi256_pd(m)); }
  PE_TARGET_AVX2 static inline reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  PE_TARGET_AVX2 static inline reg sub(reg a, reg b) { return _mm256_sub_pd(a, b); }
  PE_TARGET_AVX2 static inline reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
  PE_TARGET_AVX2 static inline reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  PE_TARGET_AVX2 static inline reg max(reg a, reg b) { return _mm256_max_pd(a, b); }
  PE_TARGET_AVX2 static inline double hsum(reg a) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  PE_TARGET_AVX2 static inline double hmax(reg a) {
    __m128d s = _mm_max_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_max_sd(s, _mm_unpackhi_pd(s, s)));
  }
  PE_TARGET_AVX2 static inline void transpose(reg r[W]) { pe::simd::transpose_avx2(r); }
  PE_TARGET_AVX2 static inline reg exp(reg x) {
    using C = ExpConst<double>;
    reg xc = _mm256_min_pd(_mm256_set1_pd(C::hi), _mm256_max_pd(_mm256_set1_pd(C::lo), x));
    reg n = _mm256_round_pd(_mm256_mul_pd(xc, _mm256_set1_pd(C::log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    reg r = _mm256_fnmadd_pd(n, _mm256_set1_pd(C::ln2_hi), xc);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(C::ln2_lo), r);
    reg p = _mm256_set1_pd(kInvFact[C::degree]);
    for (int d = C::degree - 1; d >= 0; --d) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(kInvFact[d]));
    // 2^n without AVX-512's int64 conversion: n + 1.5*2^52 holds n in its low
    // mantissa bits; rebias to n + 1023 and shift into the exponent field.
    const double magic = 6755399441055744.0;  // 1.5 * 2^52
    __m256i bits = _mm256_castpd_si256(_mm256_add_pd(n, _mm256_set1_pd(magic)));
    __m256i e = _mm256_slli_epi64(_mm256_sub_epi64(bits, _mm256_set1_epi64x(0x4338000000000000LL - 1023)), 52);
    reg y = _mm256_mul_pd(p, _mm256_castsi256_pd(e));
    return _mm256_andnot_pd(_mm256_cmp_pd(x, _mm256_set1_pd(C::lo), _CMP_LT_OQ), y);
  }
};

// ------------------------------------------------------------------ AVX-512
template <>
struct Vec<float, 2> {
  using reg = __m512;
  using mask = __mmask16;
  static constexpr int W = 16, MR = 6, NV = 4;  // 24 accumulators + 4 B + 1 A of 32 registers
  PE_TARGET_AVX512 static inline reg zero() { return _mm512_setzero_ps(); }
  PE_TARGET_AVX512 static inline reg set1(float x) { return _mm512_set1_ps(x); }
  PE_TARGET_AVX512 static inline reg load(const float* p) { return _mm512_loadu_ps(p); }
  PE_TARGET_AVX512 static inline void store(float* p, reg x) { _mm512_storeu_ps(p, x); }
  PE_TARGET_AVX512 static inline mask mask_for(int n) { return static_cast<mask>((1u << n) - 1u); }
  PE_TARGET_AVX512 static inline reg load_part(const float* p, mask m) { return _mm512_maskz_loadu_ps(m, p); }
  PE_TARGET_AVX512 static inline void store_part(float* p, mask m, reg x) { _mm512_mask_storeu_ps(p, m, x); }
  PE_TARGET_AVX512 static inline reg keep_part(reg x, mask m, reg fill) { return _mm512_mask_mov_ps(fill, m, x); }
  PE_TARGET_AVX512 static inline reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  PE_TARGET_AVX512 static inline reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  PE_TARGET_AVX512 static inline reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  PE_TARGET_AVX512 static inline reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  PE_TARGET_AVX512 static inline reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  PE_TARGET_AVX512 static inline float hsum(reg a) { return _mm512_reduce_add_ps(a); }
  PE_TARGET_AVX512 static inline float hmax(reg a) { return _mm512_reduce_max_ps(a); }
  PE_TARGET_AVX512 static inline void transpose(reg r[W]) { pe::simd::transpose_avx512(r); }
  PE_TARGET_AVX512 static inline reg exp(reg x) {
    using C = ExpConst<float>;
    reg xc = _mm512_min_ps(_mm512_set1_ps(C::hi), _mm512_max_ps(_mm512_set1_ps(C::lo), x));
    reg n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(C::log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    reg r = _mm512_fnmadd_ps(n, _mm512_set1_ps(C::ln2_hi), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(C::ln2_lo), r);
    reg p = _mm512_set1_ps(float(kInvFact[C::degree]));
    for (int d = C::degree - 1; d >= 0; --d) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(float(kInvFact[d])));
    reg y = _mm512_scalef_ps(p, n);  // p * 2^n
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(C::lo), _CMP_LT_OQ), _mm512_setzero_ps());
  }
};

template <>
struct Vec<double, 2> {
  using reg = __m512d;
  using mask = __mmask8;
  static constexpr int W = 8, MR = 6, NV = 4;
  PE_TARGET_AVX512 static inline reg zero() { return _mm512_setzero_pd(); }
  PE_TARGET_AVX512 static inline reg set1(double x) { return _mm512_set1_pd(x); }
  PE_TARGET_AVX512 static inline reg load(const double* p) { return _mm512_loadu_pd(p); }
  PE_TARGET_AVX512 static inline void store(double* p, reg x) { _mm512_storeu_pd(p, x); }
  PE_TARGET_AVX512 static inline mask mask_for(int n) { return static_cast<mask>((1u << n) - 1u); }
  PE_TARGET_AVX512 static inline reg load_part(const double* p, mask m) { return _mm512_maskz_loadu_pd(m, p); }
  PE_TARGET_AVX512 static inline void store_part(double* p, mask m, reg x) { _mm512_mask_storeu_pd(p, m, x); }
  PE_TARGET_AVX512 static inline reg keep_part(reg x, mask m, reg fill) { return _mm512_mask_mov_pd(fill, m, x); }
  PE_TARGET_AVX512 static inline reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  PE_TARGET_AVX512 static inline reg sub(reg a, reg b) { return _mm512_sub_pd(a, b); }
  PE_TARGET_AVX512 static inline reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  PE_TARGET_AVX512 static inline reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  PE_TARGET_AVX512 static inline reg max(reg a, reg b) { return _mm512_max_pd(a, b); }
  PE_TARGET_AVX512 static inline double hsum(reg a) { return _mm512_reduce_add_pd(a); }
  PE_TARGET_AVX512 static inline double hmax(reg a) { return _mm512_reduce_max_pd(a); }
  PE_TARGET_AVX512 static inline void transpose(reg r[W]) { pe::simd::transpose_avx512(r); }
  PE_TARGET_AVX512 static inline reg exp(reg x) {
    using C = ExpConst<double>;
    reg xc = _mm512_min_pd(_mm512_set1_pd(C::hi), _mm512_max_pd(_mm512_set1_pd(C::lo), x));
    reg n = _mm512_roundscale_pd(_mm512_mul_pd(xc, _mm512_set1_pd(C::log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    reg r = _mm512_fnmadd_pd(n, _mm512_set1_pd(C::ln2_hi), xc);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(C::ln2_lo), r);
    reg p = _mm512_set1_pd(kInvFact[C::degree]);
    for (int d = C::degree - 1; d >= 0; --d) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(kInvFact[d]));
    reg y = _mm512_scalef_pd(p, n);
    return _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask(x, _mm512_set1_pd(C::lo), _CMP_LT_OQ), _mm512_setzero_pd());
  }
};
#endif  // PE_X86

}  // namespace simd
}  // namespace attn
}  // namespace pe
