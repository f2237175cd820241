// Elementwise kernels (see elementwise.h): one N-d walker, many ops.
//
// Layout of this file: the float math the ops need (exp over the whole float range, log, tanh,
// sigmoid: plain arithmetic that auto-vectorises; double uses libm), then each op as a small struct
// with one scalar function f(a, b, c, p), then the walker `Walk<K, T>` that runs an op over a range of
// the output's elements in row order, and the driver that picks the op, the SIMD level and the threads.
//
// The walker: the binding has merged every axis it could, so the last axis is a "row" and most calls
// are one row (contiguous, same shape) or rows with a broadcast operand. Each row runs one of a few
// loops chosen by the operands' strides along it: each input contiguous or of stride 0 (a broadcast
// scalar or column: loaded once), in any combination (the vectorised loops), or any strides (a scalar
// loop). Each loop is compiled per op and per SIMD level (style 1 of simd.h: the
// bodies are always-inline and vectorise inside run_avx2 / run_avx512).
//
// Threads: the output's elements are split in equal ranges; a range may start and end mid-row.
// Inputs of fewer than ~32k elements' work run on the calling thread (threads_for); transcendental
// ops weigh more per element, so they go parallel sooner.
#include "cpu/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "cpu/simd.h"

// GCC 12 reports _mm512_max_ps's undefined pass-through operand (inside simd::Vec::max) as "may be used
// uninitialized" once inlined here; it is a false positive (the mask is all ones).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace pe {
namespace cpu {
namespace ew {
namespace {

// ====================================================================== float math
// exp(x) by ExpConst's algorithm (simd.h), over the whole float range: vm::exp_f stops at 88.3 (its
// 2^n must fit one exponent field); here n = 128 (x in (88.3, 88.72]) is applied as 2^127 * 2, so
// every finite result NumPy gives is finite here too. Results below FLT_MIN are 0 (simd.h: denormal
// results cost a microcode assist each, and slow whatever reads them).
PE_INLINE float exp_full(float x) {
  using C = ExpConst<float>;
  const float xc = std::min(std::max(x, -104.0f), 89.0f);  // NaN stays NaN (std::max/min keep arg 1)
  const float n = vm::round_int(xc * C::log2e);             // in [-150, 128]
  const float r = (xc - n * C::ln2_hi) - n * C::ln2_lo;
  float p = C::c[6];
  p = p * r + C::c[5];
  p = p * r + C::c[4];
  p = p * r + C::c[3];
  p = p * r + C::c[2];
  p = 1.0f + r + (r * r) * p;
  const float n1 = std::min(std::max(n, -126.0f), 127.0f);
  float e = p * vm::pow2_int(n1);
  e = n > 127.0f ? e * 2.0f : e;  // overflows to +inf exactly past FLT_MAX
  return x < C::lo ? 0.0f : e;
}

// log(x) = e ln2 + log(m) with x = m 2^e, m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s) with
// s = (m - 1) / (m + 1), |s| <= 0.1716: 2 atanh(s) = 2s + 2s^3/3 + 2s^5/5 + ... (series to s^11:
// truncation below 3e-9 relative). m - 1 is exact (Sterbenz), so results are within ~2 ulp.
// Denormal x is scaled by 2^23 first. x < 0 or NaN -> NaN, 0 -> -inf, +inf -> +inf.
PE_INLINE float log_f(float x) {
  const bool tiny = x < std::numeric_limits<float>::min();
  const float xs = tiny ? x * 8388608.0f : x;
  const std::uint32_t u = vm::bits(xs);
  float m = vm::from_bits((u & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
  float e = float(std::int32_t((u >> 23) & 0xFFu) - 127) - (tiny ? 23.0f : 0.0f);
  const bool hi = m > 1.41421356f;
  m = hi ? 0.5f * m : m;
  e = hi ? e + 1.0f : e;
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  float q = 2.0f / 11;
  q = q * s2 + 2.0f / 9;
  q = q * s2 + 2.0f / 7;
  q = q * s2 + 2.0f / 5;
  q = q * s2 + 2.0f / 3;
  const float lm = 2.0f * s + s * (s2 * q);
  using C = ExpConst<float>;
  float r = e * C::ln2_hi + (e * C::ln2_lo + lm);
  r = x == 0.0f ? -std::numeric_limits<float>::infinity() : r;
  r = x == std::numeric_limits<float>::infinity() ? x : r;
  return (x < 0.0f || x != x) ? std::numeric_limits<float>::quiet_NaN() : r;
}

// tanh: |x| < 0.55 by its Taylor series to x^19 (truncation < 1e-8 relative there); beyond, by
// (1 - t) / (1 + t) with t = e^{-2|x|} in (0, 1] (never overflows), whose cancellation costs at most
// a factor 1 at 0.55 (the result is >= 0.5). The sign is put back last. NaN -> NaN (the second
// branch), +-inf -> +-1.
PE_INLINE float tanh_post(float x, float t) {  // t = e^{-2|x|}
  const float ax = std::fabs(x);
  const float x2 = ax * ax;
  float p = 6404582.0f / 10854718875.0f;
  p = p * x2 - 929569.0f / 638512875.0f;
  p = p * x2 + 21844.0f / 6081075.0f;
  p = p * x2 - 1382.0f / 155925.0f;
  p = p * x2 + 62.0f / 2835.0f;
  p = p * x2 - 17.0f / 315.0f;
  p = p * x2 + 2.0f / 15.0f;
  p = p * x2 - 1.0f / 3.0f;
  const float small = ax + ax * (x2 * p);
  const float big = (1.0f - t) / (1.0f + t);
  const float r = ax < 0.55f ? small : big;
  return std::copysign(r, x);
}
PE_INLINE float tanh_f(float x) { return tanh_post(x, exp_full(-2.0f * std::fabs(x))); }

// sigmoid(x) = 1 / (1 + e^-x), from ea = e^{-|x|} in (0, 1] (never overflows):
// x >= 0: 1 / (1 + ea);  x < 0: ea / (1 + ea).
PE_INLINE float sigmoid_f(float x) {
  const float ea = exp_full(-std::fabs(x));
  const float r = 1.0f / (1.0f + ea);
  return x >= 0.0f ? r : ea * r;
}
PE_INLINE double sigmoid_f(double x) {
  const double ea = std::exp(-std::fabs(x));
  const double r = 1.0 / (1.0 + ea);
  return x >= 0.0 ? r : ea * r;
}

// Double kernels use libm (exact, scalar), as the other families do.
PE_INLINE float vexp(float x) { return exp_full(x); }
PE_INLINE double vexp(double x) { return std::exp(x); }
PE_INLINE float vlog(float x) { return log_f(x); }
PE_INLINE double vlog(double x) { return std::log(x); }
PE_INLINE float vtanh(float x) { return tanh_f(x); }
PE_INLINE double vtanh(double x) { return std::tanh(x); }

// ====================================================================== ops
// Each op: the types of out and of its inputs (A, B, C; unused inputs are T), its arity, a cost per
// element for threads_for (1 = a load, an op, a store), and f(a, b, c, p). Formulas are the reference's
// (pyengine/backend/reference/elementwise.py), written in the same order so that roundings agree.

template <class T, int N, int Cost = 1>
struct Base {
  using O = T;
  using A = T;
  using B = T;
  using C = T;
  static constexpr int arity = N;
  static constexpr int cost = Cost;
};
template <class T, int Cost = 1>
struct Cmp : Base<T, 2, Cost> {
  using O = bool;
};
template <class T, int N>
struct Masked : Base<T, N> {
  using A = bool;
};
// Ops that call libm in double cost ~10x more per element than in float.
template <class T>
constexpr int heavy = sizeof(T) == 4 ? 4 : 16;
// Float ops built on one exp: Arg says which (1: e^x, -1: e^{-|x|}, -2: e^{-2|x|}). On a contiguous row
// at AVX2 / AVX-512 the walker runs them by intrinsics (Walk::exp_row): simd::Vec's exp (~1.7x faster
// than the auto-vectorised exp_full) and, for tanh and sigmoid, their finish in registers.
template <class T, int Arg>
struct ExpOf : Base<T, 1, heavy<T>> {
  static constexpr int exp_arg = Arg;
};
template <class K, class = void>
struct exp_arg_of { static constexpr int value = 0; };
template <class K>
struct exp_arg_of<K, std::void_t<decltype(K::exp_arg)>> { static constexpr int value = K::exp_arg; };

#define PE_EW_OP(name, expr, ...)                                 \
  template <class T>                                              \
  struct name : __VA_ARGS__ {                                     \
    using P = __VA_ARGS__;                                        \
    static PE_INLINE typename P::O f(typename P::A a, typename P::B b, typename P::C c, T p) { \
      (void)a; (void)b; (void)c; (void)p;                          \
      return expr;                                                 \
    }                                                              \
  };

// binary
PE_EW_OP(Add, a + b, Base<T, 2>)
PE_EW_OP(Sub, a - b, Base<T, 2>)
PE_EW_OP(Mul, a * b, Base<T, 2>)
PE_EW_OP(Div, a / b, Base<T, 2>)
PE_EW_OP(Pow, std::pow(a, b), Base<T, 2, 16>)
PE_EW_OP(Maximum, (a > b || a != a) ? a : b, Base<T, 2>)  // NaN wins, ties give b (as np.maximum)
PE_EW_OP(Minimum, (a < b || a != a) ? a : b, Base<T, 2>)
// comparisons
PE_EW_OP(Eq, a == b, Cmp<T>)
PE_EW_OP(Ne, a != b, Cmp<T>)
PE_EW_OP(Lt, a < b, Cmp<T>)
PE_EW_OP(Le, a <= b, Cmp<T>)
PE_EW_OP(Gt, a > b, Cmp<T>)
PE_EW_OP(Ge, a >= b, Cmp<T>)
// where(c, a, b): here a = the condition
PE_EW_OP(Where, a ? b : c, Masked<T, 3>)
// unary
PE_EW_OP(Neg, -a, Base<T, 1>)
PE_EW_OP(Exp, vexp(a), ExpOf<T, 1>)
PE_EW_OP(Log, vlog(a), Base<T, 1, heavy<T>>)
PE_EW_OP(Sqrt, std::sqrt(a), Base<T, 1>)
PE_EW_OP(Rsqrt, T(1) / std::sqrt(a), Base<T, 1>)
PE_EW_OP(Abs, std::fabs(a), Base<T, 1>)
PE_EW_OP(Tanh, vtanh(a), ExpOf<T, -2>)
PE_EW_OP(Sigmoid, sigmoid_f(a), ExpOf<T, -1>)
// a^p: NumPy's special exponents as plain arithmetic, any other by libm
PE_EW_OP(PowGeneral, std::pow(a, p), Base<T, 1, 16>)
PE_EW_OP(Square, a * a, Base<T, 1>)
PE_EW_OP(Cube, a * a * a, Base<T, 1>)
PE_EW_OP(Reciprocal, T(1) / a, Base<T, 1>)
PE_EW_OP(Identity, a, Base<T, 1>)
PE_EW_OP(One, T(1), Base<T, 1>)
// backward rules (elementwise.h lists their operands)
PE_EW_OP(ExpGrad, b * a, Base<T, 2>)
PE_EW_OP(LogGrad, b / a, Base<T, 2>)
PE_EW_OP(SqrtGrad, b / (T(2) * a), Base<T, 2>)
PE_EW_OP(RsqrtGrad, (T(-0.5) * b) * (a * a * a), Base<T, 2>)
PE_EW_OP(AbsGrad, b * (a > T(0) ? T(1) : (a < T(0) ? T(-1) : a)), Base<T, 2>)  // sign(a); 0 and NaN are a
PE_EW_OP(TanhGrad, b * (T(1) - a * a), Base<T, 2>)
PE_EW_OP(SigmoidGrad, (b * a) * (T(1) - a), Base<T, 2>)
PE_EW_OP(PowScalarGradGeneral, (b * p) * std::pow(a, p - T(1)), Base<T, 2, 16>)
PE_EW_OP(SquareGrad, (b * T(2)) * a, Base<T, 2>)
PE_EW_OP(CubeGrad, (b * T(3)) * (a * a), Base<T, 2>)
PE_EW_OP(ReciprocalGrad, (b * T(-1)) / (a * a), Base<T, 2>)      // p = -1:  x^-2
PE_EW_OP(DivGradB, ((-a) * b) / (c * c), Base<T, 3>)
PE_EW_OP(PowGradA, (a * c) * std::pow(b, c - T(1)), Base<T, 3, 16>)
PE_EW_OP(PowGradB, (a * b) * vlog(c), Base<T, 3, heavy<T>>)
PE_EW_OP(MaxGradA, a * (b > c ? T(1) : (b == c ? T(0.5) : T(0))), Base<T, 3>)
PE_EW_OP(MaxGradB, a * (b > c ? T(0) : (b == c ? T(0.5) : T(1))), Base<T, 3>)
PE_EW_OP(MinGradA, a * (b < c ? T(1) : (b == c ? T(0.5) : T(0))), Base<T, 3>)
PE_EW_OP(MinGradB, a * (b < c ? T(0) : (b == c ? T(0.5) : T(1))), Base<T, 3>)
PE_EW_OP(MaskKeep, a ? b : T(0), Masked<T, 2>)
PE_EW_OP(MaskDrop, a ? T(0) : b, Masked<T, 2>)
#undef PE_EW_OP

// The Vec exp over a block for ExpOf ops: dst[i] = e^{x[i]} (Arg 1) or e^{Arg |x[i]|}
// (|x| = max(x, -x): NaN stays NaN). One function per level, with that level's target attribute.
#define PE_EW_EXP_BLOCK(suffix, target, isa_)                                        \
  template <int Arg>                                                                 \
  target void exp_block_##suffix(const float* x, float* dst, index_t m) {            \
    using V = simd::Vec<float, isa_>;                                                \
    using reg = typename V::reg;                                                     \
    const reg scale = V::set1(float(Arg));                                           \
    index_t i = 0;                                                                   \
    for (; i + V::W <= m; i += V::W) {                                               \
      reg v = V::load(x + i);                                                        \
      if constexpr (Arg != 1) v = V::mul(scale, V::max(v, V::sub(V::zero(), v)));    \
      V::store(dst + i, V::exp(v));                                                  \
    }                                                                                \
    if (i < m) {                                                                     \
      const auto mk = V::mask_for(static_cast<int>(m - i));                          \
      reg v = V::load_part(x + i, mk);                                               \
      if constexpr (Arg != 1) v = V::mul(scale, V::max(v, V::sub(V::zero(), v)));    \
      V::store_part(dst + i, mk, V::exp(v));                                         \
    }                                                                                \
  }
#if PE_X86
PE_EW_EXP_BLOCK(avx512, PE_TARGET_AVX512, Isa::avx512)
PE_EW_EXP_BLOCK(avx2, PE_TARGET_AVX2, Isa::avx2)
#endif
#undef PE_EW_EXP_BLOCK

// tanh and sigmoid of a block in one pass of intrinsics. tanh: the generic path's two branches (a series
// for |x| < 0.55 and (1 - t) / (1 + t), ~37 vector ops per 16 lanes, compute-bound at 1.5x PyTorch's time)
// become one formula on em = e^{-2|x|} - 1, computed without cancellation as 2^n (e^r - 1) + (2^n - 1) by
// ExpConst's reduction (n <= 0, so 2^n - 1 is exact and the FMA rounds once; e^r - 1 = r + r^2 P(r) with
// ExpConst's P): tanh |x| = -em / (2 + em), ~23 ops. Within 3 ulp on a dense grid (test_elementwise checks
// 4). sigmoid: e^{-|x|} by Vec::exp, then 1 / (1 + t). 1 / d: AVX-512's rcp14 and one Newton step,
// r' = r + r (1 - d r) (relative error ~2^-24); AVX2's rcp has 12 bits, too few: it divides. -2|x| is
// clamped at -87 (2^n stays normal: no denormal assists); NaN stays NaN (max keeps its second operand),
// +-inf gives +-1.
#if PE_X86
struct Fast512 {
  using V = simd::Vec<float, Isa::avx512>;
  using reg = __m512;
  PE_TARGET_AVX512 static PE_INLINE reg recip(reg d) { return V::recip(d); }
  PE_TARGET_AVX512 static PE_INLINE reg abs(reg x) { return _mm512_abs_ps(x); }
  PE_TARGET_AVX512 static PE_INLINE reg sign(reg x) {  // x's sign bit alone
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)));
  }
  PE_TARGET_AVX512 static PE_INLINE reg or_bits(reg a, reg b) {
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
  }
  PE_TARGET_AVX512 static PE_INLINE reg lt_select(reg a, reg b, reg x, reg y) {  // a < b ? x : y
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), x);
  }
  PE_TARGET_AVX512 static PE_INLINE reg ge_select(reg a, reg b, reg x, reg y) {  // a >= b ? x : y
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ), x);
  }
  PE_TARGET_AVX512 static PE_INLINE reg round(reg x) {
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  PE_TARGET_AVX512 static PE_INLINE reg pow2(reg n) { return _mm512_scalef_ps(_mm512_set1_ps(1.0f), n); }
};
struct Fast2 {
  using V = simd::Vec<float, Isa::avx2>;
  using reg = __m256;
  PE_TARGET_AVX2 static PE_INLINE reg recip(reg d) { return _mm256_div_ps(_mm256_set1_ps(1.0f), d); }
  PE_TARGET_AVX2 static PE_INLINE reg abs(reg x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  PE_TARGET_AVX2 static PE_INLINE reg sign(reg x) { return _mm256_and_ps(_mm256_set1_ps(-0.0f), x); }
  PE_TARGET_AVX2 static PE_INLINE reg or_bits(reg a, reg b) { return _mm256_or_ps(a, b); }
  PE_TARGET_AVX2 static PE_INLINE reg lt_select(reg a, reg b, reg x, reg y) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
  }
  PE_TARGET_AVX2 static PE_INLINE reg ge_select(reg a, reg b, reg x, reg y) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GE_OQ));
  }
  PE_TARGET_AVX2 static PE_INLINE reg round(reg x) {
    return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  PE_TARGET_AVX2 static PE_INLINE reg pow2(reg n) {  // n integral in [-126, 127]
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
};

#define PE_EW_FUSED_BLOCKS(suffix, target, F)                                                   \
  target PE_INLINE F::reg tanh_vec_##suffix(F::reg x) {                                         \
    using V = F::V;                                                                             \
    using C = ExpConst<float>;                                                                  \
    const F::reg ax = F::abs(x);                                                                \
    const F::reg y = V::max(V::set1(-87.0f), V::mul(V::set1(-2.0f), ax));                       \
    const F::reg n = F::round(V::mul(y, V::set1(C::log2e)));                                    \
    F::reg r = V::fmadd(n, V::set1(-C::ln2_hi), y);                                             \
    r = V::fmadd(n, V::set1(-C::ln2_lo), r);                                                    \
    F::reg q = V::set1(C::c[6]);                                                                \
    q = V::fmadd(q, r, V::set1(C::c[5]));                                                       \
    q = V::fmadd(q, r, V::set1(C::c[4]));                                                       \
    q = V::fmadd(q, r, V::set1(C::c[3]));                                                       \
    q = V::fmadd(q, r, V::set1(C::c[2]));                                                       \
    const F::reg p = V::fmadd(V::mul(r, r), q, r);                   /* e^r - 1 */              \
    const F::reg s = F::pow2(n);                                                                \
    const F::reg em = V::fmadd(s, p, V::sub(s, V::set1(1.0f)));       /* e^y - 1 */              \
    const F::reg t = V::mul(em, F::recip(V::add(em, V::set1(2.0f)))); /* -tanh |x| */           \
    return F::or_bits(F::abs(t), F::sign(x));                                                   \
  }                                                                                             \
  target PE_INLINE F::reg sigmoid_vec_##suffix(F::reg x) {                                      \
    using V = F::V;                                                                             \
    const F::reg t = V::exp(V::sub(V::zero(), F::abs(x)));                                      \
    const F::reg r = F::recip(V::add(V::set1(1.0f), t));                                        \
    return F::ge_select(x, V::zero(), r, V::mul(t, r));                                         \
  }                                                                                             \
  template <int Arg>                                                                            \
  target void fused_block_##suffix(const float* x, float* o, index_t m) {                       \
    using V = F::V;                                                                             \
    index_t i = 0;                                                                              \
    for (; i + V::W <= m; i += V::W) {                                                          \
      const F::reg v = V::load(x + i);                                                          \
      V::store(o + i, Arg == -2 ? tanh_vec_##suffix(v) : sigmoid_vec_##suffix(v));              \
    }                                                                                           \
    if (i < m) {                                                                                \
      const auto mk = V::mask_for(static_cast<int>(m - i));                                     \
      const F::reg v = V::load_part(x + i, mk);                                                 \
      V::store_part(o + i, mk, Arg == -2 ? tanh_vec_##suffix(v) : sigmoid_vec_##suffix(v));     \
    }                                                                                           \
  }
// log and sqrt of a float block at AVX-512. log: log_f's algorithm with the hardware's exponent and
// mantissa (getexp / getmant: denormals included, so no scaling step; a negative x or NaN gives NaN by
// getmant's sign control) and (m - 1) / (m + 1) by rcp14 and one Newton step (log_f's division cost as
// much as the rest together); 0 (either sign) -> -inf by one fix-up, +inf -> +inf by getexp. sqrt: rsqrt14
// and one Newton step on the residual, s = s0 + (x - s0^2) y / 2 with s0 = x y (vsqrtps: ~1.6x PyTorch's
// time), within 0.6 ulp (not always correctly rounded, as vsqrtps is); a vector holding any x outside
// [FLT_MIN, inf) (0, denormals, negatives, inf, NaN, where the step fails) is vsqrtps'.
PE_TARGET_AVX512 PE_INLINE __m512 log_vec_avx512(__m512 x) {
  using C = ExpConst<float>;
  const __m512 m1 = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_nan);  // [1, 2)
  __m512 e = _mm512_getexp_ps(x);
  const __mmask16 hi = _mm512_cmp_ps_mask(m1, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
  const __m512 m = _mm512_mask_mul_ps(m1, hi, m1, _mm512_set1_ps(0.5f));
  e = _mm512_mask_add_ps(e, hi, e, _mm512_set1_ps(1.0f));
  const __m512 d = _mm512_add_ps(m, _mm512_set1_ps(1.0f));
  const __m512 r = simd::Vec<float, Isa::avx512>::recip(d);
  const __m512 sv = _mm512_mul_ps(_mm512_sub_ps(m, _mm512_set1_ps(1.0f)), r);
  const __m512 s2 = _mm512_mul_ps(sv, sv);
  __m512 q = _mm512_set1_ps(2.0f / 11);
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(2.0f / 9));
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(2.0f / 7));
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(2.0f / 5));
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(2.0f / 3));
  const __m512 lm = _mm512_fmadd_ps(sv, _mm512_mul_ps(s2, q), _mm512_add_ps(sv, sv));
  const __m512 res = _mm512_fmadd_ps(e, _mm512_set1_ps(C::ln2_hi), _mm512_fmadd_ps(e, _mm512_set1_ps(C::ln2_lo), lm));
  return _mm512_mask_mov_ps(res, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_EQ_OQ),
                            _mm512_set1_ps(-std::numeric_limits<float>::infinity()));
}
PE_TARGET_AVX512 PE_INLINE __m512 sqrt_vec_avx512(__m512 x) {
  const __mmask16 normal =
      _mm512_cmp_ps_mask(x, _mm512_set1_ps(std::numeric_limits<float>::min()), _CMP_GE_OQ) &
      _mm512_cmp_ps_mask(x, _mm512_set1_ps(std::numeric_limits<float>::infinity()), _CMP_LT_OQ);
  if (normal != 0xFFFF) return _mm512_sqrt_ps(x);  // 0, denormal, negative, inf, NaN lanes: vsqrtps
  const __m512 y = _mm512_rsqrt14_ps(x);
  const __m512 s0 = _mm512_mul_ps(x, y);
  return _mm512_fmadd_ps(_mm512_fnmadd_ps(s0, s0, x), _mm512_mul_ps(_mm512_set1_ps(0.5f), y), s0);
}
template <int Which>  // 0: log, 1: sqrt
PE_TARGET_AVX512 void unary_block_avx512(const float* x, float* o, index_t m) {
  index_t i = 0;
  for (; i + 16 <= m; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    _mm512_storeu_ps(o + i, Which == 0 ? log_vec_avx512(v) : sqrt_vec_avx512(v));
  }
  if (i < m) {
    const __mmask16 mk = static_cast<__mmask16>((1u << (m - i)) - 1u);
    const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), mk, x + i);
    _mm512_mask_storeu_ps(o + i, mk, Which == 0 ? log_vec_avx512(v) : sqrt_vec_avx512(v));
  }
}
PE_EW_FUSED_BLOCKS(avx512, PE_TARGET_AVX512, Fast512)
PE_EW_FUSED_BLOCKS(avx2, PE_TARGET_AVX2, Fast2)
#undef PE_EW_FUSED_BLOCKS
#endif

