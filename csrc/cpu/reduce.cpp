// Column sums and in-place array sums (see reduce.h).
//
// Memory-bound: x is read once. Column sums: each block of rows (row_blocks: the
// count fixed by N, not by the threads) is added into its own C-long double
// buffer, eight rows at a time (see accumulate_rows; the adds are vectorised per
// ISA). Double, also for float input: a float running sum over thousands of rows
// drifts by ~sqrt(N) ulps, a double one is exact to the final rounding for any
// practical N, and the conversion costs nothing next to the memory traffic. The
// blocks' sums are then added in block order: no atomics, and the same bits on
// any number of threads. With too few rows for two blocks, threads take column
// ranges instead (each column then summed in row order, as on one thread).
#include "cpu/reduce.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/lanes.h"
#include "cpu/simd.h"

// GCC 12 reports the undefined pass-through operands inside _mm512_cvtps_pd / _mm512_reduce_add_pd as
// (maybe) used uninitialized once inlined here: false positives (as in elementwise.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace pe {
namespace cpu {
namespace {

// acc[0:C) += the sum of rows [0, R) of x (row stride ldx), in double, each column in row order.
// kRows rows at a time: per chunk of kChunk columns the running sums are loaded from acc, take the
// group's rows in registers and are stored back, so acc moves once per kRows rows rather than once per
// row (one row at a time ran at ~7 cycles per 16 floats, bound by acc's loads and stores), while x is
// still read as kRows sequential streams (a chunk's pass down all the rows instead: 337 vs 204 us for
// a 2048 x 512 float x on 1 thread, strided misses).
constexpr index_t kChunk = 32, kRows = 8;
template <class T>
PE_INLINE void accumulate_rows_body(double* acc, const T* x, index_t R, index_t ldx, index_t C) {
  for (index_t r0 = 0; r0 < R; r0 += kRows) {
    const index_t rn = std::min(kRows, R - r0);
    const T* xb = x + r0 * ldx;
    index_t j0 = 0;
    for (; j0 + kChunk <= C; j0 += kChunk) {
      double s[kChunk];
      for (index_t j = 0; j < kChunk; ++j) s[j] = acc[j0 + j];
      for (index_t r = 0; r < rn; ++r)
        for (index_t j = 0; j < kChunk; ++j) s[j] += static_cast<double>(xb[r * ldx + j0 + j]);
      for (index_t j = 0; j < kChunk; ++j) acc[j0 + j] = s[j];
    }
    for (index_t r = 0; r < rn && j0 < C; ++r)  // the last C % kChunk columns
      for (index_t j = j0; j < C; ++j) acc[j] += static_cast<double>(xb[r * ldx + j]);
  }
}
PE_ISA_VARIANTS(accumulate_rows, (double* acc, const T* x, index_t R, index_t ldx, index_t C),
                (acc, x, R, ldx, C))

// *s = the sum of x[0:n) (a part of a long row); out[r] = scale * the sum of row r of the (rows, n) block x
// (many short rows per call: sum(dim=-1) of 64-element rows paid a call per row).
#define PE_ROW_SUMS(suffix, target, fsum)                                                            \
  template <class T>                                                                                 \
  target void row_sum_##suffix(const T* x, index_t n, double* s) {                                   \
    if constexpr (std::is_same_v<T, float>) *s = fsum<false>(x, x, n);                               \
    else *s = lanes::dot_generic<false>(x, x, n);                                                    \
  }                                                                                                  \
  template <class T>                                                                                 \
  target void row_sums_##suffix(const T* x, index_t rows, index_t n, double scale, T* out) {         \
    for (index_t r = 0; r < rows; ++r) {                                                             \
      const T* row = x + r * n;                                                                      \
      double s;                                                                                      \
      if constexpr (std::is_same_v<T, float>) s = fsum<false>(row, row, n);                          \
      else s = lanes::dot_generic<false>(row, row, n);                                               \
      out[r] = static_cast<T>(s * scale);                                                            \
    }                                                                                                \
  }
PE_ROW_SUMS(generic, , lanes::dot_generic)
#if PE_X86
PE_ROW_SUMS(avx512, PE_TARGET_AVX512, lanes::dot_avx512)
PE_ROW_SUMS(avx2, PE_TARGET_AVX2, lanes::dot_avx2)
#endif
#undef PE_ROW_SUMS
template <class T>
auto row_sum_for_isa() {
#if PE_X86
  switch (isa()) {
    case Isa::avx512: return &row_sum_avx512<T>;
    case Isa::avx2: return &row_sum_avx2<T>;
    default: break;
  }
#endif
  return &row_sum_generic<T>;
}
template <class T>
auto row_sums_for_isa() {
#if PE_X86
  switch (isa()) {
    case Isa::avx512: return &row_sums_avx512<T>;
    case Isa::avx2: return &row_sums_avx2<T>;
    default: break;
  }
#endif
  return &row_sums_generic<T>;
}

