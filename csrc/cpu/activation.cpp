// Activation kernels: ReLU, GELU, softmax / log-softmax (see activation.h).
//
// Layout of this file: for each op, an always-inline body over one span (or one
// row), compiled per ISA by PE_ISA_VARIANTS (simd.h), and a driver
// that picks the variant for pe::isa() and spreads spans / rows over threads.
// Forward and backward sit side by side.
//
// Float math uses the vectorisable exp / normal-CDF in simd.h; double
// uses libm (std::exp, std::erfc), exact but scalar.
#include "cpu/activation.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "cpu/lanes.h"
#include "cpu/simd.h"

namespace pe {
namespace cpu {
namespace {

// ====================================================================== helpers

// Elementwise ops run over spans of kSpan elements: enough work per call to hide
// the indirect call, small enough to split evenly over threads. `cost` weights
// threads_for's grain by how heavy one element is (1 = a load, an op, a store).
constexpr index_t kSpan = 8192;

template <class F>
void for_spans(index_t n, index_t cost, F&& f) {
  const int nt = threads_for(n * cost);
  if (nt <= 1) {  // no OpenMP region at all for small inputs (saves the fork/join)
    f(index_t(0), n);
    return;
  }
  const index_t spans = (n + kSpan - 1) / kSpan;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (index_t s = 0; s < spans; ++s) {
    const index_t i0 = s * kSpan;
    f(i0, std::min(kSpan, n - i0));
  }
}

// Row-wise ops: rows over threads (static: equal-length rows, equal work).
// `work` is N * C weighted like for_spans' cost.
template <class F>
void for_rows(index_t N, index_t work, F&& f) {
  const int nt = threads_for(work);
  if (nt <= 1) {
    for (index_t r = 0; r < N; ++r) f(r);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (index_t r = 0; r < N; ++r) f(r);
}

// ====================================================================== ReLU
// x, y: (n,)   forward  y = max(x, 0)         (NaN stays NaN, as np.maximum)
//              backward dx = dy * (x > 0)     (written as a select: 0 * inf would be NaN)

template <class T>
PE_INLINE void relu_fwd_span_body(const T* x, T* y, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
}
template <class T>
PE_INLINE void relu_bwd_span_body(const T* x, const T* dy, T* dx, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    const T d = dy[i];  // loaded unconditionally, so the select vectorises without masked loads
    dx[i] = x[i] > T(0) ? d : T(0);
  }
}
PE_ISA_VARIANTS(relu_fwd_span, (const T* x, T* y, index_t n), (x, y, n))
PE_ISA_VARIANTS(relu_bwd_span, (const T* x, const T* dy, T* dx, index_t n), (x, dy, dx, n))

// ====================================================================== GELU
// x, y, dy, dx: (n,)
// 'none':  y = x Phi(x),                       GELU'(x) = Phi(x) + x phi(x)
//          phi(x) = e^{-x^2/2} / sqrt(2 pi)
// 'tanh':  y = 0.5 x (1 + tanh u),  u = sqrt(2/pi) (x + 0.044715 x^3)
//          GELU'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) u'(x),  t = tanh u
// The tanh form is evaluated through s = sigma(2u) = 0.5 (1 + tanh u):
//          y = x s,   1 - t^2 = 4 s (1 - s),
//          GELU'(x) = s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
// which never forms 1 + tanh u (it cancels to nothing for u << 0, losing all
// relative precision exactly where y is small).

constexpr double kSqrt2OverPi = 0.797884560802865355879892119869;
constexpr double kInvSqrt2 = 0.707106781186547524400844362105;
constexpr double kInvSqrt2Pi = 0.398942280401432677939946059934;
constexpr double kGeluC = 0.044715;

// The tanh form needs s = sigma(2u) and 1 - s = sigma(-2u). Both come from
// ea = e^{-|2u|} in (0, 1], which never overflows:
//     u >= 0:  s = 1 / (1 + ea),   1 - s = ea / (1 + ea)
//     u <  0:  s = ea / (1 + ea),  1 - s = 1 / (1 + ea)
// (with e^{-2u} itself, u << 0 would overflow to inf and lose y ~ 1e-38, and
// 1 - s would cancel for u >> 0).
// For float the exponent 2u = x (c0 + c1 x^2) is formed in float, so it carries
// a relative rounding error of a few 2^-24, which exp turns into an error of
// |2u| times that in e^{-|2u|}: y is within ~3 ulp for x >= -1, 1e-6 relative
// at x = -4 and 1.3e-5 at x = -10 (where |y| < 1e-35). Forming 2u in double
// fixes that but made this op 4x slower (compute bound, not memory bound); the
// usual 0.5 x (1 + tanh u) in float is far worse still (2e-4 at x = -4).
template <class T>
struct Sigmoid {
  T s, one_minus_s;
};
PE_INLINE Sigmoid<float> gelu_tanh_sigmoid(float x) {
  float v = -std::fabs(x * (float(2.0 * kSqrt2OverPi) + float(2.0 * kSqrt2OverPi * kGeluC) * (x * x)));
  const float ea = vm::exp_f(v);
  const float r = 1.0f / (1.0f + ea);
  const float re = ea * r;
  return x >= 0.0f ? Sigmoid<float>{r, re} : Sigmoid<float>{re, r};
}
PE_INLINE Sigmoid<double> gelu_tanh_sigmoid(double x) {
  const double ea = std::exp(-std::fabs(x * (2.0 * kSqrt2OverPi + (2.0 * kSqrt2OverPi * kGeluC) * (x * x))));
  const double r = 1.0 / (1.0 + ea);
  const double re = ea * r;
  return x >= 0.0 ? Sigmoid<double>{r, re} : Sigmoid<double>{re, r};
}

template <class T>
PE_INLINE T gelu_tanh(T x) {
  return x * gelu_tanh_sigmoid(x).s;
}
template <class T>
PE_INLINE T gelu_tanh_grad(T x) {
  const Sigmoid<T> sg = gelu_tanh_sigmoid(x);
  // s (1 - s) is exactly 0 once |x| is past ~11 (float) / ~16 (double), so the
  // polynomial may use |x| clamped to 1e4: x^2 then cannot overflow into
  // 0 * inf = NaN. x = +-inf still gives NaN through x s (1 - s), as the reference.
  const T xc = std::min(std::fabs(x), T(1e4));
  const T poly = T(kSqrt2OverPi) + T(3 * kGeluC * kSqrt2OverPi) * (xc * xc);
  return sg.s + x * (T(2) * sg.s * sg.one_minus_s * poly);  // not 2 x: it overflows for x near max
}

// 'none' form: vm::normal_f for float (Phi = h g or 1 - h g, g = e^{-x^2/2},
// multiplied by g last so tiny results stay exact), libm for double.
//   y = x Phi = (x h) g                           (x < 0)
//   GELU' = Phi + x g / sqrt(2 pi) = g (h + x / sqrt(2 pi))     (x < 0)
PE_INLINE float gelu_erf(float x) {
  const vm::NormalF nf = vm::normal_f(x);
  return x < 0.0f ? (x * nf.h) * nf.g : x * (1.0f - nf.h * nf.g);
}
PE_INLINE double gelu_erf(double x) { return x * (0.5 * std::erfc(-x * kInvSqrt2)); }
PE_INLINE float gelu_erf_grad(float x) {
  const vm::NormalF nf = vm::normal_f(x);
  const float xc = x * float(kInvSqrt2Pi);
  return x < 0.0f ? nf.g * (nf.h + xc) : (1.0f - nf.h * nf.g) + xc * nf.g;
}
PE_INLINE double gelu_erf_grad(double x) {
  return 0.5 * std::erfc(-x * kInvSqrt2) + x * (std::exp(-0.5 * x * x) * kInvSqrt2Pi);
}

template <class T>
PE_INLINE void gelu_fwd_span_body(const T* x, T* y, index_t n, bool tanh_approx) {
  if (tanh_approx) {
    for (index_t i = 0; i < n; ++i) y[i] = gelu_tanh(x[i]);
  } else {
    for (index_t i = 0; i < n; ++i) y[i] = gelu_erf(x[i]);
  }
}
template <class T>
PE_INLINE void gelu_bwd_span_body(const T* x, const T* dy, T* dx, index_t n, bool tanh_approx) {
  if (tanh_approx) {
    for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * gelu_tanh_grad(x[i]);
  } else {
    for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * gelu_erf_grad(x[i]);
  }
}
PE_ISA_VARIANTS(gelu_fwd_span, (const T* x, T* y, index_t n, bool t), (x, y, n, t))
PE_ISA_VARIANTS(gelu_bwd_span, (const T* x, const T* dy, T* dx, index_t n, bool t), (x, dy, dx, n, t))

#if PE_X86
// The float tanh form on AVX-512, written on intrinsics: the same arithmetic as
// gelu_tanh_sigmoid, with 1 / (1 + ea) (1 + ea in [1, 2]) as rcp14 and one Newton
// step (relative error ~2^-27, under an ulp) instead of a division: the compiled
// division (vdivps zmm, one per 16 elements) bounded the plain loop at ~2.5 cycles
// an element, over twice the time of a copy; the GPT MLP runs this twice a layer.
using VF16 = simd::Vec<float, Isa::avx512>;

struct SigmoidF16 {
  __m512 s, one_minus_s;
};

PE_TARGET_AVX512 inline SigmoidF16 gelu_tanh_sigmoid16(__m512 x) {
  const __m512 c0 = _mm512_set1_ps(float(2.0 * kSqrt2OverPi));
  const __m512 c1 = _mm512_set1_ps(float(2.0 * kSqrt2OverPi * kGeluC));
  const __m512 u2 = _mm512_mul_ps(x, _mm512_fmadd_ps(_mm512_mul_ps(x, x), c1, c0));  // 2u
  const __m512 v = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(u2), _mm512_set1_epi32(INT32_MIN)));
  const __m512 ea = VF16::exp(v);  // e^{-|2u|}
  const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), ea);
  const __m512 r = VF16::recip(d);  // 1 / (1 + ea)
  const __m512 re = _mm512_mul_ps(ea, r);
  const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
  return {_mm512_mask_mov_ps(re, pos, r), _mm512_mask_mov_ps(r, pos, re)};
}