// ====================================================================== the walker
// Access modes of an operand along a row: 0 = one value (stride 0), 1 = contiguous, 2 = any stride.
template <int M, class V>
PE_INLINE V at(const V* p, index_t i, index_t s) {
  if constexpr (M == 0) return p[0];
  else if constexpr (M == 1) return p[i];
  else return p[i * s];
}

template <template <class> class Op, class T>
struct WalkArgs {  // one call's operands (shared by the walkers of every SIMD level)
  const Layout* L;
  typename Op<T>::O* out;
  const typename Op<T>::A* a;
  const typename Op<T>::B* b;
  const typename Op<T>::C* c;
  T p;
};

template <template <class> class Op, class T, Isa I>
struct Walk {
  using K = Op<T>;
  using O = typename K::O;
  using A = typename K::A;
  using B = typename K::B;
  using C = typename K::C;
  using Args = WalkArgs<Op, T>;

  // One row of n >= 1 elements. The modes are compile-time; an input the op does not read is mode 0.
  template <int Mo, int Ma, int Mb, int Mc>
  static PE_INLINE void row(O* o, index_t so, const A* a, index_t sa, const B* b, index_t sb, const C* c,
                            index_t sc, index_t n, T p) {
    if constexpr (Mo == 1 && Ma != 2 && Mb != 2 && Mc != 2) {
      // values of stride-0 operands hoisted; the loop reads the contiguous ones
      const A a0 = a[0];
      const B b0 = b[0];
      const C c0 = c[0];
      for (index_t i = 0; i < n; ++i)
        o[i] = K::f(Ma == 0 ? a0 : a[i], Mb == 0 ? b0 : b[i], Mc == 0 ? c0 : c[i], p);
    } else {
      for (index_t i = 0; i < n; ++i)
        o[Mo == 1 ? i : i * so] = K::f(at<Ma>(a, i, sa), at<Mb>(b, i, sb), at<Mc>(c, i, sc), p);
    }
  }