// dst[0:n) += src[0:n), in T.
template <class T>
PE_INLINE void add_span_body(T* dst, const T* src, index_t n) {
  for (index_t i = 0; i < n; ++i) dst[i] += src[i];
}
PE_ISA_VARIANTS(add_span, (T * dst, const T* src, index_t n), (dst, src, n))

}  // namespace

// Row blocks for a column sum: fixed by the shape, never by the thread count. The thread count follows the
// machine's load (common.cpp usable_threads), so a sum whose parts were one per thread could change its last
// bits from one call to the next; with blocks of at least kBlockRows rows, at most kMaxBlocks of them, added
// in block order, every team size gives the same bits (tests/test_thread_determinism.py).
constexpr index_t kBlockRows = 256, kMaxBlocks = 16;
inline index_t row_blocks(index_t N) { return std::max<index_t>(1, std::min<index_t>(kMaxBlocks, N / kBlockRows)); }

// sum_rows, each sum multiplied by `scale` (in double) before it is rounded to T (also sum_dim's one-slice case).
template <class T>
static void sum_rows_scaled(const T* x, index_t N, index_t C, index_t ldx, double scale, T* out) {
  if (C <= 0) return;
  auto add = accumulate_rows_for_isa<T>();
  const int nt = threads_for(N * C);
  const size_t Cs = static_cast<size_t>(C);
  const index_t nb = row_blocks(N);

  if (nb == 1) {
    // Few rows: one block, each column summed in row order; threads (if any) split the columns.
    std::vector<double> acc(Cs, 0.0);  // allocated here: nothing may throw inside the region
    const int team = static_cast<int>(std::min<index_t>(nt, (C + 15) / 16));
    parallel_for(team, team, 1, [&](index_t t) {
      const index_t j0 = C * t / team, j1 = C * (t + 1) / team;
      add(acc.data() + j0, x + j0, N, ldx, j1 - j0);
    });
    for (size_t j = 0; j < Cs; ++j) out[j] = static_cast<T>(acc[j] * scale);
    return;
  }

  std::vector<double> part(static_cast<size_t>(nb) * Cs, 0.0);  // [block][C]
  parallel_for(nb, static_cast<int>(std::min<index_t>(nt, nb)), 1, [&](index_t b) {
    const index_t r0 = N * b / nb, r1 = N * (b + 1) / nb;
    add(part.data() + static_cast<size_t>(b) * Cs, x + r0 * ldx, r1 - r0, ldx, C);
  });
  for (size_t j = 0; j < Cs; ++j) {
    double s = 0.0;
    for (index_t b = 0; b < nb; ++b) s += part[static_cast<size_t>(b) * Cs + j];
    out[j] = static_cast<T>(s * scale);
  }
}

template <class T>
void sum_rows(const T* x, index_t N, index_t C, index_t ldx, T* out) {
  sum_rows_scaled(x, N, C, ldx, 1.0, out);
}

// Sum over the middle axis of (N, R, I). I == 1: rows over threads, or, with too few rows to share,
// each row cut into parts of kPart elements whose sums are added in order; I > 1: one (R, I) slice is
// sum_rows; more are units of (slice, block of kCols columns), each block's sums in a double buffer on
// the stack, its R rows added kRows at a time (accumulate_rows).
constexpr index_t kPart = index_t(1) << 15, kCols = 256;