PE_TARGET_AVX512 inline __m512 gelu_tanh16(__m512 x) { return _mm512_mul_ps(x, gelu_tanh_sigmoid16(x).s); }

// dy * GELU'(x), as gelu_tanh_grad
PE_TARGET_AVX512 inline __m512 gelu_tanh_grad16(__m512 x, __m512 dy) {
  const SigmoidF16 sg = gelu_tanh_sigmoid16(x);
  const __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_set1_epi32(INT32_MIN), _mm512_castps_si512(x)));
  const __m512 xc = _mm512_min_ps(ax, _mm512_set1_ps(1e4f));  // min(NaN, c) = c here; x NaN still gives NaN below
  const __m512 poly = _mm512_fmadd_ps(_mm512_set1_ps(float(3 * kGeluC * kSqrt2OverPi)), _mm512_mul_ps(xc, xc),
                                      _mm512_set1_ps(float(kSqrt2OverPi)));
  const __m512 t = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(2.0f), sg.s), sg.one_minus_s), poly);
  return _mm512_mul_ps(dy, _mm512_fmadd_ps(x, t, sg.s));
}

PE_TARGET_AVX512 void gelu_tanh_fwd_avx512(const float* x, float* y, index_t n) {
  index_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, gelu_tanh16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = VF16::mask_for(static_cast<int>(n - i));
    _mm512_mask_storeu_ps(y + i, m, gelu_tanh16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

PE_TARGET_AVX512 void gelu_tanh_bwd_avx512(const float* x, const float* dy, float* dx, index_t n) {
  index_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dx + i, gelu_tanh_grad16(_mm512_loadu_ps(x + i), _mm512_loadu_ps(dy + i)));
  if (i < n) {
    const __mmask16 m = VF16::mask_for(static_cast<int>(n - i));
    _mm512_mask_storeu_ps(dx + i, m, gelu_tanh_grad16(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, dy + i)));
  }
}
#endif

