// Loss kernels (specification: pyengine/backend/reference/loss.py).
//
// Cross-entropy is fused with the softmax and works row by row: the forward reads a row twice (max and sum
// of the logits, then sum of exp(x - max)), the second time from L2 (a 50304-float row is 200 KB), and
// stores only loss and lse; the backward recomputes exp(x - lse) from the saved lse and writes the gradient
// in one pass, so no (N, C) softmax matrix is ever stored beside the gradient itself.
// float rows use the vector exp of simd.h (Vec<float, Isa>::exp) on AVX2/AVX-512; double rows (and the
// generic level) use std::exp. All row sums accumulate in double. A gradient far bigger than the caches (e.g.
// N=8192 x V=50304 floats, 1.6 GB) is written with non-temporal stores on AVX-512: measured 88 -> 75 ms at
// N=2048 on one thread, as the output's lines are no longer read before being overwritten.
// Rows go to threads in tasks of ~32K logits, scheduled dynamically (see parallel_for in simd.h).
#include "cpu/loss.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/simd.h"

// GCC 12.2 warns "'__Y' is used uninitialized" inside its own _mm512_undefined_* (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace pe {

// ============================================================ cross-entropy: per-row pieces
// Each SIMD level provides three row functions (x: one row of C logits):
//   stats:  max_j x_j and, if wanted, sum_j x_j (double)
//   sumexp: sum_j exp(x_j - m) (double)
//   grad:   out_j = (exp(x_j - lse) - off - [j == t] onem) * s     (off = eps/C, onem = 1 - eps);
//           `stream`: the output is far bigger than the caches, so write it with non-temporal stores (AVX-512)
// The last matches the reference's order: p = exp(x - lse); p -= eps/C; p[t] -= 1 - eps; p * dloss.
template <class T>
struct CeRowOps {
  void (*stats)(const T* x, index_t c, bool want_sum, T* max, double* sum);
  double (*sumexp)(const T* x, index_t c, T m);
  void (*grad)(const T* x, index_t c, T lse, T s, T off, index_t t, T onem, bool stream, T* out);
};

template <class T>
static void ce_stats_generic(const T* x, index_t c, bool want_sum, T* max, double* sum) {
  T m = x[0];
  for (index_t j = 1; j < c; ++j) m = x[j] > m ? x[j] : m;  // a NaN is caught by the sum of exp below
  double s = 0.0;
  if (want_sum)
    for (index_t j = 0; j < c; ++j) s += static_cast<double>(x[j]);
  *max = m;
  *sum = s;
}

template <class T>
static double ce_sumexp_generic(const T* x, index_t c, T m) {
  double s = 0.0;
  for (index_t j = 0; j < c; ++j) s += static_cast<double>(std::exp(x[j] - m));
  return s;
}

template <class T>
static void ce_grad_generic(const T* x, index_t c, T lse, T s, T off, index_t t, T onem, bool /*stream*/, T* out) {
  for (index_t j = 0; j < c; ++j) out[j] = (std::exp(x[j] - lse) - off) * s;
  out[t] = ((std::exp(x[t] - lse) - off) - onem) * s;
}

#if PE_X86
// ---------------------------------------------------------------- float, AVX-512 (16 lanes)
using F16 = simd::Vec<float, Isa::avx512>;

// Lanes [j, c) of the 16 from column j on.
PE_TARGET_AVX512 static inline __mmask16 tail_mask16(index_t j, index_t c) {
  return F16::mask_for(static_cast<int>(std::min<index_t>(16, c - j)));
}