template <class T>
void sum_dim(const T* x, index_t N, index_t R, index_t I, double scale, T* out) {
  if (N <= 0 || I <= 0) return;
  const int nt = threads_for(N * R * I);
  if (I == 1) {
    auto rs = row_sum_for_isa<T>();
    if (N >= 4 * static_cast<index_t>(nt)) {
      auto rss = row_sums_for_isa<T>();
      const index_t per = std::max<index_t>(1, std::min<index_t>(16, 4096 / std::max<index_t>(R, 1)));
      const index_t chunks = (N + per - 1) / per;
      parallel_for(chunks, nt, 1, [&](index_t c) {
        const index_t r0 = c * per;
        rss(x + r0 * R, std::min(per, N - r0), R, scale, out + r0);
      });
      return;
    }
    const index_t parts = std::max<index_t>(1, (R + kPart - 1) / kPart);
    std::vector<double> part(static_cast<size_t>(N * parts), 0.0);
    parallel_for(N * parts, nt, 1, [&](index_t u) {
      const index_t r = u / parts, j0 = u % parts * kPart;
      rs(x + r * R + j0, std::min(kPart, R - j0), &part[static_cast<size_t>(u)]);
    });
    for (index_t r = 0; r < N; ++r) {
      double s = 0.0;
      for (index_t p = 0; p < parts; ++p) s += part[static_cast<size_t>(r * parts + p)];
      out[r] = static_cast<T>(s * scale);
    }
    return;
  }
  if (N == 1) {
    sum_rows_scaled(x, R, I, I, scale, out);
    return;
  }
  auto add = accumulate_rows_for_isa<T>();
  const index_t nb = (I + kCols - 1) / kCols;
  parallel_for(N * nb, nt, 1, [&](index_t u) {
    const index_t n = u / nb, j0 = u % nb * kCols, jn = std::min(kCols, I - j0);
    double acc[kCols];
    for (index_t j = 0; j < jn; ++j) acc[j] = 0.0;
    add(acc, x + n * R * I + j0, R, I, jn);
    for (index_t j = 0; j < jn; ++j) out[n * I + j0 + j] = static_cast<T>(acc[j] * scale);
  });
}

// max / min along the middle axis of (N, R, I), with the index. A row (I == 1): its extreme by a vectorised
// pass (a NaN is the extreme: its presence found in the same pass), then the first position holding it (a
// scalar scan that stops there). Columns (I > 1): blocks of kCols columns, rows r in order, each column's
// running extreme and index updated by a select (vectorises). Rows or blocks over threads: every output is
// computed by one thread alone, so any team size gives the same result.
template <class T>
PE_INLINE void max_row_body(const T* x, index_t R, bool is_max, T* val, std::int64_t* idx) {
  T m = x[0];
  bool nan = false;
  if (is_max) {
#pragma omp simd reduction(max : m) reduction(| : nan)
    for (index_t r = 0; r < R; ++r) {
      m = x[r] > m ? x[r] : m;
      nan |= x[r] != x[r];
    }
  } else {
#pragma omp simd reduction(min : m) reduction(| : nan)
    for (index_t r = 0; r < R; ++r) {
      m = x[r] < m ? x[r] : m;
      nan |= x[r] != x[r];
    }
  }
  index_t r = 0;
  if (nan) {
    while (x[r] == x[r]) ++r;
  } else {
    while (x[r] != m) ++r;
  }
  *val = x[r];
  *idx = r;
}
PE_ISA_VARIANTS(max_row, (const T* x, index_t R, bool is_max, T* val, std::int64_t* idx), (x, R, is_max, val, idx))

template <class T>
PE_INLINE void max_cols_body(const T* x, index_t R, index_t I, index_t n, bool is_max, T* val, std::int64_t* idx) {
  T m[kCols];
  std::int64_t k[kCols];
  for (index_t j = 0; j < n; ++j) m[j] = x[j], k[j] = 0;
  for (index_t r = 1; r < R; ++r) {
    const T* xr = x + r * I;
#pragma omp simd
    for (index_t j = 0; j < n; ++j) {
      const T v = xr[j];
      // replace when v is beyond m, or v is the first NaN (m not NaN yet)
      const bool take = (is_max ? v > m[j] : v < m[j]) || (v != v && m[j] == m[j]);
      m[j] = take ? v : m[j];
      k[j] = take ? r : k[j];
    }
  }
  for (index_t j = 0; j < n; ++j) val[j] = m[j], idx[j] = k[j];
}
PE_ISA_VARIANTS(max_cols, (const T* x, index_t R, index_t I, index_t n, bool is_max, T* val, std::int64_t* idx),
                (x, R, I, n, is_max, val, idx))

template <class T>
void max_dim(const T* x, index_t N, index_t R, index_t I, bool is_max, T* vals, std::int64_t* idx) {
  if (N <= 0 || I <= 0 || R <= 0) return;
  const int nt = threads_for(N * R * I);
  if (I == 1) {
    auto k = max_row_for_isa<T>();
    const index_t per = std::max<index_t>(1, 4096 / R);  // rows per chunk: ~16 KiB of float x
    parallel_for(N, nt, per, [&](index_t r) { k(x + r * R, R, is_max, vals + r, idx + r); });
    return;
  }
  auto k = max_cols_for_isa<T>();
  const index_t nb = (I + kCols - 1) / kCols;
  parallel_for(N * nb, nt, 1, [&](index_t u) {
    const index_t n = u / nb, j0 = u % nb * kCols;
    k(x + n * R * I + j0, R, I, std::min(kCols, I - j0), is_max, vals + n * I + j0, idx + n * I + j0);
  });
}

