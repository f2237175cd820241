// LayerNorm forward and backward (see norm.h).
//
// One row at a time; rows are spread over threads. Each row-body is compiled per
// ISA by PE_ISA_VARIANTS (simd.h) and vectorised by GCC; the
// reductions over a row use `omp simd reduction`, which lets GCC keep several
// partial sums in vector lanes (plain C++ forbids reassociating a float sum).
// The forward statistics accumulate in double, also for float input; the
// backward computes in the input's type (see there).
#include "cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/simd.h"

namespace pe {
namespace cpu {
namespace {

// ====================================================================== forward
// x, y: (C,) one row   w, b: (C,) or null   -> *mean, *rstd
// mean = sum(x) / C,  var = sum((x - mean)^2) / C  (two passes: the row is in
// L1/L2 after the first, so the second costs no memory traffic, and unlike
// E[x^2] - mean^2 it does not cancel when |mean| >> std),
// rstd = 1 / sqrt(var + eps),  y = (x - mean) rstd w + b.
// y is computed in T. mean is split as mean_hi + mean_lo (both T): for float,
// x - float(mean) would lose |mean| 2^-24 before being scaled by rstd (an
// absolute error of 2^-24 |mean| / std in y); (x - mean_hi) is exact when
// x ~ mean, where it matters, and mean_lo restores the rest.

template <class T, bool HasW, bool HasB>
PE_INLINE void ln_fwd_write(const T* x, const T* w, const T* b, T* y, index_t C, T mh, T ml, T r) {
  for (index_t j = 0; j < C; ++j) {
    T v = ((x[j] - mh) - ml) * r;
    if (HasW) v = v * w[j];
    if (HasB) v = v + b[j];
    y[j] = v;
  }
}

template <class T>
PE_INLINE void ln_fwd_row_body(const T* x, const T* w, const T* b, T* y, T* mean_out, T* rstd_out, index_t C,
                               double eps) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (index_t j = 0; j < C; ++j) s += x[j];
  const double mean = s / static_cast<double>(C);
  double v = 0.0;
#pragma omp simd reduction(+ : v)
  for (index_t j = 0; j < C; ++j) {
    const double d = static_cast<double>(x[j]) - mean;
    v += d * d;
  }
  const double rstd = 1.0 / std::sqrt(v / static_cast<double>(C) + eps);
  *mean_out = static_cast<T>(mean);
  *rstd_out = static_cast<T>(rstd);