  // A contiguous row of a float exp-based op at AVX2 / AVX-512 (see ExpOf): exp by simd::Vec in blocks
  // of kBlock; tanh and sigmoid by their fused intrinsic passes (fused_block_*).
  static PE_INLINE void exp_row(O* o, const A* a, index_t n) {
    if constexpr (std::is_same_v<T, float> && I != Isa::generic && exp_arg_of<K>::value != 0) {
      constexpr int Arg = exp_arg_of<K>::value;
      if constexpr (Arg != 1) {  // tanh, sigmoid: one fused pass
        if constexpr (I == Isa::avx512) fused_block_avx512<Arg>(a, o, n);
        else fused_block_avx2<Arg>(a, o, n);
        return;
      }
      constexpr index_t kBlock = 512;
      for (index_t i0 = 0; i0 < n; i0 += kBlock) {
        const index_t m = std::min(kBlock, n - i0);
        const float* x = a + i0;
        if constexpr (I == Isa::avx512) {
          exp_block_avx512<Arg>(x, o + i0, m);
        } else {
          // AVX2's Vec::exp gives +inf from x = 88.38 on; the true overflow is at 88.72 (AVX-512's
          // vscalef is exact): a block with such an x is computed by exp_full instead. (Tested before
          // the block is written: in place, o is x.)
          bool big = false;
          for (index_t j = 0; j < m; ++j) big |= x[j] > 88.3f;
          if (big)
            for (index_t j = 0; j < m; ++j) o[i0 + j] = exp_full(x[j]);
          else
            exp_block_avx2<Arg>(x, o + i0, m);
        }
      }
    }  // (called only under the same condition, from row_any)
  }

