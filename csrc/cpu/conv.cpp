// The conv family (see conv.h; specification: pyengine/backend/reference/conv.py).
//
// Convolution is an implicit GEMM on the project's GEMM (gemm.h), per group g:
//   forward  y[n, g] (Og, L)      = W_g (Og, K) @ cols(x[n, g]) (K, L)
//   dgrad    dx[n, g]             = col2im(W_g^T (K, Og) @ dy[n, g] (Og, L))
//   wgrad    dW_g (Og, K)         = sum_n dy[n, g] (Og, L) @ cols(x[n, g])^T (L, K)
// with K = C/G * KH * KW and L = Ho * Wo. The columns are never formed for the whole batch: a tile of
// whole output rows of one image (at most g_tile_elems values, at least one row) is packed at a time into
// a buffer of the thread that runs it, so the extra memory is threads * tile, whatever the batch.
// Small images (fewer than kWideCols output positions: ResNet's 14x14 and 7x7 layers) are packed several
// side by side, so that the GEMM is wide (forward, dgrad) or deep (wgrad) enough for its micro-panels. A 1x1 convolution of stride 1 without padding reads x in place (its columns are x).
// Depthwise convolutions (one input and one output channel per group) run a direct loop per plane
// instead: a GEMM of one row would be all packing. conv_depthwise.cpp's SIMD kernels take them (and dense
// convolutions of few input channels) first; the depthwise loops here are their fallback. 3x3 stride-1
// one-group convolutions above a size threshold run forward, dgrad and wgrad as Winograd F(4x4, 3x3) on the
// GEMM micro-kernel (conv_winograd.cpp).
//
// Stride-2 rows (ResNet's downsampling 3x3 and 1x1) are gathered by im2col and scattered by col2im a vector
// at a time (float on AVX-512 / AVX2: loads of the row and a permute of its even lanes). The float forward
// of a stride-2 convolution of kernel 2x2 or larger on AVX-512 skips im2col: the input is split into its
// four phase planes and the GEMM's B micro-panels are packed straight from them (conv_phase.h); its weight
// gradient reads channel-blocked phase planes the same way (conv_phase_bwd.h).
//
// Threads: forward and dgrad run images (and row tiles) on threads, each GEMM then on one thread,
// when there are at least as many units as threads; else one unit at a time on the threaded GEMM and
// packers. Image groups are made smaller where their count would not share evenly between the threads
// (balance_groups: the GEMM's sums do not depend on its width). wgrad of small images (a group of whole
// images per GEMM) splits the batch into kWgradChunks chunks where it has that many images (shape alone):
// chunks run on threads, each summing into its own dW (the first into dw), and the partial dWs are added
// in chunk order, so the bits do not depend on the thread count; wgrad of large images (row tiles)
// accumulates into dW, so it runs the tiles in order on the threaded GEMM. Pooling and batch norm run
// planes / channels on threads.
#include "cpu/conv.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/conv_depthwise.h"
#include "cpu/conv_panels.h"
#include "cpu/conv_phase.h"
#include "cpu/conv_phase_bwd.h"
#include "cpu/conv_winograd.h"
#include "cpu/gemm.h"
#include "cpu/simd.h"

namespace pe {
namespace cpu {
namespace {

index_t g_tile_elems = index_t(1) << 19;  // one column tile (set_conv_tile): 2 MiB of float, 4 MiB of double
constexpr index_t kWideCols = 512;          // images below this many output positions are grouped
constexpr index_t kGroupElems = index_t(1) << 21;  // at most this many column values per image group
constexpr index_t kGrain = index_t(1) << 16;

using panels::par_for;  // f(i, thread) on nt threads (conv_panels.h)

int max_threads(index_t work) { return threads_for(work, kGrain); }

// Output columns [lo, hi) whose input column q sw + off lies in [0, W).
inline void valid_cols(index_t off, index_t sw, index_t W, index_t Wo, index_t& lo, index_t& hi) {
  lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
  hi = (W - 1 - off) < 0 ? 0 : (W - 1 - off) / sw + 1;
  lo = std::min(lo, Wo);
  hi = std::max(lo, std::min(hi, Wo));
}

bool is_pointwise(const ConvShape& s) {
  return s.KH == 1 && s.KW == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0 && s.Ho == s.H && s.Wo == s.W;
}

bool is_depthwise(const ConvShape& s) { return s.G == s.C && s.G == s.O; }

// Whether x[0:n) holds no NaN or inf (x - x is 0 for a finite x, NaN otherwise; 16 independent lanes so the
// loop vectorises). Winograd's transforms mix a whole 6x6 input tile into every output of its 4x4 tile, so a
// NaN or inf there would reach outputs whose 3x3 window never read it (and an inf would turn NaN): such
// inputs take the im2col path, which keeps the twin's NaN and inf placement exactly. One read of the
// operands: a few percent of the convolution's time.
template <class T>
PE_TARGET_CLONES bool all_finite(const T* x, index_t n) {
  T acc[16] = {};
  index_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += x[i + j] - x[i + j];
  for (; i < n; ++i) acc[0] += x[i] - x[i];
  T total = 0;
  for (int j = 0; j < 16; ++j) total += acc[j];
  return total == total;
}

index_t tile_rows(const ConvShape& s, index_t K) {
  const index_t per_row = std::max<index_t>(K * s.Wo, 1);
  return std::max<index_t>(1, std::min<index_t>(s.Ho, g_tile_elems / per_row));
}

// Row loops of the direct (depthwise) kernels and col2im, compiled once per ISA (each copy is the plain
// loop under that ISA's target attribute, vectorised by the compiler) and picked per call by pe::isa().
#define PE_CONV_ROW_OPS(SUFFIX, ATTR)                                                          \
  template <class T>                                                                           \
  ATTR void axpy_##SUFFIX(T* __restrict y, const T* __restrict x, T a, index_t n) {            \
    for (index_t i = 0; i < n; ++i) y[i] += a * x[i];                                          \
  }                                                                                            \
  template <class T>                                                                           \
  ATTR void mac_##SUFFIX(T* __restrict y, const T* __restrict a, const T* __restrict b, index_t n) { \
    for (index_t i = 0; i < n; ++i) y[i] += a[i] * b[i];                                       \
  }                                                                                            \
  /* y[q] += sum_j w[j] x[q + j d], j < k: a row of k taps in one pass over y */                \
  template <class T>                                                                           \
  ATTR void taps_##SUFFIX(T* __restrict y, const T* __restrict x, const T* w, index_t k, index_t d, \
                          index_t n) {                                                         \
    if (k == 3) {                                                                              \
      const T w0 = w[0], w1 = w[1], w2 = w[2];                                                 \
      const T* x1 = x + d;                                                                     \
      const T* x2 = x + 2 * d;                                                                 \
      for (index_t q = 0; q < n; ++q) y[q] += w0 * x[q] + w1 * x1[q] + w2 * x2[q];             \
      return;                                                                                  \
    }                                                                                          \
    for (index_t j = 0; j < k; ++j) {                                                          \
      const T wj = w[j];                                                                       \
      const T* xj = x + j * d;                                                                 \
      for (index_t q = 0; q < n; ++q) y[q] += wj * xj[q];                                      \
    }                                                                                          \
  }
PE_CONV_ROW_OPS(generic, )
#if PE_X86
PE_CONV_ROW_OPS(avx2, PE_TARGET_AVX2)
PE_CONV_ROW_OPS(avx512, PE_TARGET_AVX512)
#endif
#undef PE_CONV_ROW_OPS

template <class T>
struct RowOps {
  void (*axpy)(T*, const T*, T, index_t);
  void (*taps)(T*, const T*, const T*, index_t, index_t, index_t);
  void (*mac)(T*, const T*, const T*, index_t);
};

template <class T>
RowOps<T> row_ops() {
#if PE_X86
  switch (isa()) {
    case Isa::avx512: return {axpy_avx512<T>, taps_avx512<T>, mac_avx512<T>};
    case Isa::avx2: return {axpy_avx2<T>, taps_avx2<T>, mac_avx2<T>};
    default: break;
  }
#endif
  return {axpy_generic<T>, taps_generic<T>, mac_generic<T>};
}