// ====================================================================== softmax
// x, y, dy, dx: (N, C), one row at a time (a row stays in L1/L2 between passes).
// forward:   m = max(x) (0 for a fully masked row, as the reference), z = x - m,
//            softmax y = e^z / sum(e^z),   log-softmax y = z - log(sum(e^z))
// backward:  softmax dx = y (dy - sum(dy y)),   log-softmax dx = dy - e^y sum(dy)
// Sums accumulate in double (for float: sum of C positive terms, no cancellation,
// but C * 2^-24 could reach 1e-3 on long rows).
// Masked entries: -inf gives e^z = 0 exactly. A fully masked row gives sum = 0
// and y = 0 * (1/0) = NaN (softmax) or -inf - (-inf) = NaN (log), which is what
// the reference gives (its lse is log 0 = -inf too). NaN and +inf follow the
// formula: a NaN entry makes the sum, so the whole row, NaN; a +inf entry makes
// m = +inf and z = inf - inf = NaN there, so the whole row is NaN too.

template <class T>
PE_INLINE void softmax_fwd_row_body(const T* x, T* y, index_t C, bool log) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (index_t j = 0; j < C; ++j) m = x[j] > m ? x[j] : m;
  if (m == std::numeric_limits<T>::infinity()) {
    for (index_t j = 0; j < C; ++j) y[j] = std::numeric_limits<T>::quiet_NaN();
    return;
  }
  if (m == -std::numeric_limits<T>::infinity()) m = T(0);
  double s = 0.0;
  if (log) {
#pragma omp simd reduction(+ : s)
    for (index_t j = 0; j < C; ++j) s += vm::vexp(x[j] - m);
    const T lse = static_cast<T>(std::log(s));
    for (index_t j = 0; j < C; ++j) y[j] = (x[j] - m) - lse;
  } else {
#pragma omp simd reduction(+ : s)
    for (index_t j = 0; j < C; ++j) {
      const T e = vm::vexp(x[j] - m);
      y[j] = e;
      s += e;
    }
    const T inv = static_cast<T>(1.0 / s);
    for (index_t j = 0; j < C; ++j) y[j] *= inv;
  }
}
template <class T>
PE_INLINE void softmax_bwd_row_body(const T* y, const T* dy, T* dx, index_t C, bool log) {
  if (log) {
    const T st = static_cast<T>(lanes::dot_generic<false>(dy, dy, C));
#pragma omp simd
    for (index_t j = 0; j < C; ++j) dx[j] = dy[j] - vm::vexp(y[j]) * st;
  } else {
    const T st = static_cast<T>(lanes::dot_generic<true>(dy, y, C));
#pragma omp simd
    for (index_t j = 0; j < C; ++j) dx[j] = y[j] * (dy[j] - st);
  }
}
PE_ISA_VARIANTS(softmax_fwd_row, (const T* x, T* y, index_t C, bool log), (x, y, C, log))
PE_ISA_VARIANTS(softmax_bwd_row, (const T* y, const T* dy, T* dx, index_t C, bool log), (y, dy, dx, C, log))