  // Picks the row loop from the strides along the row: a contiguous output whose inputs are each contiguous
  // or one value (stride 0) runs the hoisted loop of that combination (all 2^arity of them: the gradient of
  // a sum is a broadcast scalar, so a backward such as div's da = g / b with b broadcast along the row has
  // two stride-0 inputs, and took the any-stride scalar loop: 2x slower than PyTorch on (64, 32, 64)).
  static PE_INLINE void row_any(O* o, index_t so, const A* a, index_t sa, const B* b, index_t sb, const C* c,
                                index_t sc, index_t n, T p) {
    constexpr int N = K::arity;
    if (so == 1) {
      const bool ca = sa == 1;
      if constexpr (N == 1 && std::is_same_v<T, float> && I != Isa::generic && exp_arg_of<K>::value != 0) {
        if (ca) return exp_row(o, a, n);
      }
#if PE_X86
      if constexpr (I == Isa::avx512 && (std::is_same_v<K, Log<float>> || std::is_same_v<K, Sqrt<float>>)) {
        if (ca) return unary_block_avx512<std::is_same_v<K, Log<float>> ? 0 : 1>(a, o, n);
      }
#endif
      const int ma = sa == 1 ? 1 : sa == 0 ? 0 : 2;
      const int mb = N < 2 ? 0 : sb == 1 ? 1 : sb == 0 ? 0 : 2;
      const int mc = N < 3 ? 0 : sc == 1 ? 1 : sc == 0 ? 0 : 2;
      if (ma != 2 && mb != 2 && mc != 2) {
        switch (ma | mb << 1 | mc << 2) {
          case 0: return row<1, 0, 0, 0>(o, 1, a, 0, b, 0, c, 0, n, p);
          case 1: return row<1, 1, 0, 0>(o, 1, a, 1, b, 0, c, 0, n, p);
          default: break;
        }
        if constexpr (N >= 2) {
          switch (ma | mb << 1 | mc << 2) {
            case 2: return row<1, 0, 1, 0>(o, 1, a, 0, b, 1, c, 0, n, p);
            case 3: return row<1, 1, 1, 0>(o, 1, a, 1, b, 1, c, 0, n, p);
            default: break;
          }
        }
        if constexpr (N >= 3) {
          switch (ma | mb << 1 | mc << 2) {
            case 4: return row<1, 0, 0, 1>(o, 1, a, 0, b, 0, c, 1, n, p);
            case 5: return row<1, 1, 0, 1>(o, 1, a, 1, b, 0, c, 1, n, p);
            case 6: return row<1, 0, 1, 1>(o, 1, a, 0, b, 1, c, 1, n, p);
            case 7: return row<1, 1, 1, 1>(o, 1, a, 1, b, 1, c, 1, n, p);
            default: break;
          }
        }
      }
    }
    row<2, 2, N < 2 ? 0 : 2, N < 3 ? 0 : 2>(o, so, a, sa, b, sb, c, sc, n, p);
  }