// Stride-2 rows of pack_cols and unpack_add: dst[q] = src[2 q] and dst[2 q] += src[q] for q < n. The plain
// loops (double, the generic level) gather one value at a time; float on AVX-512 / AVX2 moves a vector of
// outputs per step: two loads of the input row and one permute picking the even lanes (gather), or the
// inverse permute spreading a vector over the even lanes of two masked adds (scatter). The last step's
// loads and stores are masked to the values the row owns (a masked lane is never read or written), so a
// row that ends at the end of its array is never read past.
template <class T>
void gather2_plain(T* __restrict dst, const T* __restrict src, index_t n) {
  for (index_t q = 0; q < n; ++q) dst[q] = src[2 * q];
}
template <class T>
void scatter2_plain(T* __restrict dst, const T* __restrict src, index_t n) {
  for (index_t q = 0; q < n; ++q) dst[2 * q] += src[q];
}
#if PE_X86
// masks of the first k lanes (k clamped to [0, 16])
inline __mmask16 first_lanes16(index_t k) {
  return k <= 0 ? __mmask16(0) : k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << k) - 1);
}
PE_TARGET_AVX512 void gather2_avx512f(float* __restrict dst, const float* __restrict src, index_t n) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  index_t q = 0;
  for (; q + 16 < n; q += 16)  // reads src[2 q .. 2 q + 31], all below 2 (n - 1)
    _mm512_storeu_ps(dst + q, _mm512_permutex2var_ps(_mm512_loadu_ps(src + 2 * q), ev,
                                                     _mm512_loadu_ps(src + 2 * q + 16)));
  const index_t r = n - q, span = 2 * r - 1;  // 1..16 outputs from src[2 q .. 2 q + span)
  if (r <= 0) return;
  const __m512 a = _mm512_maskz_loadu_ps(first_lanes16(span), src + 2 * q);
  const __m512 b = _mm512_maskz_loadu_ps(first_lanes16(span - 16), src + 2 * q + 16);
  _mm512_mask_storeu_ps(dst + q, first_lanes16(r), _mm512_permutex2var_ps(a, ev, b));
}
PE_TARGET_AVX512 void scatter2_avx512f(float* __restrict dst, const float* __restrict src, index_t n) {
  const __m512i lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  const __mmask16 even = 0x5555;
  for (index_t q = 0; q < n; q += 16) {  // dst[2 q .. 2 q + 2 r - 1) (even lanes written)
    const index_t r = std::min<index_t>(16, n - q), span = 2 * r - 1;
    const __mmask16 m0 = first_lanes16(span) & even, m1 = first_lanes16(span - 16) & even;
    const __m512 s = _mm512_maskz_loadu_ps(first_lanes16(r), src + q);
    float* d = dst + 2 * q;
    const __m512 d0 = _mm512_maskz_loadu_ps(m0, d), d1 = _mm512_maskz_loadu_ps(m1, d + 16);
    _mm512_mask_storeu_ps(d, m0, _mm512_add_ps(d0, _mm512_permutexvar_ps(lo, s)));
    _mm512_mask_storeu_ps(d + 16, m1, _mm512_add_ps(d1, _mm512_permutexvar_ps(hi, s)));
  }
}
PE_TARGET_AVX2 void gather2_avx2f(float* __restrict dst, const float* __restrict src, index_t n) {
  index_t q = 0;
  for (; q + 8 < n; q += 8) {  // reads src[2 q .. 2 q + 15], all below 2 (n - 1)
    const __m256 a = _mm256_loadu_ps(src + 2 * q), b = _mm256_loadu_ps(src + 2 * q + 8);
    const __m256 e = _mm256_shuffle_ps(a, b, 0x88);  // a0 a2 b0 b2 | a4 a6 b4 b6
    _mm256_storeu_ps(dst + q, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
  }
  for (; q < n; ++q) dst[q] = src[2 * q];
}
PE_TARGET_AVX2 void scatter2_avx2f(float* __restrict dst, const float* __restrict src, index_t n) {
  index_t q = 0;
  for (; q + 8 < n; q += 8) {  // dst[2 q .. 2 q + 15], all below 2 (n - 1)
    const __m256 s = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_loadu_ps(src + q)), 0xD8));
    const __m256 z = _mm256_setzero_ps();
    float* d = dst + 2 * q;  // s0 s1 s4 s5 | s2 s3 s6 s7: unpack with zeros gives s0 0 s1 0 | s2 0 s3 0 ...
    const __m256 e0 = _mm256_unpacklo_ps(s, z), e1 = _mm256_unpackhi_ps(s, z);
    // e0 = s0 0 s1 0 | s2 0 s3 0, e1 = s4 0 s5 0 | s6 0 s7 0: adding 0 to the odd lanes keeps them
    // (x + 0 is x for every x but -0, whose sum is +0: the odd lanes are not ours, so blend them back)
    const __m256 d0 = _mm256_loadu_ps(d), d1 = _mm256_loadu_ps(d + 8);
    _mm256_storeu_ps(d, _mm256_blend_ps(d0, _mm256_add_ps(d0, e0), 0x55));
    _mm256_storeu_ps(d + 8, _mm256_blend_ps(d1, _mm256_add_ps(d1, e1), 0x55));
  }
  for (; q < n; ++q) dst[2 * q] += src[q];
}
#endif

// One kernel row's taps into one row of dx, stride 2, dilation 1: d[2 q + j - pw] += src[j ld + q] for the
// taps j < KW in order, q in the tap's valid range (valid_cols), i.e. unpack_add's KW scatter2 calls of that
// row (its loop, which other ISAs run). AVX-512 holds 32 positions of d as their even and odd lanes, adds
// each tap to the lanes it reaches (one masked load of the tap), then interleaves and stores them once: per
// position the taps' sums in the same order as the KW calls, with one pass over d instead of KW (ResNet's
// 14x14 -> 7x7 input gradient spent 14% of its time in scatter2 calls of 7 values).
#if PE_X86
PE_TARGET_AVX512 void scatter2_row_avx512f(float* __restrict d, index_t W, const float* __restrict src, index_t ld,
                                           index_t KW, index_t pw, index_t Wo) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
  const __m512i lo16 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi16 = _mm512_add_epi32(lo16, _mm512_set1_epi32(8));
  for (index_t r0 = 0; 2 * r0 < W; r0 += 16) {  // positions [2 r0, 2 r0 + 32) of d
    const __mmask16 m0 = first_lanes16(W - 2 * r0), m1 = first_lanes16(W - 2 * r0 - 16);
    const __m512 d0 = _mm512_maskz_loadu_ps(m0, d + 2 * r0), d1 = _mm512_maskz_loadu_ps(m1, d + 2 * r0 + 16);
    __m512 lane[2] = {_mm512_permutex2var_ps(d0, ev, d1), _mm512_permutex2var_ps(d0, od, d1)};
    for (index_t j = 0; j < KW; ++j) {
      index_t lo, hi;
      valid_cols(j - pw, 2, W, Wo, lo, hi);
      // tap j writes position 2 q + off, off = j - pw = 2 a + b: lane r = q + a of parity b
      const index_t off = j - pw, b = off & 1, a = (off - b) / 2;
      const index_t q0 = std::max(lo, r0 - a), q1 = std::min(hi, r0 - a + 16);  // its q in these lanes
      if (q1 <= q0) continue;
      const __mmask16 m = static_cast<__mmask16>(first_lanes16(q1 - (r0 - a)) & ~first_lanes16(q0 - (r0 - a)));
      const __m512 t = _mm512_maskz_loadu_ps(m, src + j * ld + (r0 - a));
      lane[b] = _mm512_mask_add_ps(lane[b], m, lane[b], t);
    }
    _mm512_mask_storeu_ps(d + 2 * r0, m0, _mm512_permutex2var_ps(lane[0], lo16, lane[1]));
    _mm512_mask_storeu_ps(d + 2 * r0 + 16, m1, _mm512_permutex2var_ps(lane[0], hi16, lane[1]));
  }
}
#endif

template <class T>
struct Stride2 {
  void (*gather)(T*, const T*, index_t);
  void (*scatter)(T*, const T*, index_t);
  void (*scatter_row)(T*, index_t, const T*, index_t, index_t, index_t, index_t);  // null: per tap, scatter
};
template <class T>
Stride2<T> stride2_ops() {
  return {gather2_plain<T>, scatter2_plain<T>, nullptr};
}
#if PE_X86
template <>
Stride2<float> stride2_ops<float>() {
  switch (isa()) {
    case Isa::avx512: return {gather2_avx512f, scatter2_avx512f, scatter2_row_avx512f};
    case Isa::avx2: return {gather2_avx2f, scatter2_avx2f, nullptr};
    default: return {gather2_plain<float>, scatter2_plain<float>, nullptr};
  }
}
#endif