PE_TARGET_AVX512 static void ce_stats_avx512(const float* x, index_t c, bool want_sum, float* max,
                                             double* sum) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 m0 = ninf, m1 = ninf;
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  index_t j = 0;
  if (want_sum) {
    for (; j + 16 <= c; j += 16) {
      __m512 v = _mm512_loadu_ps(x + j);
      m0 = _mm512_max_ps(m0, v);
      s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
      s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
    }
  } else {
    for (; j + 32 <= c; j += 32) {
      m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + j));
      m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + j + 16));
    }
    for (; j + 16 <= c; j += 16) m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + j));
  }
  if (j < c) {
    __mmask16 k = tail_mask16(j, c);
    __m512 v = _mm512_maskz_loadu_ps(k, x + j);
    m0 = _mm512_max_ps(m0, _mm512_mask_mov_ps(ninf, k, v));
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
  }
  *max = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
  *sum = want_sum ? _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) : 0.0;
}

PE_TARGET_AVX512 static double ce_sumexp_avx512(const float* x, index_t c, float m) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  index_t j = 0;
  for (; j + 32 <= c; j += 32) {  // two independent exp chains per iteration
    __m512 e0 = F16::exp(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
    __m512 e1 = F16::exp(_mm512_sub_ps(_mm512_loadu_ps(x + j + 16), vm));
    a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(e0)));
    a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e0, 1)));
    a2 = _mm512_add_pd(a2, _mm512_cvtps_pd(_mm512_castps512_ps256(e1)));
    a3 = _mm512_add_pd(a3, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e1, 1)));
  }
  for (; j < c; j += 16) {
    __mmask16 k = tail_mask16(j, c);
    __m512 e = F16::exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vm));
    e = _mm512_maskz_mov_ps(k, e);
    a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}

// One 16-lane piece of a gradient row starting at column j0 (see ce_grad_generic).
PE_TARGET_AVX512 static inline __m512 ce_grad_piece_avx512(__m512 x, index_t j0, index_t t, __m512 vl, __m512 vs,
                                                           __m512 voff, __m512 vone) {
  __m512 d = _mm512_sub_ps(F16::exp(_mm512_sub_ps(x, vl)), voff);
  if (static_cast<std::uint64_t>(t - j0) < 16)  // the target's lane: subtract 1 - eps there only
    d = _mm512_mask_sub_ps(d, static_cast<__mmask16>(1u << (t - j0)), d, vone);
  return _mm512_mul_ps(d, vs);
}

PE_TARGET_AVX512 static void ce_grad_avx512(const float* x, index_t c, float lse, float s, float off, index_t t,
                                            float onem, bool stream, float* out) {
  const __m512 vl = _mm512_set1_ps(lse), vs = _mm512_set1_ps(s), voff = _mm512_set1_ps(off),
               vone = _mm512_set1_ps(onem);
  index_t j = 0;
  if (stream) {  // non-temporal stores from the first 64-byte boundary of the row on (out is 4-byte aligned)
    const index_t head = std::min<index_t>(c, ((64 - (reinterpret_cast<std::uintptr_t>(out) & 63)) & 63) / 4);
    if (head > 0) {
      const __mmask16 k = tail_mask16(0, head);
      _mm512_mask_storeu_ps(out, k, ce_grad_piece_avx512(_mm512_maskz_loadu_ps(k, x), 0, t, vl, vs, voff, vone));
    }
    for (j = head; j + 16 <= c; j += 16)
      _mm512_stream_ps(out + j, ce_grad_piece_avx512(_mm512_loadu_ps(x + j), j, t, vl, vs, voff, vone));
  }
  for (; j < c; j += 16) {
    const __mmask16 k = tail_mask16(j, c);
    _mm512_mask_storeu_ps(out + j, k,
                          ce_grad_piece_avx512(_mm512_maskz_loadu_ps(k, x + j), j, t, vl, vs, voff, vone));
  }
  if (stream) _mm_sfence();  // order the streamed stores before anything this thread does next
}

// ---------------------------------------------------------------- float, AVX2 (8 lanes)
using F8 = simd::Vec<float, Isa::avx2>;
using D4 = simd::Vec<double, Isa::avx2>;