  // Elements [lo, hi) of the output in row-major order.
  static PE_INLINE void run(const Args& g, index_t lo, index_t hi) {
    const Layout& L = *g.L;
    const int last = L.ndim - 1;
    const index_t len = L.shape[last];
    index_t idx[kMaxDims];
    index_t j = lo % len, rest = lo / len;
    for (int d = last - 1; d >= 0; --d) {
      idx[d] = rest % L.shape[d];
      rest /= L.shape[d];
    }
    const index_t* so = L.stride[0];
    const index_t* sa = L.stride[1];
    const index_t* sb = L.stride[2];
    const index_t* sc = L.stride[3];
    while (lo < hi) {
      const index_t n = std::min(len - j, hi - lo);
      index_t oo = j * so[last], oa = j * sa[last], ob = j * sb[last], oc = j * sc[last];
      for (int d = 0; d < last; ++d) {
        oo += idx[d] * so[d];
        oa += idx[d] * sa[d];
        ob += idx[d] * sb[d];
        oc += idx[d] * sc[d];
      }
      row_any(g.out + oo, so[last], g.a + oa, sa[last], g.b + ob, sb[last], g.c + oc, sc[last], n, g.p);
      lo += n;
      j = 0;
      for (int d = last - 1; d >= 0; --d) {
        if (++idx[d] < L.shape[d]) break;
        idx[d] = 0;
      }
    }
  }
};