// cols[k, (oh - oh0) Wo + ow] (row stride ld) for k = (c, i, j) over the Cg channels at xg, rows [oh0, oh1).
template <class T>
void pack_cols(const T* xg, T* cols, index_t ld, const ConvShape& s, index_t Cg, index_t oh0, index_t oh1) {
  const index_t KK = s.KH * s.KW, rows = Cg * KK;
  const Stride2<T> s2 = stride2_ops<T>();
  par_for(rows, max_threads(rows * (oh1 - oh0) * s.Wo), [&](index_t k, int) {
    const index_t c = k / KK, i = (k % KK) / s.KW, j = k % s.KW;
    const T* xc = xg + c * s.H * s.W;
    T* dst = cols + k * ld;
    const index_t off = j * s.dw - s.pw;
    index_t lo, hi;
    valid_cols(off, s.sw, s.W, s.Wo, lo, hi);
    for (index_t oh = oh0; oh < oh1; ++oh, dst += s.Wo) {
      const index_t ih = oh * s.sh - s.ph + i * s.dh;
      if (ih < 0 || ih >= s.H) {
        std::fill(dst, dst + s.Wo, T(0));
        continue;
      }
      const T* src = xc + ih * s.W;
      std::fill(dst, dst + lo, T(0));
      if (s.sw == 1) {
        if (hi > lo) std::memcpy(dst + lo, src + lo + off, static_cast<size_t>(hi - lo) * sizeof(T));
      } else if (s.sw == 2) {
        if (hi > lo) s2.gather(dst + lo, src + 2 * lo + off, hi - lo);
      } else {
        for (index_t q = lo; q < hi; ++q) dst[q] = src[q * s.sw + off];
      }
      std::fill(dst + hi, dst + s.Wo, T(0));
    }
  });
}

// The adjoint of pack_cols: dxg[c, ih, iw] += cols[k, ...] (threads own channels).
template <class T>
void unpack_add(const T* cols, index_t ld, T* dxg, const ConvShape& s, index_t Cg, index_t oh0, index_t oh1) {
  const index_t KK = s.KH * s.KW;
  const RowOps<T> ops = row_ops<T>();
  const Stride2<T> s2 = stride2_ops<T>();
  par_for(Cg, max_threads(Cg * KK * (oh1 - oh0) * s.Wo), [&](index_t c, int) {
    T* dc = dxg + c * s.H * s.W;
    if (s.sw == 2 && s.dw == 1 && s2.scatter_row) {  // a kernel row's taps at once
      for (index_t i = 0; i < s.KH; ++i) {
        const T* src = cols + (c * KK + i * s.KW) * ld;
        for (index_t oh = oh0; oh < oh1; ++oh, src += s.Wo) {
          const index_t ih = oh * s.sh - s.ph + i * s.dh;
          if (ih >= 0 && ih < s.H) s2.scatter_row(dc + ih * s.W, s.W, src, ld, s.KW, s.pw, s.Wo);
        }
      }
      return;
    }
    for (index_t i = 0; i < s.KH; ++i) {
      for (index_t j = 0; j < s.KW; ++j) {
        const T* src = cols + (c * KK + i * s.KW + j) * ld;
        const index_t off = j * s.dw - s.pw;
        index_t lo, hi;
        valid_cols(off, s.sw, s.W, s.Wo, lo, hi);
        for (index_t oh = oh0; oh < oh1; ++oh, src += s.Wo) {
          const index_t ih = oh * s.sh - s.ph + i * s.dh;
          if (ih < 0 || ih >= s.H) continue;
          T* d = dc + ih * s.W + off;
          if (s.sw == 1) {
            if (hi > lo) ops.axpy(d + lo, src + lo, T(1), hi - lo);
          } else if (s.sw == 2) {
            if (hi > lo) s2.scatter(d + 2 * lo, src + lo, hi - lo);
          } else {
            for (index_t q = lo; q < hi; ++q) d[q * s.sw] += src[q];
          }
        }
      }
    }
  });
}

// C (M, N) = beta C + op(A) @ op(B), all row-major with unit column stride.
template <class T>
void mm(index_t M, index_t N, index_t K, const T* a, index_t lda, bool ta, const T* b, index_t ldb, bool tb, T* c,
        index_t ldc, T beta) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == T(0))
      for (index_t r = 0; r < M; ++r) std::fill(c + r * ldc, c + r * ldc + N, T(0));
    return;
  }
  GemmArgs<T> g;
  g.M = M, g.N = N, g.K = K;
  g.a = a, g.lda = lda, g.trans_a = ta;
  g.b = b, g.ldb = ldb, g.trans_b = tb;
  g.c = c, g.ldc = ldc, g.beta = beta;
  gemm<T>(g);
}

// ------------------------------------------------------------------ depthwise (direct)

template <class T>
void dw_forward(const T* x, const T* w, const T* b, T* y, const ConvShape& s) {
  const index_t P = s.N * s.C, HW = s.H * s.W, L = s.Ho * s.Wo;
  const RowOps<T> ops = row_ops<T>();
  index_t all_lo = 0, all_hi = s.Wo;  // output columns that every kernel column reads inside the input
  for (index_t j = 0; j < s.KW; ++j) {
    index_t lo, hi;
    valid_cols(j * s.dw - s.pw, s.sw, s.W, s.Wo, lo, hi);
    all_lo = std::max(all_lo, lo);
    all_hi = std::min(all_hi, hi);
  }
  par_for(P, max_threads(P * L * s.KH * s.KW), [&](index_t p, int) {
    const index_t c = p % s.C;
    const T* xp = x + p * HW;
    const T* wc = w + c * s.KH * s.KW;
    T* yp = y + p * L;
    std::fill(yp, yp + L, b ? b[c] : T(0));
    for (index_t oh = 0; oh < s.Ho; ++oh) {
      T* yr = yp + oh * s.Wo;
      for (index_t i = 0; i < s.KH; ++i) {
        const index_t ih = oh * s.sh - s.ph + i * s.dh;
        if (ih < 0 || ih >= s.H) {
          for (index_t j = 0; j < s.KW; ++j)
            if (!std::isfinite(wc[i * s.KW + j]))
              for (index_t q = 0; q < s.Wo; ++q) yr[q] += wc[i * s.KW + j] * T(0);
          continue;
        }
        const T* xr = xp + ih * s.W;
        if (s.sw == 1 && all_hi > all_lo)  // the columns where every tap of the row reads the input
          ops.taps(yr + all_lo, xr + all_lo - s.pw, wc + i * s.KW, s.KW, s.dw, all_hi - all_lo);
        for (index_t j = 0; j < s.KW; ++j) {
          const index_t off = j * s.dw - s.pw;
          index_t lo, hi;
          valid_cols(off, s.sw, s.W, s.Wo, lo, hi);
          const T wv = wc[i * s.KW + j];
          if (!std::isfinite(wv)) {  // the twin's 0 * w where this tap reads padding
            for (index_t q = 0; q < lo; ++q) yr[q] += wv * T(0);
            for (index_t q = hi; q < s.Wo; ++q) yr[q] += wv * T(0);
          }
          if (s.sw == 1) {  // the edge columns outside [all_lo, all_hi)
            if (all_hi > all_lo) {
              for (index_t q = lo; q < std::min(hi, all_lo); ++q) yr[q] += wv * xr[q + off];
              for (index_t q = std::max(lo, all_hi); q < hi; ++q) yr[q] += wv * xr[q + off];
            } else if (hi > lo) {
              ops.axpy(yr + lo, xr + off + lo, wv, hi - lo);
            }
          } else {
            for (index_t q = lo; q < hi; ++q) yr[q] += wv * xr[q * s.sw + off];
          }
        }
      }
    }
  });
}

template <class T>
void dw_backward_input(const T* dy, const T* w, T* dx, const ConvShape& s) {
  const index_t P = s.N * s.C, HW = s.H * s.W, L = s.Ho * s.Wo;
  const RowOps<T> ops = row_ops<T>();
  par_for(P, max_threads(P * L * s.KH * s.KW), [&](index_t p, int) {
    const index_t c = p % s.C;
    const T* gp = dy + p * L;
    const T* wc = w + c * s.KH * s.KW;
    T* dp = dx + p * HW;
    std::fill(dp, dp + HW, T(0));
    for (index_t oh = 0; oh < s.Ho; ++oh) {
      const T* gr = gp + oh * s.Wo;
      for (index_t i = 0; i < s.KH; ++i) {
        const index_t ih = oh * s.sh - s.ph + i * s.dh;
        if (ih < 0 || ih >= s.H) continue;
        T* dr = dp + ih * s.W;
        for (index_t j = 0; j < s.KW; ++j) {
          const index_t off = j * s.dw - s.pw;
          index_t lo, hi;
          valid_cols(off, s.sw, s.W, s.Wo, lo, hi);
          const T wv = wc[i * s.KW + j];
          if (s.sw == 1) {
            if (hi > lo) ops.axpy(dr + off + lo, gr + lo, wv, hi - lo);
          } else {
            for (index_t q = lo; q < hi; ++q) dr[q * s.sw + off] += wv * gr[q];
          }
        }
      }
    }
  });
}