PE_TARGET_AVX2 static inline __m256d add_cvt_lo(__m256d acc, __m256 v) {
  return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
}
PE_TARGET_AVX2 static inline __m256d add_cvt_hi(__m256d acc, __m256 v) {
  return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

PE_TARGET_AVX2 static void ce_stats_avx2(const float* x, index_t c, bool want_sum, float* max, double* sum) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 m0 = ninf, m1 = ninf;
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  index_t j = 0;
  for (; j + 16 <= c; j += 16) {
    __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
    m0 = _mm256_max_ps(m0, v0);
    m1 = _mm256_max_ps(m1, v1);
    if (want_sum) {
      s0 = add_cvt_hi(add_cvt_lo(s0, v0), v0);
      s1 = add_cvt_hi(add_cvt_lo(s1, v1), v1);
    }
  }
  for (; j < c; j += 8) {
    __m256i k = F8::mask_for(static_cast<int>(std::min<index_t>(8, c - j)));
    __m256 v = _mm256_maskload_ps(x + j, k);  // masked-off lanes read as 0
    m0 = _mm256_max_ps(m0, _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(k)));
    if (want_sum) s0 = add_cvt_hi(add_cvt_lo(s0, v), v);
  }
  m0 = _mm256_max_ps(m0, m1);
  *max = F8::hmax(m0);
  *sum = want_sum ? D4::hsum(_mm256_add_pd(s0, s1)) : 0.0;
}