  const T mh = static_cast<T>(mean);
  const T ml = static_cast<T>(mean - static_cast<double>(mh));
  const T r = static_cast<T>(rstd);
  if (w && b) ln_fwd_write<T, true, true>(x, w, b, y, C, mh, ml, r);
  else if (w) ln_fwd_write<T, true, false>(x, w, b, y, C, mh, ml, r);
  else if (b) ln_fwd_write<T, false, true>(x, w, b, y, C, mh, ml, r);
  else ln_fwd_write<T, false, false>(x, w, b, y, C, mh, ml, r);
}
PE_ISA_VARIANTS(ln_fwd_row, (const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, index_t C, double eps),
                (x, w, b, y, mean, rstd, C, eps))

// ====================================================================== backward
// dy, x, dx: (C,) one row   w: (C,) or null   m, r: this row's saved mean and rstd
// xhat = (x - m) r,  g = dy w  (g = dy without weight)
//   dx = r (g - mean_C(g) - xhat mean_C(g xhat))             (per row)
//   dweight += dy xhat,  dbias += dy                          (into this thread's
//                                                              staging sums dw, db)
// Computed in T, like PyTorch: in float a vector op does 16 lanes, not 8, and the
// kernel streams dy and x at memory speed (in double it was ~25% slower on 2
// threads). The row sums keep one partial sum per SIMD lane (`omp simd`), so a
// 768-wide row adds ~48 terms per lane; x - m is exact when x ~ m (Sterbenz),
// where the subtraction would otherwise lose the most. dx's three terms can
// cancel: the error is then ~2^-24 r |g| absolute, as in any float LayerNorm.
// Two passes over the row (the second from L1): the row sums first, then dx and
// the weight/bias sums.

template <class T, bool HasW>
PE_INLINE void ln_bwd_row_impl(const T* dy, const T* x, const T* w, T m, T r, T* dx, T* __restrict dw,
                               T* __restrict db, index_t C) {
  T s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
  for (index_t j = 0; j < C; ++j) {
    const T xh = (x[j] - m) * r;
    const T g = HasW ? dy[j] * w[j] : dy[j];
    s1 += g;
    s2 += g * xh;
  }
  const T a = s1 / static_cast<T>(C);
  const T c = s2 / static_cast<T>(C);
  for (index_t j = 0; j < C; ++j) {
    const T d = dy[j];  // read before dx[j] is written (dx may alias dy)
    const T xh = (x[j] - m) * r;
    const T g = HasW ? d * w[j] : d;
    dx[j] = r * (g - a - xh * c);
    if (HasW) dw[j] += d * xh;
    db[j] += d;
  }
}

template <class T>
PE_INLINE void ln_bwd_row_body(const T* dy, const T* x, const T* w, T m, T r, T* dx, T* dw, T* db, index_t C) {
  if (w) ln_bwd_row_impl<T, true>(dy, x, w, m, r, dx, dw, db, C);
  else ln_bwd_row_impl<T, false>(dy, x, w, m, r, dx, dw, db, C);
}
PE_ISA_VARIANTS(ln_bwd_row, (const T* dy, const T* x, const T* w, T m, T r, T* dx, T* dw, T* db, index_t C),
                (dy, x, w, m, r, dx, dw, db, C))

}  // namespace

// ====================================================================== drivers

template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, index_t N,
                        index_t C, double eps) {
  auto k = ln_fwd_row_for_isa<T>();
  const int nt = threads_for(N * C * 2);
  if (nt <= 1) {
    for (index_t r = 0; r < N; ++r) k(x + r * C, weight, bias, y + r * C, mean + r, rstd + r, C, eps);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (index_t r = 0; r < N; ++r) k(x + r * C, weight, bias, y + r * C, mean + r, rstd + r, C, eps);
}

// dweight / dbias without races: the rows are cut into blocks (their count fixed by N, never by the
// thread count, which follows the machine's load), and each block adds its rows' dy xhat and dy into
// C-long staging sums in T (fused into the dx pass, so dy and x are read from memory once). Every
// kFlushRows rows the staging sums move into the block's double sums, so a long column never accumulates
// in float for more than kFlushRows terms. After the parallel loop the blocks' sums are added in block
// order, column by column: no atomics, no locks, and the same bits on any number of threads
// (tests/test_thread_determinism.py). (Splitting over columns instead would need a second sweep over dy
// and x, which for large N no longer fit in cache.)
constexpr index_t kFlushRows = 32, kMaxBlocks = 16;

template <class T>
void layer_norm_backward(const T* dy, const T* x, const T* weight, const T* mean, const T* rstd, T* dx,
                         T* dweight, T* dbias, index_t N, index_t C) {
  auto k = ln_bwd_row_for_isa<T>();
  // blocks of a whole number of flush groups, at least 8 of them (256 rows), at most kMaxBlocks blocks
  const index_t groups = (N + kFlushRows - 1) / kFlushRows;
  const index_t nb = std::max<index_t>(1, std::min<index_t>(kMaxBlocks, groups / 8));
  const index_t rows_per_block = (groups + nb - 1) / nb * kFlushRows;
  const int nt = static_cast<int>(std::min<index_t>(threads_for(N * C * 3), nb));
  const size_t Cs = static_cast<size_t>(C);
  std::vector<double> part(static_cast<size_t>(nb) * 2 * Cs, 0.0);  // [block][dw | db][C]
  std::vector<T> stages(static_cast<size_t>(std::max(nt, 1)) * 2 * Cs);  // per thread, [dw | db] in T

  parallel_for(nb, nt, 1, [&](index_t b) {
    const index_t r0 = std::min(N, b * rows_per_block), r1 = std::min(N, r0 + rows_per_block);
    double* dw = part.data() + static_cast<size_t>(b) * 2 * Cs;
    double* db = dw + Cs;
    T* sw = stages.data() + static_cast<size_t>(nt > 1 ? vm::thread_id() : 0) * 2 * Cs;
    T* sb = sw + Cs;
    std::fill(sw, sw + 2 * Cs, T(0));
    for (index_t r = r0; r < r1; ++r) {
      k(dy + r * C, x + r * C, weight, mean[r], rstd[r], dx + r * C, sw, sb, C);
      if ((r - r0) % kFlushRows == kFlushRows - 1 || r == r1 - 1) {
        for (size_t j = 0; j < Cs; ++j) {
          dw[j] += sw[j];
          db[j] += sb[j];
        }
        std::fill(sw, sw + 2 * Cs, T(0));
      }
    }
  });

  for (index_t j = 0; j < C; ++j) {
    double sw = 0.0, sb = 0.0;
    for (index_t b = 0; b < nb; ++b) {
      sw += part[static_cast<size_t>(b) * 2 * Cs + j];
      sb += part[static_cast<size_t>(b) * 2 * Cs + Cs + j];
    }
    if (dweight) dweight[j] = static_cast<T>(sw);
    dbias[j] = static_cast<T>(sb);
  }
}

#define PE_INSTANTIATE(T)                                                                              \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, index_t, index_t, double); \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, index_t, \
                                       index_t);
PE_INSTANTIATE(float)
PE_INSTANTIATE(double)
#undef PE_INSTANTIATE

}  // namespace cpu
}  // namespace pe