template <class T>
void dw_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s) {
  const index_t HW = s.H * s.W, L = s.Ho * s.Wo, KK = s.KH * s.KW;
  const RowOps<T> ops = row_ops<T>();
  const int nt = max_threads(s.N * s.C * L * KK);
  // per thread, KK x Wo partial sums (allocated here: nothing may throw inside the parallel region)
  std::vector<T> parts(s.sw == 1 ? static_cast<size_t>(std::max(nt, 1)) * static_cast<size_t>(KK * s.Wo) : 0);
  par_for(s.C, nt, [&](index_t c, int tid) {
    T* dc = dw + c * KK;
    std::fill(dc, dc + KK, T(0));
    T* part = parts.data() + static_cast<size_t>(tid) * static_cast<size_t>(KK * s.Wo);
    for (index_t n = 0; n < s.N; ++n) {
      const T* gp = dy + (n * s.C + c) * L;
      const T* xp = x + (n * s.C + c) * HW;
      bool finite = true;
      for (index_t q = 0; q < L && finite; ++q) finite = std::isfinite(gp[q]);
      if (!finite) {  // every position, padding read as 0: the twin's dy * 0 where dy is NaN or inf
        for (index_t i = 0; i < s.KH; ++i)
          for (index_t j = 0; j < s.KW; ++j) {
            T acc = 0;
            for (index_t oh = 0; oh < s.Ho; ++oh)
              for (index_t ow = 0; ow < s.Wo; ++ow) {
                const index_t ih = oh * s.sh - s.ph + i * s.dh, iw = ow * s.sw - s.pw + j * s.dw;
                const T xv = (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) ? xp[ih * s.W + iw] : T(0);
                acc += gp[oh * s.Wo + ow] * xv;
              }
            dc[i * s.KW + j] += acc;
          }
        continue;
      }
      if (s.sw == 1) {  // per tap, a row of partial sums over the output rows, summed once at the end
        std::fill(part, part + KK * s.Wo, T(0));
        for (index_t oh = 0; oh < s.Ho; ++oh) {
          const T* gr = gp + oh * s.Wo;
          for (index_t i = 0; i < s.KH; ++i) {
            const index_t ih = oh * s.sh - s.ph + i * s.dh;
            if (ih < 0 || ih >= s.H) continue;
            const T* xr = xp + ih * s.W;
            for (index_t j = 0; j < s.KW; ++j) {
              const index_t off = j * s.dw - s.pw;
              index_t lo, hi;
              valid_cols(off, 1, s.W, s.Wo, lo, hi);
              if (hi > lo) ops.mac(part + (i * s.KW + j) * s.Wo + lo, gr + lo, xr + off + lo, hi - lo);
            }
          }
        }
        for (index_t t = 0; t < KK; ++t) {
          T acc[16] = {};
          const T* pr = part + t * s.Wo;
          for (index_t q = 0; q < s.Wo; ++q) acc[q & 15] += pr[q];
          T r = 0;
          for (int u = 0; u < 16; ++u) r += acc[u];
          dc[t] += r;
        }
        continue;
      }
      for (index_t i = 0; i < s.KH; ++i) {
        for (index_t j = 0; j < s.KW; ++j) {
          const index_t off = j * s.dw - s.pw;
          index_t lo, hi;
          valid_cols(off, s.sw, s.W, s.Wo, lo, hi);
          T acc = 0;
          for (index_t oh = 0; oh < s.Ho; ++oh) {
            const index_t ih = oh * s.sh - s.ph + i * s.dh;
            if (ih < 0 || ih >= s.H) continue;
            const T* gr = gp + oh * s.Wo;
            const T* xr = xp + ih * s.W;
            for (index_t q = lo; q < hi; ++q) acc += gr[q] * xr[q * s.sw + off];
          }
          dc[i * s.KW + j] += acc;
        }
      }
    }
  });
}

}  // namespace

void set_conv_tile(index_t elems) { g_tile_elems = std::max<index_t>(elems, 1); }
index_t conv_tile() { return g_tile_elems; }

namespace {

// A block of output columns: m whole images side by side (n0 .. n0 + m), or rows [oh0, oh1) of one image.
struct Blocks {
  index_t m, rows, per_image, count;  // images per block, rows per block (one image), blocks per image
  index_t cols() const { return m; }
};

// Small images (L below kWideCols) are grouped so that the GEMM is wide enough for its micro-panels;
// larger ones are cut into row tiles of at most tile_elems() column values.
Blocks plan_blocks(const ConvShape& s, index_t K) {
  const index_t L = s.Ho * s.Wo;
  Blocks b{1, s.Ho, 1, s.N};
  if (L < kWideCols && L * K <= kGroupElems) {
    b.m = std::max<index_t>(1, std::min<index_t>({s.N, (kWideCols + L - 1) / L, kGroupElems / std::max<index_t>(L * K, 1)}));
    b.count = (s.N + b.m - 1) / b.m;
    return b;
  }
  b.rows = tile_rows(s, K);
  b.per_image = (s.Ho + b.rows - 1) / b.rows;
  b.count = s.N * b.per_image;
  return b;
}

// Image groups run on nt threads: the group size (down to kWideCols / 4 columns, or one image) whose
// busiest thread gets the fewest images, the largest such. 8 images of 49 positions on 2 threads: groups
// of 8 would leave one thread idle, of 7 give it 7 and 1, of 4 give 4 and 4. The GEMM sums each output
// over K in an order that its width does not change, so the results do not depend on the grouping.
void balance_groups(Blocks& b, const ConvShape& s, int nt) {
  if (b.m <= 1 || nt <= 1) return;
  const index_t L = s.Ho * s.Wo;
  index_t best = b.m, best_load = -1;
  for (index_t m = b.m; m >= 1; --m) {
    if (m < b.m && m * L < kWideCols / 4) break;
    const index_t count = (s.N + m - 1) / m;
    const index_t load = std::min(s.N, (count + nt - 1) / nt * m);  // images of the busiest thread
    if (best_load < 0 || load < best_load) best = m, best_load = load;
  }
  b.m = best, b.count = (s.N + best - 1) / best;
}

// The phase path's units: image groups as the im2col path's (plan_blocks, balance_groups), whole images
// for larger ones. The path is taken when one image's phase planes stay within a few column tiles (a rule
// of the shape alone: which path runs must not depend on the thread count, whose sums differ in the bits).
index_t phase_images(const ConvShape& s, int nt) {
  if (phase::geometry(s).image > 4 * g_tile_elems) return 0;
  Blocks bl = plan_blocks(s, s.C * s.KH * s.KW);
  if (bl.m > 1) balance_groups(bl, s, nt);
  return std::max<index_t>(bl.m, 1);
}

template <class T>
bool phase_forward(const T* x, const T* w, const T* b, T* y, const ConvShape& s) {
#if PE_X86
  if constexpr (std::is_same<T, float>::value) {
    if (!phase::applies(s)) return false;
    const int nt = threads_for(s.N * s.O * s.Ho * s.Wo * s.C * s.KH * s.KW, index_t(1) << 20);
    const index_t m = phase_images(s, nt);
    if (m == 0) return false;
    phase::forward(x, w, b, y, s, m, nt);
    return true;
  }
#endif
  (void)x, (void)w, (void)b, (void)y, (void)s;
  return false;
}

// The stride-2 weight gradient on the phase planes (conv_phase_bwd.h), when it takes the shape.
template <class T>
bool phase_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s) {
#if PE_X86
  if constexpr (std::is_same<T, float>::value) {
    if (!phase::applies(s) || !phase::wgrad_fits(s, g_tile_elems)) return false;
    phase::backward_weight(dy, x, dw, s, threads_for(s.N * s.O * s.Ho * s.Wo * s.C * s.KH * s.KW, index_t(1) << 20));
    return true;
  }
#endif
  (void)dy, (void)x, (void)dw, (void)s;
  return false;
}

// The weight gradient's image groups are summed in at most this many chunks, each into its own dW (the
// first into dw), added in chunk order at the end: chunks run on threads, and the chunk rule depends on
// the shape alone, so the bits do not depend on the thread count.
constexpr index_t kWgradChunks = 4;

}  // namespace