template <template <class> class Op, class T>
void launch(const Layout& L, void* out, const void* const in[3], double p) {
  using W = Walk<Op, T, Isa::generic>;
  using K = typename W::K;
  // Inputs the op does not read point at a dummy value (their mode is 0: read once, unused).
  static const typename W::A dummy_a{};
  static const typename W::B dummy_b{};
  static const typename W::C dummy_c{};
  const typename W::Args args{&L, static_cast<typename W::O*>(out),
                              in[0] ? static_cast<const typename W::A*>(in[0]) : &dummy_a,
                              (K::arity >= 2 && in[1]) ? static_cast<const typename W::B*>(in[1]) : &dummy_b,
                              (K::arity >= 3 && in[2]) ? static_cast<const typename W::C*>(in[2]) : &dummy_c,
                              static_cast<T>(p)};
  RangeFn<W> fn = &run_generic<W>;  // each level's own Walk (exp_row uses that level's Vec)
  switch (isa()) {
    case Isa::avx512: fn = &run_avx512<Walk<Op, T, Isa::avx512>>; break;
    case Isa::avx2: fn = &run_avx2<Walk<Op, T, Isa::avx2>>; break;
    default: break;
  }
  const index_t n = L.n;
  const int nt = threads_for(n * K::cost);
  if (nt <= 1) {
    fn(args, 0, n);
    return;
  }
  // 4 ranges per thread, 64-element aligned: a thread that gets less of the machine takes fewer.
  const index_t parts = index_t(nt) * 4;
  const index_t step = ((n + parts - 1) / parts + 63) / 64 * 64;
  const index_t chunks = (n + step - 1) / step;
  parallel_for(chunks, nt, 1, [&](index_t i) { fn(args, i * step, std::min(n, (i + 1) * step)); });
}

}  // namespace