// Float rows on AVX2 / AVX-512: intrinsics (softmax_rows_impl.h). The bodies above, whose exp and sums GCC
// vectorised, took 1.2x (forward) and 1.45x (backward) PyTorch's time for (256, 512) on one thread.
#if PE_X86
#define PE_SM_TARGET PE_TARGET_AVX512
#define PE_SM_ISA Isa::avx512
#define PE_SM_NAME(name) name##_avx512
#include "cpu/softmax_rows_impl.h"
#undef PE_SM_TARGET
#undef PE_SM_ISA
#undef PE_SM_NAME
#define PE_SM_TARGET PE_TARGET_AVX2
#define PE_SM_ISA Isa::avx2
#define PE_SM_NAME(name) name##_avx2
#include "cpu/softmax_rows_impl.h"
#undef PE_SM_TARGET
#undef PE_SM_ISA
#undef PE_SM_NAME
#endif

template <class T>
auto softmax_fwd_row_kernel() {
#if PE_X86
  if constexpr (std::is_same_v<T, float>) {
    if (isa() == Isa::avx512) return &softmax_fwd_row_f_avx512;
    if (isa() == Isa::avx2) return &softmax_fwd_row_f_avx2;
  }
#endif
  return softmax_fwd_row_for_isa<T>();
}
template <class T>
auto softmax_bwd_row_kernel() {
#if PE_X86
  if constexpr (std::is_same_v<T, float>) {
    if (isa() == Isa::avx512) return &softmax_bwd_row_f_avx512;
    if (isa() == Isa::avx2) return &softmax_bwd_row_f_avx2;
  }
#endif
  return softmax_bwd_row_for_isa<T>();
}