template <class T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const ConvShape& s) {
  const index_t L = s.Ho * s.Wo;
  if (s.N == 0 || s.O == 0 || L == 0) return;
  if (is_depthwise(s)) {  // direct SIMD kernels (conv_depthwise.cpp), else the plain loops
    if (!depthwise_forward(x, w, b, y, s)) dw_forward(x, w, b, y, s);
    return;
  }
  if (winograd_applies(s) && winograd_forward(x, w, b, y, s)) return;  // (false: a NaN or inf, y left to the rest)
  if (dense_direct_forward(x, w, b, y, s)) return;  // few input channels: direct (conv_depthwise.cpp)
  if (phase_forward(x, w, b, y, s)) return;            // stride 2: the phase planes (conv_phase.h)
  const index_t Cg = s.C / s.G, Og = s.O / s.G, K = Cg * s.KH * s.KW, HW = s.H * s.W;
  const bool direct = is_pointwise(s);
  Blocks bl = plan_blocks(s, K);
  if (direct && bl.m == 1) bl.rows = s.Ho, bl.per_image = 1, bl.count = s.N;
  const int nt = threads_for(s.N * s.O * L * std::max<index_t>(K, 1), index_t(1) << 20);
  balance_groups(bl, s, nt);
  const bool by_units = nt > 1 && bl.count >= nt;
  const size_t colsz = static_cast<size_t>(bl.m > 1 ? bl.m * L * K : bl.rows * s.Wo * K);
  const size_t outsz = static_cast<size_t>(bl.m > 1 ? Og * bl.m * L : 0);
  const int nbuf = by_units ? nt : 1;
  std::vector<T> buf(static_cast<size_t>(nbuf) * (colsz + outsz));
  par_for(bl.count, by_units ? nt : 1, [&](index_t u, int tid) {
    T* cols = buf.data() + static_cast<size_t>(tid) * (colsz + outsz);
    T* tmp = cols + colsz;
    if (bl.m > 1) {  // m whole images: cols (K, m L), C (Og, m L) then copied to y
      const index_t n0 = u * bl.m, m = std::min(bl.m, s.N - n0), Lt = m * L;
      for (index_t g = 0; g < s.G; ++g) {
        for (index_t k = 0; k < m; ++k) {
          const T* xg = x + ((n0 + k) * s.C + g * Cg) * HW;
          if (direct) {
            for (index_t r = 0; r < K; ++r)
              std::memcpy(cols + r * Lt + k * L, xg + r * HW, static_cast<size_t>(L) * sizeof(T));
          } else {
            pack_cols(xg, cols + k * L, Lt, s, Cg, 0, s.Ho);
          }
        }
        mm<T>(Og, Lt, K, w + g * Og * K, K, false, cols, Lt, false, tmp, Lt, T(0));
        for (index_t k = 0; k < m; ++k)
          for (index_t o = 0; o < Og; ++o) {
            T* dst = y + ((n0 + k) * s.O + g * Og + o) * L;
            const T* src = tmp + o * Lt + k * L;
            const T bv = b ? b[g * Og + o] : T(0);
            for (index_t q = 0; q < L; ++q) dst[q] = src[q] + bv;
          }
      }
      return;
    }
    const index_t n = u / bl.per_image, oh0 = (u % bl.per_image) * bl.rows, oh1 = std::min(s.Ho, oh0 + bl.rows);
    const index_t Lt = (oh1 - oh0) * s.Wo;
    for (index_t g = 0; g < s.G; ++g) {
      const T* xg = x + (n * s.C + g * Cg) * HW;
      const T* bm = xg + oh0 * s.Wo;
      index_t ldb = L;
      if (!direct) {
        pack_cols(xg, cols, Lt, s, Cg, oh0, oh1);
        bm = cols, ldb = Lt;
      }
      T* yg = y + (n * s.O + g * Og) * L + oh0 * s.Wo;
      mm<T>(Og, Lt, K, w + g * Og * K, K, false, bm, ldb, false, yg, L, T(0));
      if (b) {
        for (index_t o = 0; o < Og; ++o) {
          const T bv = b[g * Og + o];
          T* r = yg + o * L;
          for (index_t q = 0; q < Lt; ++q) r[q] += bv;
        }
      }
    }
  });
}

template <class T>
void conv2d_backward_input(const T* dy, const T* w, T* dx, const ConvShape& s) {
  const index_t HW = s.H * s.W, L = s.Ho * s.Wo;
  if (s.N == 0 || s.C == 0 || HW == 0) return;
  if (L == 0 || s.O == 0) {
    std::fill(dx, dx + s.N * s.C * HW, T(0));
    return;
  }
  if (is_depthwise(s)) {  // direct SIMD kernels (conv_depthwise.cpp), else the plain loops
    if (!depthwise_backward_input(dy, w, dx, s)) dw_backward_input(dy, w, dx, s);
    return;
  }
  if (winograd_applies(s) && winograd_backward_input(dy, w, dx, s)) return;  // (false: a NaN or inf, as forward)
  if (dense_direct_backward_input(dy, w, dx, s)) return;  // few output channels: direct (conv_depthwise.cpp)
  const index_t Cg = s.C / s.G, Og = s.O / s.G, K = Cg * s.KH * s.KW;
  const bool direct = is_pointwise(s);
  Blocks bl = plan_blocks(s, K);
  if (direct && bl.m == 1) bl.rows = s.Ho, bl.per_image = 1, bl.count = s.N;
  const int nt = threads_for(s.N * s.O * L * std::max<index_t>(K, 1), index_t(1) << 20);
  balance_groups(bl, s, nt);
  // units that write dx: image groups, or whole images (their row tiles overlap in dx)
  const index_t units = bl.m > 1 ? bl.count : s.N;
  const bool by_units = nt > 1 && units >= nt;
  const size_t colsz = static_cast<size_t>(bl.m > 1 ? bl.m * L * K : bl.rows * s.Wo * K);
  const size_t dysz = static_cast<size_t>(bl.m > 1 ? Og * bl.m * L : 0);
  const int nbuf = by_units ? nt : 1;
  std::vector<T> buf(static_cast<size_t>(nbuf) * (colsz + dysz));
  par_for(units, by_units ? nt : 1, [&](index_t u, int tid) {
    T* cols = buf.data() + static_cast<size_t>(tid) * (colsz + dysz);
    T* dyb = cols + colsz;
    if (bl.m > 1) {  // m whole images: dy (Og, m L) gathered, cols (K, m L) = W^T dy, then col2im per image
      const index_t n0 = u * bl.m, m = std::min(bl.m, s.N - n0), Lt = m * L;
      for (index_t g = 0; g < s.G; ++g) {
        for (index_t k = 0; k < m; ++k)
          for (index_t o = 0; o < Og; ++o)
            std::memcpy(dyb + o * Lt + k * L, dy + ((n0 + k) * s.O + g * Og + o) * L, static_cast<size_t>(L) * sizeof(T));
        mm<T>(K, Lt, Og, w + g * Og * K, K, true, dyb, Lt, false, cols, Lt, T(0));
        for (index_t k = 0; k < m; ++k) {
          T* dxg = dx + ((n0 + k) * s.C + g * Cg) * HW;
          if (direct) {
            for (index_t r = 0; r < K; ++r)
              std::memcpy(dxg + r * HW, cols + r * Lt + k * L, static_cast<size_t>(L) * sizeof(T));
          } else {
            std::fill(dxg, dxg + Cg * HW, T(0));
            unpack_add(cols + k * L, Lt, dxg, s, Cg, 0, s.Ho);
          }
        }
      }
      return;
    }
    const index_t n = u;
    if (!direct) std::fill(dx + n * s.C * HW, dx + (n + 1) * s.C * HW, T(0));
    for (index_t t = 0; t < bl.per_image; ++t) {
      const index_t oh0 = t * bl.rows, oh1 = std::min(s.Ho, oh0 + bl.rows), Lt = (oh1 - oh0) * s.Wo;
      for (index_t g = 0; g < s.G; ++g) {
        const T* wg = w + g * Og * K;
        const T* dyg = dy + (n * s.O + g * Og) * L + oh0 * s.Wo;
        T* dxg = dx + (n * s.C + g * Cg) * HW;
        if (direct) {
          mm<T>(Cg, L, Og, wg, K, true, dyg, L, false, dxg, HW, T(0));
        } else {
          mm<T>(K, Lt, Og, wg, K, true, dyg, L, false, cols, Lt, T(0));
          unpack_add(cols, Lt, dxg, s, Cg, oh0, oh1);
        }
      }
    }
  });
}