template <class T>
void max_dim_backward(const T* g, const std::int64_t* idx, index_t N, index_t R, index_t I, T* dx) {
  if (N <= 0 || I <= 0 || R <= 0) return;
  const index_t slice = R * I;
  const index_t per = std::max<index_t>(1, 4096 / slice);
  parallel_for(N, threads_for(N * slice), per, [&](index_t n) {
    T* d = dx + n * slice;
    std::fill(d, d + slice, T(0));
    for (index_t i = 0; i < I; ++i) d[idx[n * I + i] * I + i] = g[n * I + i];
  });
}

// Memory-bound (two reads, one write per element): on 2 threads it runs at up to
// twice the bandwidth NumPy's single-threaded `+=` gets. Chunks of 64 KiB.
template <class T>
void add_into(T* dst, const T* src, index_t n) {
  auto add = add_span_for_isa<T>();
  const index_t chunk = (index_t(64) << 10) / static_cast<index_t>(sizeof(T));
  const index_t nchunks = (n + chunk - 1) / chunk;
  const int nt = static_cast<int>(std::min<index_t>(threads_for(n, index_t(1) << 16), nchunks));
  parallel_for(nchunks, nt, 1, [&](index_t c) {
    const index_t i0 = c * chunk;
    add(dst + i0, src + i0, std::min(chunk, n - i0));
  });
}

// dst[0:n) = src[0:n): rows up to 1 KiB by inline 64-byte moves (a memcpy call per 128-byte row of a
// (16, 128, 4, 32) transpose cost more than its copy: 1.3x PyTorch's time), longer ones by memcpy. Compiled
// per ISA (copy_rows below), so a move is one zmm / two ymm / four xmm loads and stores: the plain build's
// 16-byte moves left the transpose at 1.6x PyTorch's time.
template <class T>
PE_INLINE void copy_row(T* dst, const T* src, index_t n) {
  const size_t bytes = static_cast<size_t>(n) * sizeof(T);
  if (bytes > 1024) {
    std::memcpy(dst, src, bytes);
    return;
  }
  char* d = reinterpret_cast<char*>(dst);
  const char* s = reinterpret_cast<const char*>(src);
  size_t k = 0;
  for (; k + 64 <= bytes; k += 64) __builtin_memcpy(d + k, s + k, 64);
  for (; k + 16 <= bytes; k += 16) __builtin_memcpy(d + k, s + k, 16);
  for (; k < bytes; k += sizeof(T)) __builtin_memcpy(d + k, s + k, sizeof(T));
}

// Rows [r0, r1) of copy_into's index space (r0's offsets found by division), compiled once per SIMD level.
// The rows along the innermost outer dim run as a loop of fixed strides; the odometer over the dims above it
// steps once per run. Stepped once per row, it cost a third of a (16, 128, 4, 32) transpose's time (8192
// rows of 128 bytes: 93 vs 64 us on one thread, a standalone copy of this loop).
template <class T>
PE_INLINE void copy_rows_body(T* dst, const T* src, int outer, const index_t* shape, const index_t* ds,
                              const index_t* ss, index_t r0, index_t r1) {
  const index_t n = shape[outer], dn = ds[outer], sn = ss[outer];
  const bool unit = dn == 1 && sn == 1;
  // k rows, row q at out + q * dstep and in + q * sstep
  auto rows = [&](T* out, const T* in, index_t k, index_t dstep, index_t sstep) {
    if (unit) {
      for (index_t q = 0; q < k; ++q) copy_row(out + q * dstep, in + q * sstep, n);
    } else if (dn == 1 && sn == 0) {  // rows broadcast along the last dim
      for (index_t q = 0; q < k; ++q) std::fill(out + q * dstep, out + q * dstep + n, in[q * sstep]);
    } else {
      for (index_t q = 0; q < k; ++q)
        for (index_t j = 0; j < n; ++j) out[q * dstep + j * dn] = in[q * sstep + j * sn];
    }
  };
  if (outer == 0) {  // a single row
    rows(dst, src, r1 - r0, 0, 0);
    return;
  }
  index_t idx[kCopyMaxDims], od = 0, os = 0, rest = r0;
  for (int d = outer - 1; d >= 0; --d) {
    idx[d] = rest % shape[d];
    rest /= shape[d];
    od += idx[d] * ds[d];
    os += idx[d] * ss[d];
  }
  const int in = outer - 1;  // the innermost outer dim: runs of its rows
  const index_t m = shape[in], dstep = ds[in], sstep = ss[in];
  for (index_t r = r0; r < r1;) {
    const index_t k = std::min(m - idx[in], r1 - r);
    rows(dst + od, src + os, k, dstep, sstep);
    r += k;
    idx[in] += k;
    od += k * dstep;
    os += k * sstep;
    if (idx[in] < m) break;  // (only at r1)
    idx[in] = 0;
    od -= m * dstep;
    os -= m * sstep;
    for (int d = in - 1; d >= 0; --d) {  // the odometer over the dims above
      od += ds[d];
      os += ss[d];
      if (++idx[d] < shape[d]) break;
      od -= shape[d] * ds[d];
      os -= shape[d] * ss[d];
      idx[d] = 0;
    }
  }
}
PE_ISA_VARIANTS(copy_rows, (T * dst, const T* src, int outer, const index_t* shape, const index_t* ds,
                            const index_t* ss, index_t r0, index_t r1),
                (dst, src, outer, shape, ds, ss, r0, r1))