// Softmax over a middle axis: x, y, dy, dx: (C, I) slices of (N, C, I), along C for each of the columns
// [j0, j0 + n) (n <= kCols). The same formulas as the rows above, each pass a loop over C outside a loop
// over the block's columns, which is contiguous and vectorises; the block's running max and sums stay in
// L1 (kCols of them), and each pass streams the (C, n) block once.
constexpr index_t kCols = 256;

template <class T>
PE_INLINE void softmax_fwd_cols_body(const T* x, T* y, index_t C, index_t I, index_t n, bool log) {
  constexpr T inf = std::numeric_limits<T>::infinity();
  T m[kCols];
  double s[kCols];
  for (index_t j = 0; j < n; ++j) m[j] = -inf, s[j] = 0.0;
  for (index_t c = 0; c < C; ++c) {
    const T* xc = x + c * I;
#pragma omp simd
    for (index_t j = 0; j < n; ++j) m[j] = xc[j] > m[j] ? xc[j] : m[j];
  }
  bool any_inf = false;
  for (index_t j = 0; j < n; ++j) {
    any_inf |= m[j] == inf;
    if (m[j] == -inf) m[j] = T(0);  // a fully masked column: shift by 0 (sum 0 gives NaN below)
  }
  for (index_t c = 0; c < C; ++c) {
    const T* xc = x + c * I;
    T* yc = y + c * I;
#pragma omp simd
    for (index_t j = 0; j < n; ++j) {
      const T e = vm::vexp(xc[j] - m[j]);
      if (!log) yc[j] = e;
      s[j] += e;
    }
  }
  if (log) {
    T lse[kCols];
    for (index_t j = 0; j < n; ++j) lse[j] = static_cast<T>(std::log(s[j]));
    for (index_t c = 0; c < C; ++c) {
      const T* xc = x + c * I;
      T* yc = y + c * I;
#pragma omp simd
      for (index_t j = 0; j < n; ++j) yc[j] = (xc[j] - m[j]) - lse[j];
    }
  } else {
    T inv[kCols];
    for (index_t j = 0; j < n; ++j) inv[j] = static_cast<T>(1.0 / s[j]);
    for (index_t c = 0; c < C; ++c) {
      T* yc = y + c * I;
#pragma omp simd
      for (index_t j = 0; j < n; ++j) yc[j] *= inv[j];
    }
  }
  if (any_inf)  // a +inf makes its column NaN (inf - inf), as the rows
    for (index_t j = 0; j < n; ++j)
      if (m[j] == inf)
        for (index_t c = 0; c < C; ++c) y[c * I + j] = std::numeric_limits<T>::quiet_NaN();
}
template <class T>
PE_INLINE void softmax_bwd_cols_body(const T* y, const T* dy, T* dx, index_t C, index_t I, index_t n, bool log) {
  double s[kCols];
  for (index_t j = 0; j < n; ++j) s[j] = 0.0;
  for (index_t c = 0; c < C; ++c) {
    const T *yc = y + c * I, *dc = dy + c * I;
    if (log) {
#pragma omp simd
      for (index_t j = 0; j < n; ++j) s[j] += dc[j];
    } else {
#pragma omp simd
      for (index_t j = 0; j < n; ++j) s[j] += static_cast<double>(dc[j]) * yc[j];
    }
  }
  T st[kCols];
  for (index_t j = 0; j < n; ++j) st[j] = static_cast<T>(s[j]);
  for (index_t c = 0; c < C; ++c) {
    const T *yc = y + c * I, *dc = dy + c * I;
    T* xc = dx + c * I;
    if (log) {
#pragma omp simd
      for (index_t j = 0; j < n; ++j) xc[j] = dc[j] - vm::vexp(yc[j]) * st[j];
    } else {
#pragma omp simd
      for (index_t j = 0; j < n; ++j) xc[j] = yc[j] * (dc[j] - st[j]);
    }
  }
}
PE_ISA_VARIANTS(softmax_fwd_cols, (const T* x, T* y, index_t C, index_t I, index_t n, bool log),
                (x, y, C, I, n, log))
PE_ISA_VARIANTS(softmax_bwd_cols, (const T* y, const T* dy, T* dx, index_t C, index_t I, index_t n, bool log),
                (y, dy, dx, C, I, n, log))

}  // namespace