template <class T>
void conv2d_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s) {
  const index_t Cg = s.G ? s.C / s.G : 0, Og = s.G ? s.O / s.G : 0, K = Cg * s.KH * s.KW;
  const index_t HW = s.H * s.W, L = s.Ho * s.Wo;
  if (s.O == 0 || K == 0) return;
  if (s.N == 0 || L == 0) {
    std::fill(dw, dw + s.O * K, T(0));
    return;
  }
  if (is_depthwise(s)) {  // direct SIMD kernels (conv_depthwise.cpp), else the plain loops
    if (!depthwise_backward_weight(dy, x, dw, s)) dw_backward_weight(dy, x, dw, s);
    return;
  }
  if (s.G == s.C && depthwise_backward_weight(dy, x, dw, s)) return;  // one input channel per group
  // Winograd and the direct kernel both need finite x and dy (the forward and the input gradient check inside
  // their transforms instead; winograd_forward): a NaN or inf goes to the GEMM paths, which keep the twin's
  // NaN and inf placement. The operands are scanned at most once, when a shape qualifies for both.
  int finite = -1;  // -1: not scanned yet
  const auto operands_finite = [&] {
    if (finite < 0) finite = all_finite(dy, s.N * s.O * L) && all_finite(x, s.N * s.C * HW);
    return finite == 1;
  };
  if (winograd_applies(s) && operands_finite()) return winograd_backward_weight(dy, x, dw, s);
  if (dense_wgrad_takes(s, sizeof(T)) && operands_finite())
    return dense_direct_backward_weight(dy, x, dw, s);  // few channels: direct (conv_depthwise.cpp)
  if (is_pointwise(s)) {
    for (index_t n = 0; n < s.N; ++n)
      for (index_t g = 0; g < s.G; ++g)
        mm<T>(Og, K, L, dy + (n * s.O + g * Og) * L, L, false, x + (n * s.C + g * Cg) * HW, HW, true,
              dw + g * Og * K, K, n ? T(1) : T(0));
    return;
  }
  if (phase_backward_weight(dy, x, dw, s)) return;  // stride 2: the phase planes (conv_phase_bwd.h)
  if (L * K <= g_tile_elems) {  // whole images side by side: cols (K, m L), dy (Og, m L)
    // groups of at most a column tile, and at least kWgradChunks of them where the batch allows: one group
    // of the whole batch was one GEMM on the threaded driver, whose second thread gained nothing (ResNet's
    // 1x1 stride-2 layers at batch 8: 2.5 ms on 1 and on 2 threads)
    const index_t m = std::max<index_t>(1, std::min<index_t>({s.N, g_tile_elems / (L * K),
                                                              (s.N + kWgradChunks - 1) / kWgradChunks}));
    const index_t groups = (s.N + m - 1) / m, chunks = std::min(groups, kWgradChunks), OK = s.O * K;
    const int team = static_cast<int>(std::min<index_t>(
        chunks, threads_for(s.N * s.O * L * std::max<index_t>(K, 1), index_t(1) << 20)));
    const size_t per = static_cast<size_t>(m * L * (K + Og));
    std::vector<T> buf(static_cast<size_t>(team) * per), parts(static_cast<size_t>((chunks - 1) * OK));
    par_for(chunks, team, [&](index_t c, int tid) {  // chunk c: groups [c groups / chunks, (c + 1) groups / chunks)
      T* acc = c ? parts.data() + (c - 1) * OK : dw;
      T* cols = buf.data() + static_cast<size_t>(tid) * per;
      T* dyb = cols + m * L * K;
      const index_t q0 = c * groups / chunks, q1 = (c + 1) * groups / chunks;
      for (index_t q = q0; q < q1; ++q) {
        const index_t n0 = q * m, cnt = std::min(m, s.N - n0), Lt = cnt * L;
        for (index_t g = 0; g < s.G; ++g) {
          for (index_t k = 0; k < cnt; ++k) {
            const index_t n = n0 + k;
            pack_cols(x + (n * s.C + g * Cg) * HW, cols + k * L, Lt, s, Cg, 0, s.Ho);
            if (cnt > 1)
              for (index_t o = 0; o < Og; ++o)
                std::memcpy(dyb + o * Lt + k * L, dy + (n * s.O + g * Og + o) * L, static_cast<size_t>(L) * sizeof(T));
          }
          const T* dyg = cnt > 1 ? dyb : dy + (n0 * s.O + g * Og) * L;  // one image: dy read in place
          mm<T>(Og, K, Lt, dyg, Lt, false, cols, Lt, true, acc + g * Og * K, K, q > q0 ? T(1) : T(0));
        }
      }
    });
    if (chunks > 1) {  // dw += parts[0], then parts[1], ...: blocks of dw on threads, each in chunk order
      constexpr index_t kBlock = 4096;
      const RowOps<T> ops = row_ops<T>();
      const index_t blocks = (OK + kBlock - 1) / kBlock;
      par_for(blocks, max_threads(OK * (chunks - 1)), [&](index_t i, int) {
        const index_t lo = i * kBlock, n = std::min(kBlock, OK - lo);
        for (index_t c = 1; c < chunks; ++c) ops.axpy(dw + lo, parts.data() + (c - 1) * OK + lo, T(1), n);
      });
    }
    return;
  }
  const index_t rows = tile_rows(s, K), ntiles = (s.Ho + rows - 1) / rows;
  std::vector<T> cols(static_cast<size_t>(rows * s.Wo * K));
  for (index_t n = 0; n < s.N; ++n) {
    for (index_t t = 0; t < ntiles; ++t) {
      const index_t oh0 = t * rows, oh1 = std::min(s.Ho, oh0 + rows), Lt = (oh1 - oh0) * s.Wo;
      for (index_t g = 0; g < s.G; ++g) {
        pack_cols(x + (n * s.C + g * Cg) * HW, cols.data(), Lt, s, Cg, oh0, oh1);
        mm<T>(Og, K, Lt, dy + (n * s.O + g * Og) * L + oh0 * s.Wo, L, false, cols.data(), Lt, true,
              dw + g * Og * K, K, (n || t) ? T(1) : T(0));
      }
    }
  }
}

index_t conv_workspace_bytes(const ConvShape& s, int itemsize) {
  const index_t direct = direct_workspace_bytes(s, itemsize);  // conv_depthwise.cpp's buffers
  if (is_depthwise(s) || s.G < 1) return direct;
  const index_t Cg = s.C / s.G, Og = s.O / s.G, K = Cg * s.KH * s.KW, L = s.Ho * s.Wo;
  const Blocks bl = plan_blocks(s, K);
  const index_t per_thread = bl.m > 1 ? bl.m * L * (K + Og) : bl.rows * s.Wo * K;
  index_t fwd = static_cast<index_t>(num_threads()) * per_thread;
  if (itemsize == 4 && phase::applies(s))  // the stride-2 forward on phase planes, when it takes the shape
    if (const index_t m = phase_images(s, num_threads())) fwd = phase::workspace_floats(s, m, num_threads());
  index_t wgrad = 0;
  if (itemsize == 4 && phase::applies(s) && phase::wgrad_fits(s, g_tile_elems)) {
    wgrad = phase::wgrad_workspace_floats(s, num_threads());
  } else if (!is_pointwise(s)) {
    if (L * K <= g_tile_elems) {  // a group's buffers per thread, and the chunks' partial dW
      const index_t m = std::max<index_t>(1, std::min<index_t>(s.N, g_tile_elems / std::max<index_t>(L * K, 1)));
      const index_t chunks = std::min((s.N + m - 1) / m, kWgradChunks);
      wgrad = std::min<index_t>(num_threads(), chunks) * m * L * (K + Og) + (chunks - 1) * s.O * K;
    } else {
      wgrad = tile_rows(s, K) * s.Wo * K;
    }
  }
  // Winograd shapes run all three passes there
  if (winograd_applies(s)) return std::max(winograd_workspace_bytes(s, itemsize), direct);
  return std::max(std::max(fwd, wgrad) * itemsize, direct);
}

// ------------------------------------------------------------------ pooling