// Rows of the last dim over threads, in chunks of about 16 KiB. A chunk finds its first row's offsets from
// the row's index, then steps an odometer over the other dims: a division per dim and row cost as much as
// the copy itself for short rows (a (16, 4, 128, 32) transpose: 8192 rows of 128 bytes, 2x slower).
template <class T>
void copy_into(T* dst, const T* src, int ndim, const index_t* shape, const index_t* ds, const index_t* ss) {
  if (ndim <= 0) {
    *dst = *src;
    return;
  }
  // A broadcast scalar (every source stride 0, as the gradient of a sum) into a contiguous destination: one
  // threaded fill instead of rows of element copies.
  bool scalar = true, contiguous = true;
  index_t total = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    scalar = scalar && (ss[d] == 0 || shape[d] == 1);
    contiguous = contiguous && (ds[d] == total || shape[d] == 1);
    total *= shape[d];
  }
  if (scalar && contiguous) {
    if (total <= 0) return;
    const T value = *src;
    const index_t block = index_t(64) << 10;
    const index_t blocks = (total + block - 1) / block;
    const int nt = static_cast<int>(std::min<index_t>(threads_for(total, index_t(1) << 16), blocks));
    parallel_for(blocks, nt, 1, [&](index_t b) {
      std::fill(dst + b * block, dst + std::min(total, (b + 1) * block), value);
    });
    return;
  }
  const int outer = ndim - 1;
  const index_t n = shape[outer];
  index_t rows = 1;
  for (int d = 0; d < outer; ++d) rows *= shape[d];
  if (rows <= 0 || n <= 0) return;
  const index_t per = std::max<index_t>(1, (index_t(16) << 10) / static_cast<index_t>(sizeof(T) * n));
  const index_t chunks = (rows + per - 1) / per;
  const int nt = static_cast<int>(std::min<index_t>(threads_for(rows * n, index_t(1) << 16), chunks));
  auto copy = copy_rows_for_isa<T>();
  parallel_for(chunks, nt, 1, [&](index_t c) {
    copy(dst, src, outer, shape, ds, ss, c * per, std::min(rows, (c + 1) * per));
  });
}

template void sum_rows<float>(const float*, index_t, index_t, index_t, float*);
template void sum_dim<float>(const float*, index_t, index_t, index_t, double, float*);
template void sum_dim<double>(const double*, index_t, index_t, index_t, double, double*);
template void sum_rows<double>(const double*, index_t, index_t, index_t, double*);
template void add_into<float>(float*, const float*, index_t);
#define PE_COPY(T) template void copy_into<T>(T*, const T*, int, const index_t*, const index_t*, const index_t*);
PE_COPY(uint8_t)
PE_COPY(uint16_t)
PE_COPY(uint32_t)
PE_COPY(uint64_t)
#undef PE_COPY
template void add_into<double>(double*, const double*, index_t);
#define PE_MAX(T)                                                                                        \
  template void max_dim<T>(const T*, index_t, index_t, index_t, bool, T*, std::int64_t*);                \
  template void max_dim_backward<T>(const T*, const std::int64_t*, index_t, index_t, index_t, T*);
PE_MAX(float)
PE_MAX(double)
#undef PE_MAX

}  // namespace cpu
}  // namespace pe