// ====================================================================== drivers

template <class T>
void relu_forward(const T* x, T* y, index_t n) {
  auto k = relu_fwd_span_for_isa<T>();
  for_spans(n, 1, [&](index_t i, index_t len) { k(x + i, y + i, len); });
}
template <class T>
void relu_backward(const T* x, const T* dy, T* dx, index_t n) {
  auto k = relu_bwd_span_for_isa<T>();
  for_spans(n, 1, [&](index_t i, index_t len) { k(x + i, dy + i, dx + i, len); });
}

// GELU is ~40 flops an element (float) and far more in double (libm calls):
// weight the work so that mid-sized inputs already use all threads.
template <class T>
void gelu_forward(const T* x, T* y, index_t n, bool tanh_approx) {
#if PE_X86
  if constexpr (std::is_same_v<T, float>) {
    if (tanh_approx && pe::isa() == Isa::avx512) {
      for_spans(n, 4, [&](index_t i, index_t len) { gelu_tanh_fwd_avx512(x + i, y + i, len); });
      return;
    }
  }
#endif
  auto k = gelu_fwd_span_for_isa<T>();
  for_spans(n, sizeof(T) == 4 ? 4 : 32, [&](index_t i, index_t len) { k(x + i, y + i, len, tanh_approx); });
}
template <class T>
void gelu_backward(const T* x, const T* dy, T* dx, index_t n, bool tanh_approx) {
#if PE_X86
  if constexpr (std::is_same_v<T, float>) {
    if (tanh_approx && pe::isa() == Isa::avx512) {
      for_spans(n, 4, [&](index_t i, index_t len) { gelu_tanh_bwd_avx512(x + i, dy + i, dx + i, len); });
      return;
    }
  }
#endif
  auto k = gelu_bwd_span_for_isa<T>();
  for_spans(n, sizeof(T) == 4 ? 4 : 32,
            [&](index_t i, index_t len) { k(x + i, dy + i, dx + i, len, tanh_approx); });
}

// Softmax over C of (N, C, I): rows (I == 1) over threads, or blocks of kCols columns of each of the N
// (C, I) slices.
template <class T>
void softmax_forward(const T* x, T* y, index_t N, index_t C, index_t I, bool log) {
  if (I == 1) {
    auto k = softmax_fwd_row_kernel<T>();
    for_rows(N, N * C * 4, [&](index_t r) { k(x + r * C, y + r * C, C, log); });
    return;
  }
  auto k = softmax_fwd_cols_for_isa<T>();
  const index_t nb = (I + kCols - 1) / kCols;
  for_rows(N * nb, N * C * I * 4, [&](index_t u) {
    const index_t off = u / nb * C * I + u % nb * kCols;
    k(x + off, y + off, C, I, std::min(kCols, I - u % nb * kCols), log);
  });
}
template <class T>
void softmax_backward(const T* y, const T* dy, T* dx, index_t N, index_t C, index_t I, bool log) {
  if (I == 1) {
    auto k = softmax_bwd_row_kernel<T>();
    for_rows(N, N * C * 2, [&](index_t r) { k(y + r * C, dy + r * C, dx + r * C, C, log); });
    return;
  }
  auto k = softmax_bwd_cols_for_isa<T>();
  const index_t nb = (I + kCols - 1) / kCols;
  for_rows(N * nb, N * C * I * 2, [&](index_t u) {
    const index_t off = u / nb * C * I + u % nb * kCols;
    k(y + off, dy + off, dx + off, C, I, std::min(kCols, I - u % nb * kCols), log);
  });
}

#define PE_INSTANTIATE(T)                                                                  \
  template void relu_forward<T>(const T*, T*, index_t);                                    \
  template void relu_backward<T>(const T*, const T*, T*, index_t);                         \
  template void gelu_forward<T>(const T*, T*, index_t, bool);                              \
  template void gelu_backward<T>(const T*, const T*, T*, index_t, bool);                   \
  template void softmax_forward<T>(const T*, T*, index_t, index_t, index_t, bool);         \
  template void softmax_backward<T>(const T*, const T*, T*, index_t, index_t, index_t, bool);
PE_INSTANTIATE(float)
PE_INSTANTIATE(double)
#undef PE_INSTANTIATE

}  // namespace cpu
}  // namespace pe