namespace {
// One output row of a 2 x 2 window of stride 2 reading input rows r0, r1 (columns 2q, 2q + 1), no padding:
// the window's first maximum in reading order, a NaN winning (the general loop's rule). Written so that the
// compiler vectorises it for each ISA: the maxima and the winner's number (0..3, kept as a T) in one pass of
// selects on T alone, the int64 positions in a second; in chunks of kChunk outputs (the numbers on the stack).
template <class T>
PE_INLINE void maxpool22_row_body(const T* r0, const T* r1, T* y, std::int64_t* idx, index_t Wo, std::int64_t base,
                                  std::int64_t W) {
  constexpr index_t kChunk = 256;
  T code[kChunk];
  for (index_t q0 = 0; q0 < Wo; q0 += kChunk) {
    const index_t n = std::min(kChunk, Wo - q0);
    const T* a0 = r0 + 2 * q0;
    const T* a1 = r1 + 2 * q0;
    T* yo = y + q0;
    for (index_t q = 0; q < n; ++q) {
      const T a = a0[2 * q], b = a0[2 * q + 1], c = a1[2 * q], d = a1[2 * q + 1];
      T m = a, k = T(0);
      bool t = (b > m) | ((b != b) & (m == m));
      m = t ? b : m;
      k = t ? T(1) : k;
      t = (c > m) | ((c != c) & (m == m));
      m = t ? c : m;
      k = t ? T(2) : k;
      t = (d > m) | ((d != d) & (m == m));
      m = t ? d : m;
      k = t ? T(3) : k;
      yo[q] = m;
      code[q] = k;
    }
    std::int64_t* io = idx + q0;
    const std::int64_t first = base + 2 * q0;
    for (index_t q = 0; q < n; ++q) {
      const std::int64_t k = static_cast<std::int64_t>(code[q]);
      io[q] = first + 2 * q + (k & 1) + (k >> 1) * W;
    }
  }
}
PE_ISA_VARIANTS(maxpool22_row, (const T* r0, const T* r1, T* y, std::int64_t* idx, index_t Wo, std::int64_t base,
                                std::int64_t W),
                (r0, r1, y, idx, Wo, base, W))

#if PE_X86
// The same rows for float with intrinsics (GCC keeps the selects above as branches): even and odd columns of
// each row deinterleaved by permutes, the winner chosen by compare masks and blends, its position widened to
// int64 per half. A last partial vector (and a row shorter than one: 28x28 planes pooled to 14) runs on
// copies of its inputs in a stack buffer, its valid outputs copied out.
template <int Lanes, class Step>
inline __attribute__((always_inline)) void maxpool22_rows_by(const Step& step, const float* r0, const float* r1,
                                                             float* y, std::int64_t* idx, index_t Wo,
                                                             std::int64_t base) {
  index_t q = 0;
  for (; q + Lanes <= Wo; q += Lanes) step(r0 + 2 * q, r1 + 2 * q, y + q, idx + q, base + 2 * q);
  if (q == Wo) return;
  const index_t n = Wo - q;
  float a[2 * Lanes] = {}, b[2 * Lanes] = {}, yt[Lanes];
  std::int64_t it[Lanes];
  std::memcpy(a, r0 + 2 * q, static_cast<size_t>(2 * n) * sizeof(float));
  std::memcpy(b, r1 + 2 * q, static_cast<size_t>(2 * n) * sizeof(float));
  step(a, b, yt, it, base + 2 * q);
  std::memcpy(y + q, yt, static_cast<size_t>(n) * sizeof(float));
  std::memcpy(idx + q, it, static_cast<size_t>(n) * sizeof(std::int64_t));
}

PE_TARGET_AVX512 void maxpool22_row_avx512f(const float* r0, const float* r1, float* y, std::int64_t* idx, index_t Wo,
                                            std::int64_t base, std::int64_t W) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
  const __m512i lane2 = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i one = _mm512_set1_epi64(1), vw = _mm512_set1_epi64(W);
  auto step = [&](const float* p0, const float* p1, float* yo, std::int64_t* io, std::int64_t first)
                  PE_TARGET_AVX512 {
    const __m512 x0 = _mm512_loadu_ps(p0), x1 = _mm512_loadu_ps(p0 + 16);
    const __m512 z0 = _mm512_loadu_ps(p1), z1 = _mm512_loadu_ps(p1 + 16);
    const __m512 cand[3] = {_mm512_permutex2var_ps(x0, od, x1), _mm512_permutex2var_ps(z0, ev, z1),
                            _mm512_permutex2var_ps(z0, od, z1)};
    __m512 m = _mm512_permutex2var_ps(x0, ev, x1);
    __m512i k = _mm512_setzero_si512();
    for (int c = 0; c < 3; ++c) {
      const __m512 v = cand[c];
      const __mmask16 t = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) |
                          (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(m, m, _CMP_ORD_Q));
      m = _mm512_mask_blend_ps(t, m, v);
      k = _mm512_mask_blend_epi32(t, k, _mm512_set1_epi32(c + 1));
    }
    _mm512_storeu_ps(yo, m);
    for (int h = 0; h < 2; ++h) {  // positions first + 2 lane + (k & 1) + (k >> 1) W
      const __m512i kh = _mm512_cvtepi32_epi64(h ? _mm512_extracti64x4_epi64(k, 1) : _mm512_castsi512_si256(k));
      const __m512i row = _mm512_sub_epi64(_mm512_setzero_si512(), _mm512_srli_epi64(kh, 1));  // 0 or all ones
      __m512i v = _mm512_add_epi64(_mm512_set1_epi64(first + 16 * h), lane2);
      v = _mm512_add_epi64(v, _mm512_add_epi64(_mm512_and_si512(kh, one), _mm512_and_si512(row, vw)));
      _mm512_storeu_si512(io + 8 * h, v);
    }
  };
  maxpool22_rows_by<16>(step, r0, r1, y, idx, Wo, base);
}

PE_TARGET_AVX2 void maxpool22_row_avx2f(const float* r0, const float* r1, float* y, std::int64_t* idx, index_t Wo,
                                        std::int64_t base, std::int64_t W) {
  const __m256i lane2 = _mm256_setr_epi64x(0, 2, 4, 6);
  const __m256i one = _mm256_set1_epi64x(1), vw = _mm256_set1_epi64x(W);
  auto split = [](const float* p, __m256& even, __m256& odd) PE_TARGET_AVX2 {
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
  };
  auto step = [&](const float* p0, const float* p1, float* yo, std::int64_t* io, std::int64_t first)
                  PE_TARGET_AVX2 {
    __m256 m, cand[3];
    split(p0, m, cand[0]);
    split(p1, cand[1], cand[2]);
    __m256 k = _mm256_setzero_ps();
    for (int c = 0; c < 3; ++c) {
      const __m256 v = cand[c];
      const __m256 t = _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ),
                                    _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(m, m, _CMP_ORD_Q)));
      m = _mm256_blendv_ps(m, v, t);
      k = _mm256_blendv_ps(k, _mm256_set1_ps(float(c + 1)), t);
    }
    _mm256_storeu_ps(yo, m);
    const __m256i ki = _mm256_cvttps_epi32(k);
    for (int h = 0; h < 2; ++h) {
      const __m256i kh = _mm256_cvtepi32_epi64(h ? _mm256_extracti128_si256(ki, 1) : _mm256_castsi256_si128(ki));
      const __m256i row = _mm256_sub_epi64(_mm256_setzero_si256(), _mm256_srli_epi64(kh, 1));
      __m256i v = _mm256_add_epi64(_mm256_set1_epi64x(first + 8 * h), lane2);
      v = _mm256_add_epi64(v, _mm256_add_epi64(_mm256_and_si256(kh, one), _mm256_and_si256(row, vw)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(io + 4 * h), v);
    }
  };
  maxpool22_rows_by<8>(step, r0, r1, y, idx, Wo, base);
}
#endif

template <class T>
auto maxpool22_row_fn() {
  return maxpool22_row_for_isa<T>();
}
#if PE_X86
template <>
auto maxpool22_row_fn<float>() {
  switch (isa()) {
    case Isa::avx512: return &maxpool22_row_avx512f;
    case Isa::avx2: return &maxpool22_row_avx2f;
    default: return &maxpool22_row_generic<float>;
  }
}
#endif
}  // namespace

template <class T>
void max_pool2d_forward(const T* x, T* y, std::int64_t* idx, const PoolShape& s) {
  const index_t HW = s.H * s.W, L = s.Ho * s.Wo;
  if (s.KH == 2 && s.KW == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 && s.pw == 0 && s.dh == 1 && s.dw == 1 &&
      2 * s.Ho <= s.H && 2 * s.Wo <= s.W) {  // every window inside the plane: the vectorised rows
    const auto row = maxpool22_row_fn<T>();
    par_for(s.P, max_threads(s.P * L * 4), [&](index_t p, int) {
      for (index_t oh = 0; oh < s.Ho; ++oh) {
        const T* r0 = x + p * HW + 2 * oh * s.W;
        row(r0, r0 + s.W, y + p * L + oh * s.Wo, idx + p * L + oh * s.Wo, s.Wo, 2 * oh * s.W, s.W);
      }
    });
    return;
  }
  par_for(s.P, max_threads(s.P * L * s.KH * s.KW), [&](index_t p, int) {
    const T* xp = x + p * HW;
    T* yp = y + p * L;
    std::int64_t* ip = idx + p * L;
    for (index_t oh = 0; oh < s.Ho; ++oh) {
      for (index_t ow = 0; ow < s.Wo; ++ow) {
        T best = -std::numeric_limits<T>::infinity();
        std::int64_t bi = -1;
        for (index_t i = 0; i < s.KH; ++i) {
          const index_t ih = oh * s.sh - s.ph + i * s.dh;
          if (ih < 0 || ih >= s.H) continue;
          for (index_t j = 0; j < s.KW; ++j) {
            const index_t iw = ow * s.sw - s.pw + j * s.dw;
            if (iw < 0 || iw >= s.W) continue;
            const T v = xp[ih * s.W + iw];
            if (bi < 0 || v > best || (std::isnan(v) && !std::isnan(best))) {
              best = v;
              bi = ih * s.W + iw;
            }
          }
        }
        yp[oh * s.Wo + ow] = best;
        ip[oh * s.Wo + ow] = bi;
      }
    }
  });
}

template <class T>
void max_pool2d_backward(const T* dy, const std::int64_t* idx, T* dx, const PoolShape& s) {
  const index_t HW = s.H * s.W, L = s.Ho * s.Wo;
  par_for(s.P, max_threads(s.P * (L + HW)), [&](index_t p, int) {
    T* dp = dx + p * HW;
    std::fill(dp, dp + HW, T(0));
    const T* gp = dy + p * L;
    const std::int64_t* ip = idx + p * L;
    for (index_t q = 0; q < L; ++q)
      if (ip[q] >= 0 && ip[q] < HW) dp[ip[q]] += gp[q];
  });
}