PE_TARGET_AVX2 static double ce_sumexp_avx2(const float* x, index_t c, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  index_t j = 0;
  for (; j + 16 <= c; j += 16) {
    __m256 e0 = F8::exp(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
    __m256 e1 = F8::exp(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm));
    a0 = add_cvt_lo(a0, e0);
    a1 = add_cvt_hi(a1, e0);
    a2 = add_cvt_lo(a2, e1);
    a3 = add_cvt_hi(a3, e1);
  }
  for (; j < c; j += 8) {
    __m256i k = F8::mask_for(static_cast<int>(std::min<index_t>(8, c - j)));
    __m256 e = F8::exp(_mm256_sub_ps(_mm256_maskload_ps(x + j, k), vm));
    e = _mm256_and_ps(e, _mm256_castsi256_ps(k));
    a0 = add_cvt_lo(a0, e);
    a1 = add_cvt_hi(a1, e);
  }
  return D4::hsum(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
}

// One 8-lane piece of a gradient row starting at column j0 (see ce_grad_generic).
PE_TARGET_AVX2 static inline __m256 ce_grad_piece_avx2(__m256 x, index_t j0, index_t t, __m256 vl, __m256 vs,
                                                       __m256 voff, __m256 vone) {
  __m256 d = _mm256_sub_ps(F8::exp(_mm256_sub_ps(x, vl)), voff);
  if (static_cast<std::uint64_t>(t - j0) < 8) {  // the target's lane: subtract 1 - eps there only
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 hit = _mm256_castsi256_ps(_mm256_cmpeq_epi32(iota, _mm256_set1_epi32(static_cast<int>(t - j0))));
    d = _mm256_sub_ps(d, _mm256_and_ps(hit, vone));
  }
  return _mm256_mul_ps(d, vs);
}

PE_TARGET_AVX2 static void ce_grad_avx2(const float* x, index_t c, float lse, float s, float off, index_t t,
                                        float onem, bool /*stream*/, float* out) {
  const __m256 vl = _mm256_set1_ps(lse), vs = _mm256_set1_ps(s), voff = _mm256_set1_ps(off),
               vone = _mm256_set1_ps(onem);
  index_t j = 0;
  for (; j + 8 <= c; j += 8)
    _mm256_storeu_ps(out + j, ce_grad_piece_avx2(_mm256_loadu_ps(x + j), j, t, vl, vs, voff, vone));
  if (j < c) {
    __m256i k = F8::mask_for(static_cast<int>(c - j));
    _mm256_maskstore_ps(out + j, k, ce_grad_piece_avx2(_mm256_maskload_ps(x + j, k), j, t, vl, vs, voff, vone));
  }
}
#endif  // PE_X86

template <class T>
static CeRowOps<T> ce_row_ops() {
  return {&ce_stats_generic<T>, &ce_sumexp_generic<T>, &ce_grad_generic<T>};
}

#if PE_X86
template <>
CeRowOps<float> ce_row_ops<float>() {
  switch (isa()) {
    case Isa::avx512: return {&ce_stats_avx512, &ce_sumexp_avx512, &ce_grad_avx512};
    case Isa::avx2: return {&ce_stats_avx2, &ce_sumexp_avx2, &ce_grad_avx2};
    default: return {&ce_stats_generic<float>, &ce_sumexp_generic<float>, &ce_grad_generic<float>};
  }
}
#endif

constexpr double kStreamBytes = 64.0 * 1024 * 1024;

// Rows are handed to threads in tasks of ~32K logits.
static index_t rows_per_task(index_t c) { return std::max<index_t>(1, 32768 / c); }

// ============================================================ cross-entropy (Szegedy et al. 2016 smoothing)
// logits: (N, C)  targets: (N,)  ->  loss: (N,)  lse: (N,)
template <class T>
void cross_entropy_forward(const T* logits, const std::int64_t* targets, index_t n, index_t c,
                           std::int64_t ignore_index, double label_smoothing, T* loss, T* lse) {
  const CeRowOps<T> ops = ce_row_ops<T>();
  const bool want_sum = label_smoothing != 0.0;
  const double onem = 1.0 - label_smoothing, off = label_smoothing / static_cast<double>(c);
  parallel_for(n, threads_for(n * c), rows_per_task(c), [&](index_t i) {
    const T* x = logits + i * c;
    T m;
    double sum_x;
    ops.stats(x, c, want_sum, &m, &sum_x);
    // lse = m + log sum_j exp(x_j - m)   (max subtracted so no exp overflows)
    const double l = static_cast<double>(m) + std::log(ops.sumexp(x, c, m));
    lse[i] = static_cast<T>(l);
    const std::int64_t t = targets[i];
    // loss = lse - (1 - eps) x_t - (eps / C) sum_j x_j
    loss[i] = t == ignore_index ? T(0) : static_cast<T>(l - onem * static_cast<double>(x[t]) - off * sum_x);
  });
}

// logits: (N, C)  targets: (N,)  lse: (N,)  dloss: (N,) or 1  ->  dlogits: (N, C)
template <class T>
void cross_entropy_backward(const T* logits, const std::int64_t* targets, const T* lse, const T* dloss,
                            index_t dloss_stride, index_t n, index_t c, std::int64_t ignore_index,
                            double label_smoothing, T* dlogits) {
  const CeRowOps<T> ops = ce_row_ops<T>();
  const T onem = static_cast<T>(1.0 - label_smoothing), off = static_cast<T>(label_smoothing / c);
  // Streaming stores skip reading the output's cache lines before writing them (a third less memory
  // traffic) but leave nothing in cache: only for outputs far bigger than the last-level cache.
  const bool stream = static_cast<double>(n) * c * sizeof(T) >= kStreamBytes &&
                      reinterpret_cast<std::uintptr_t>(dlogits) % sizeof(T) == 0;
  parallel_for(n, threads_for(n * c), rows_per_task(c), [&](index_t i) {
    T* out = dlogits + i * c;
    const std::int64_t t = targets[i];
    if (t == ignore_index) {
      std::fill(out, out + c, T(0));
      return;
    }
    // dlogits = dloss * (softmax(x) - (1 - eps) onehot(t) - eps / C)
    ops.grad(logits + i * c, c, lse[i], dloss[i * dloss_stride], off, t, onem, stream, out);
  });
}

// ============================================================ elementwise losses
// Block size of the parallel loops; also the unit of the deterministic reduction of mse_forward.
constexpr index_t kBlock = 16384;

// Runs Body over [0, n) in blocks, in parallel when n is large.
template <class Body>
static void parallel_blocks(const typename Body::Args& a, index_t n) {
  const auto fn = select_isa<Body>();
  const index_t nb = (n + kBlock - 1) / kBlock;
  parallel_for(nb, threads_for(n), 1, [&](index_t b) { fn(a, b * kBlock, std::min(n, (b + 1) * kBlock)); });
}

// ---------------------------------------------------------------- MSE
// input, target: (n,)  ->  sum_i (x_i - y_i)^2
template <class T>
struct MseForward {
  struct Args { const T* x; const T* y; };
  // Eight interleaved partial sums, which the compiler keeps in one vector register (a plain `s += d * d`
  // would not vectorise without reassociation); the summation order is the same at every SIMD level.
  static PE_INLINE double run(const Args& a, index_t lo, index_t hi) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    index_t i = lo;
    for (; i + 8 <= hi; i += 8)
      for (int k = 0; k < 8; ++k) {
        const double d = static_cast<double>(a.x[i + k]) - static_cast<double>(a.y[i + k]);
        s[k] += d * d;
      }
    for (int k = 0; i < hi; ++i, ++k) {
      const double d = static_cast<double>(a.x[i]) - static_cast<double>(a.y[i]);
      s[k] += d * d;
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  }
};

// input, target, dinput: (n,)   dinput = 2 scale (x - y)
template <class T>
struct MseBackward {
  struct Args { const T* x; const T* y; T c; T* dx; };
  static PE_INLINE void run(const Args& a, index_t lo, index_t hi) {
    const T* __restrict x = a.x;
    const T* __restrict y = a.y;
    T* __restrict dx = a.dx;
    for (index_t i = lo; i < hi; ++i) dx[i] = a.c * (x[i] - y[i]);
  }
};

template <class T>
double mse_forward(const T* input, const T* target, index_t n) {
  // Fixed blocks summed in order: the same result for any thread count.
  const auto fn = select_isa<MseForward<T>>();
  const typename MseForward<T>::Args a{input, target};
  const index_t nb = (n + kBlock - 1) / kBlock;
  std::vector<double> part(static_cast<size_t>(nb));
  parallel_for(nb, threads_for(n), 1, [&](index_t b) { part[b] = fn(a, b * kBlock, std::min(n, (b + 1) * kBlock)); });
  double s = 0.0;
  for (double p : part) s += p;
  return s;
}

template <class T>
void mse_backward(const T* input, const T* target, double scale, index_t n, T* dinput) {
  parallel_blocks<MseBackward<T>>({input, target, static_cast<T>(2.0 * scale), dinput}, n);
}

// ---------------------------------------------------------------- BCE on probabilities
// probs, targets, out: (n,)   out = -(y log p + (1 - y) log(1 - p)), each log clamped at -100 (as PyTorch)
template <class T>
struct BceForward {
  struct Args { const T* p; const T* y; T* out; };
  static PE_INLINE int run(const Args& a, index_t lo, index_t hi) {
    int bad = 0;
    for (index_t i = lo; i < hi; ++i) {
      const T p = a.p[i], y = a.y[i];
      bad |= (p < T(0)) | (p > T(1));
      T log_p = std::log(p), log_1mp = std::log1p(-p);
      log_p = log_p < T(-100) ? T(-100) : log_p;  // NaN stays NaN
      log_1mp = log_1mp < T(-100) ? T(-100) : log_1mp;
      a.out[i] = -(y * log_p + (T(1) - y) * log_1mp);
    }
    return bad;
  }
};

// dprobs = dloss (p - y) / max(p (1 - p), 1e-12)
template <class T>
struct BceBackward {
  struct Args { const T* p; const T* y; const T* dloss; index_t ds; T* dp; };
  static PE_INLINE void run(const Args& a, index_t lo, index_t hi) {
    const T tiny = static_cast<T>(1e-12);
    for (index_t i = lo; i < hi; ++i) {
      const T p = a.p[i];
      T q = p * (T(1) - p);
      q = q < tiny ? tiny : q;
      a.dp[i] = a.dloss[i * a.ds] * (p - a.y[i]) / q;
    }
  }
};

template <class T>
bool bce_forward(const T* probs, const T* targets, index_t n, T* out) {
  const auto fn = select_isa<BceForward<T>>();
  const typename BceForward<T>::Args a{probs, targets, out};
  const index_t nb = (n + kBlock - 1) / kBlock;
  std::atomic<bool> bad{false};
  parallel_for(nb, threads_for(n), 1, [&](index_t b) {
    if (fn(a, b * kBlock, std::min(n, (b + 1) * kBlock))) bad.store(true, std::memory_order_relaxed);
  });
  return !bad.load();
}

template <class T>
void bce_backward(const T* probs, const T* targets, const T* dloss, index_t dloss_stride, index_t n,
                  T* dprobs) {
  parallel_blocks<BceBackward<T>>({probs, targets, dloss, dloss_stride, dprobs}, n);
}

// ---------------------------------------------------------------- BCE on logits
// logits, targets, out: (n,)   out = max(x, 0) - x y + log(1 + exp(-|x|))   (never exp of a positive number)
template <class T>
struct BceLogitsForward {
  struct Args { const T* x; const T* y; T* out; };
  static PE_INLINE void run(const Args& a, index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      const T x = a.x[i];
      a.out[i] = (x > T(0) ? x : T(0)) - x * a.y[i] + std::log1p(std::exp(-std::fabs(x)));
    }
  }
};