int arity(Op op) {
  switch (op) {
    case Op::neg: case Op::exp: case Op::log: case Op::sqrt: case Op::rsqrt: case Op::abs: case Op::tanh:
    case Op::sigmoid: case Op::pow_scalar:
      return 1;
    case Op::where: case Op::div_grad_b: case Op::pow_grad_a: case Op::pow_grad_b: case Op::max_grad_a:
    case Op::max_grad_b: case Op::min_grad_a: case Op::min_grad_b:
      return 3;
    default:
      return 2;
  }
}
bool writes_bool(Op op) { return op >= Op::eq && op <= Op::ge; }
bool reads_bool(Op op) { return op == Op::where || op == Op::mask_keep || op == Op::mask_drop; }

template <class T>
void run(Op op, const Layout& L, void* out, const void* const in[3], double p) {
#define PE_EW_CASE(code, K) \
  case Op::code:            \
    return launch<K, T>(L, out, in, p);
  switch (op) {
    PE_EW_CASE(add, Add)
    PE_EW_CASE(sub, Sub)
    PE_EW_CASE(mul, Mul)
    PE_EW_CASE(div, Div)
    PE_EW_CASE(pow, Pow)
    PE_EW_CASE(maximum, Maximum)
    PE_EW_CASE(minimum, Minimum)
    PE_EW_CASE(eq, Eq)
    PE_EW_CASE(ne, Ne)
    PE_EW_CASE(lt, Lt)
    PE_EW_CASE(le, Le)
    PE_EW_CASE(gt, Gt)
    PE_EW_CASE(ge, Ge)
    PE_EW_CASE(where, Where)
    PE_EW_CASE(neg, Neg)
    PE_EW_CASE(exp, Exp)
    PE_EW_CASE(log, Log)
    PE_EW_CASE(sqrt, Sqrt)
    PE_EW_CASE(rsqrt, Rsqrt)
    PE_EW_CASE(abs, Abs)
    PE_EW_CASE(tanh, Tanh)
    PE_EW_CASE(sigmoid, Sigmoid)
    PE_EW_CASE(exp_grad, ExpGrad)
    PE_EW_CASE(log_grad, LogGrad)
    PE_EW_CASE(sqrt_grad, SqrtGrad)
    PE_EW_CASE(rsqrt_grad, RsqrtGrad)
    PE_EW_CASE(abs_grad, AbsGrad)
    PE_EW_CASE(tanh_grad, TanhGrad)
    PE_EW_CASE(sigmoid_grad, SigmoidGrad)
    PE_EW_CASE(div_grad_b, DivGradB)
    PE_EW_CASE(pow_grad_a, PowGradA)
    PE_EW_CASE(pow_grad_b, PowGradB)
    PE_EW_CASE(max_grad_a, MaxGradA)
    PE_EW_CASE(max_grad_b, MaxGradB)
    PE_EW_CASE(min_grad_a, MinGradA)
    PE_EW_CASE(min_grad_b, MinGradB)
    PE_EW_CASE(mask_keep, MaskKeep)
    PE_EW_CASE(mask_drop, MaskDrop)
    case Op::pow_scalar:  // NumPy's fast exponents (np.power with a scalar 2, 3, 0.5, -1, 1, 0)
      if (p == 2) return launch<Square, T>(L, out, in, p);
      if (p == 3) return launch<Cube, T>(L, out, in, p);
      if (p == 0.5) return launch<Sqrt, T>(L, out, in, p);
      if (p == -1) return launch<Reciprocal, T>(L, out, in, p);
      if (p == 1) return launch<Identity, T>(L, out, in, p);
      if (p == 0) return launch<One, T>(L, out, in, p);
      return launch<PowGeneral, T>(L, out, in, p);
    case Op::pow_scalar_grad:  // g p x^(p-1) (not p = 0.5 by 1 / sqrt: pow(-inf, -0.5) = 0, pow(-0, -0.5) = +inf)
      if (p == 2) return launch<SquareGrad, T>(L, out, in, p);
      if (p == 3) return launch<CubeGrad, T>(L, out, in, p);
      if (p == -1) return launch<ReciprocalGrad, T>(L, out, in, p);
      return launch<PowScalarGradGeneral, T>(L, out, in, p);
    default:
      return;  // the binding refuses unknown codes
  }
#undef PE_EW_CASE
}

template void run<float>(Op, const Layout&, void*, const void* const[3], double);
template void run<double>(Op, const Layout&, void*, const void* const[3], double);

}  // namespace ew
}  // namespace cpu
}  // namespace pe