namespace {
struct Window {
  index_t h0, h1, w0, w1;
  double div;
};
inline Window avg_window(const PoolShape& s, index_t oh, index_t ow, bool cip, index_t over) {
  index_t hs = oh * s.sh - s.ph, ws = ow * s.sw - s.pw;
  index_t he = std::min(hs + s.KH, s.H + s.ph), we = std::min(ws + s.KW, s.W + s.pw);
  const double pool = double(he - hs) * double(we - ws);
  Window r{std::max<index_t>(hs, 0), std::min(he, s.H), std::max<index_t>(ws, 0), std::min(we, s.W), 0.0};
  r.div = over ? double(over) : cip ? pool : double(r.h1 - r.h0) * double(r.w1 - r.w0);
  return r;
}
}  // namespace

template <class T>
void avg_pool2d_forward(const T* x, T* y, const PoolShape& s, bool cip, index_t over) {
  const index_t HW = s.H * s.W, L = s.Ho * s.Wo;
  par_for(s.P, max_threads(s.P * L * s.KH * s.KW), [&](index_t p, int) {
    const T* xp = x + p * HW;
    T* yp = y + p * L;
    for (index_t oh = 0; oh < s.Ho; ++oh) {
      for (index_t ow = 0; ow < s.Wo; ++ow) {
        const Window w = avg_window(s, oh, ow, cip, over);
        double acc = 0;
        for (index_t ih = w.h0; ih < w.h1; ++ih)
          for (index_t iw = w.w0; iw < w.w1; ++iw) acc += xp[ih * s.W + iw];
        yp[oh * s.Wo + ow] = static_cast<T>(acc / w.div);
      }
    }
  });
}

template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const PoolShape& s, bool cip, index_t over) {
  const index_t HW = s.H * s.W, L = s.Ho * s.Wo;
  par_for(s.P, max_threads(s.P * (L * s.KH * s.KW + HW)), [&](index_t p, int) {
    T* dp = dx + p * HW;
    std::fill(dp, dp + HW, T(0));
    const T* gp = dy + p * L;
    for (index_t oh = 0; oh < s.Ho; ++oh) {
      for (index_t ow = 0; ow < s.Wo; ++ow) {
        const Window w = avg_window(s, oh, ow, cip, over);
        const T g = static_cast<T>(gp[oh * s.Wo + ow] / w.div);
        for (index_t ih = w.h0; ih < w.h1; ++ih)
          for (index_t iw = w.w0; iw < w.w1; ++iw) dp[ih * s.W + iw] += g;
      }
    }
  });
}

// ------------------------------------------------------------------ batch norm

namespace {
// Row passes of batch norm, vectorised per ISA; the sums run in double (omp simd reductions).
template <class T>
PE_INLINE void bn_sum_body(const T* r, index_t n, double* out) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (index_t l = 0; l < n; ++l) s += static_cast<double>(r[l]);
  *out += s;
}
template <class T>
PE_INLINE void bn_sqdev_body(const T* r, index_t n, double m, double* out) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (index_t l = 0; l < n; ++l) {
    const double d = static_cast<double>(r[l]) - m;
    s += d * d;
  }
  *out += s;
}
template <class T>
PE_INLINE void bn_affine_body(const T* r, T* o, index_t n, T scale, T shift) {
  for (index_t l = 0; l < n; ++l) o[l] = r[l] * scale + shift;
}
template <class T>
PE_INLINE void bn_dots_body(const T* g, const T* r, index_t n, double m, double* sdy, double* sdyx) {
  double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
  for (index_t l = 0; l < n; ++l) {
    a += static_cast<double>(g[l]);
    b += static_cast<double>(g[l]) * (static_cast<double>(r[l]) - m);
  }
  *sdy += a;
  *sdyx += b;
}
template <class T>
PE_INLINE void bn_dx_body(const T* g, const T* r, T* o, index_t n, T kk, T ta, T tb, T mt, bool training) {
  if (training) {
    for (index_t l = 0; l < n; ++l) o[l] = kk * (g[l] - ta - tb * (r[l] - mt));
  } else {
    for (index_t l = 0; l < n; ++l) o[l] = kk * g[l];
  }
}
PE_ISA_VARIANTS(bn_sum, (const T* r, index_t n, double* out), (r, n, out))
PE_ISA_VARIANTS(bn_sqdev, (const T* r, index_t n, double m, double* out), (r, n, m, out))
PE_ISA_VARIANTS(bn_affine, (const T* r, T* o, index_t n, T scale, T shift), (r, o, n, scale, shift))
PE_ISA_VARIANTS(bn_dots, (const T* g, const T* r, index_t n, double m, double* sdy, double* sdyx),
                (g, r, n, m, sdy, sdyx))
PE_ISA_VARIANTS(bn_dx, (const T* g, const T* r, T* o, index_t n, T kk, T ta, T tb, T mt, bool training),
                (g, r, o, n, kk, ta, tb, mt, training))
}  // namespace

template <class T>
void batch_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* var, index_t N, index_t C,
                        index_t L, double eps, bool stats) {
  const index_t cnt = N * L;
  const auto sum = bn_sum_for_isa<T>();
  const auto sqdev = bn_sqdev_for_isa<T>();
  const auto affine = bn_affine_for_isa<T>();
  par_for(C, max_threads(N * C * L), [&](index_t c, int) {
    if (stats) {
      double s1 = 0;
      for (index_t n = 0; n < N; ++n) sum(x + (n * C + c) * L, L, &s1);
      const double m = cnt ? s1 / double(cnt) : std::nan("");
      double s2 = 0;
      for (index_t n = 0; n < N; ++n) sqdev(x + (n * C + c) * L, L, m, &s2);
      mean[c] = static_cast<T>(m);
      var[c] = static_cast<T>(cnt ? s2 / double(cnt) : std::nan(""));
    }
    const T rstd = static_cast<T>(1.0 / std::sqrt(double(var[c]) + eps));
    const T scale = weight ? rstd * weight[c] : rstd;
    const T shift = bias ? bias[c] - mean[c] * scale : -mean[c] * scale;
    for (index_t n = 0; n < N; ++n) affine(x + (n * C + c) * L, y + (n * C + c) * L, L, scale, shift);
  });
}

template <class T>
void batch_norm_backward(const T* dy, const T* x, const T* weight, const T* mean, const T* var, T* dx, T* dweight,
                         T* dbias, index_t N, index_t C, index_t L, double eps, bool training) {
  const index_t cnt = N * L;
  const auto dots = bn_dots_for_isa<T>();
  const auto dxrow = bn_dx_for_isa<T>();
  par_for(C, max_threads(N * C * L), [&](index_t c, int) {
    const double rstd = 1.0 / std::sqrt(double(var[c]) + eps), m = mean[c];
    double sdy = 0, sdyx = 0;
    for (index_t n = 0; n < N; ++n) dots(dy + (n * C + c) * L, x + (n * C + c) * L, L, m, &sdy, &sdyx);
    dbias[c] = static_cast<T>(sdy);
    if (dweight) dweight[c] = static_cast<T>(sdyx * rstd);
    const double k = (weight ? double(weight[c]) : 1.0) * rstd;
    const double a = training && cnt ? sdy / double(cnt) : 0.0;
    const double bcoef = training && cnt ? sdyx * rstd * rstd / double(cnt) : 0.0;
    const T kk = static_cast<T>(k), ta = static_cast<T>(a), tb = static_cast<T>(bcoef), mt = static_cast<T>(m);
    for (index_t n = 0; n < N; ++n)
      dxrow(dy + (n * C + c) * L, x + (n * C + c) * L, dx + (n * C + c) * L, L, kk, ta, tb, mt, training);
  });
}

template <class T>
bool conv2d_backward_fused(const T* dy, const T* w, const T* x, T* dx, T* dw, T* db, const ConvShape& s) {
  return is_depthwise(s) && depthwise_backward(dy, w, x, dx, dw, db, s);  // conv_depthwise.cpp
}

#define PE_CONV_INSTANTIATE(T)                                                                                   \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, const ConvShape&);                          \
  template void conv2d_backward_input<T>(const T*, const T*, T*, const ConvShape&);                             \
  template void conv2d_backward_weight<T>(const T*, const T*, T*, const ConvShape&);                            \
  template bool conv2d_backward_fused<T>(const T*, const T*, const T*, T*, T*, T*, const ConvShape&);         \
  template void max_pool2d_forward<T>(const T*, T*, std::int64_t*, const PoolShape&);                           \
  template void max_pool2d_backward<T>(const T*, const std::int64_t*, T*, const PoolShape&);                    \
  template void avg_pool2d_forward<T>(const T*, T*, const PoolShape&, bool, index_t);                           \
  template void avg_pool2d_backward<T>(const T*, T*, const PoolShape&, bool, index_t);                          \
  template void batch_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, index_t, index_t, index_t,       \
                                      double, bool);                                                            \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, index_t,   \
                                       index_t, index_t, double, bool);
PE_CONV_INSTANTIATE(float)
PE_CONV_INSTANTIATE(double)
#undef PE_CONV_INSTANTIATE

}  // namespace cpu
}  // namespace pe