// dlogits = dloss (sigmoid(x) - y),  sigmoid(x) = 1 / (1 + exp(-x))
template <class T>
struct BceLogitsBackward {
  struct Args { const T* x; const T* y; const T* dloss; index_t ds; T* dx; };
  static PE_INLINE void run(const Args& a, index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      const T s = T(1) / (T(1) + std::exp(-a.x[i]));
      a.dx[i] = a.dloss[i * a.ds] * (s - a.y[i]);
    }
  }
};

template <class T>
void bce_with_logits_forward(const T* logits, const T* targets, index_t n, T* out) {
  parallel_blocks<BceLogitsForward<T>>({logits, targets, out}, n);
}

template <class T>
void bce_with_logits_backward(const T* logits, const T* targets, const T* dloss, index_t dloss_stride,
                              index_t n, T* dlogits) {
  parallel_blocks<BceLogitsBackward<T>>({logits, targets, dloss, dloss_stride, dlogits}, n);
}

// ============================================================ instantiations
#define PE_LOSS_INSTANTIATE(T)                                                                              \
  template void cross_entropy_forward<T>(const T*, const std::int64_t*, index_t, index_t, std::int64_t,    \
                                         double, T*, T*);                                                   \
  template void cross_entropy_backward<T>(const T*, const std::int64_t*, const T*, const T*, index_t,       \
                                          index_t, index_t, std::int64_t, double, T*);                      \
  template double mse_forward<T>(const T*, const T*, index_t);                                              \
  template void mse_backward<T>(const T*, const T*, double, index_t, T*);                                   \
  template bool bce_forward<T>(const T*, const T*, index_t, T*);                                            \
  template void bce_backward<T>(const T*, const T*, const T*, index_t, index_t, T*);                        \
  template void bce_with_logits_forward<T>(const T*, const T*, index_t, T*);                                \
  template void bce_with_logits_backward<T>(const T*, const T*, const T*, index_t, index_t, T*);
PE_LOSS_INSTANTIATE(float)
PE_LOSS_INSTANTIATE(double)
#undef PE_LOSS_INSTANTIATE

}  // namespace pe
