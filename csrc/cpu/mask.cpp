// Mask kernels: masked_fill and dropout (see mask.h).
//
// Memory-bound selects: one pass over the data, vectorised per ISA (PE_ISA_VARIANTS: the byte mask is
// widened and blended), spans of about kSpan elements over threads. masked_fill's mask is one row of I
// bytes shared by all O rows (minGPT's (1, 1, T, T) causal mask against (B, H, T, T) scores), so it stays
// in cache while the rows stream through; short rows are grouped into spans of several rows.
#include "cpu/mask.h"

#include <algorithm>

#include "cpu/simd.h"

namespace pe {
namespace cpu {
namespace {

constexpr index_t kSpan = 16384;

template <class T>
PE_INLINE void fill_span_body(const T* x, const uint8_t* mask, T value, T* out, index_t n) {
  for (index_t i = 0; i < n; ++i) out[i] = mask[i] ? value : x[i];
}
PE_ISA_VARIANTS(fill_span, (const T* x, const uint8_t* mask, T value, T* out, index_t n), (x, mask, value, out, n))

template <class T>
PE_INLINE void dropout_fwd_span_body(const T* x, const float* u, float p, T scale, T* y, uint8_t* keep, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    const bool k = u[i] >= p;
    keep[i] = k;
    y[i] = x[i] * (k ? scale : T(0));
  }
}
PE_ISA_VARIANTS(dropout_fwd_span, (const T* x, const float* u, float p, T scale, T* y, uint8_t* keep, index_t n),
                (x, u, p, scale, y, keep, n))

template <class T>
PE_INLINE void dropout_bwd_span_body(const T* g, const uint8_t* keep, T scale, T* dx, index_t n) {
  for (index_t i = 0; i < n; ++i) dx[i] = g[i] * (keep[i] ? scale : T(0));
}
PE_ISA_VARIANTS(dropout_bwd_span, (const T* g, const uint8_t* keep, T scale, T* dx, index_t n),
                (g, keep, scale, dx, n))

// f(i0, len) over [0, n) in spans of kSpan, on threads when n is large.
template <class F>
void for_spans(index_t n, F&& f) {
  const index_t spans = (n + kSpan - 1) / kSpan;
  const int nt = static_cast<int>(std::min<index_t>(threads_for(n, index_t(1) << 16), spans));
  parallel_for(spans, nt, 1, [&](index_t s) { f(s * kSpan, std::min(kSpan, n - s * kSpan)); });
}

}  // namespace

template <class T>
void masked_fill(const T* x, const uint8_t* mask, T value, T* out, index_t O, index_t I) {
  if (O <= 0 || I <= 0) return;
  auto k = fill_span_for_isa<T>();
  if (I >= kSpan) {  // long rows: units of (row, span of columns)
    const index_t per_row = (I + kSpan - 1) / kSpan;
    const int nt = static_cast<int>(std::min<index_t>(threads_for(O * I, index_t(1) << 16), O * per_row));
    parallel_for(O * per_row, nt, 1, [&](index_t u) {
      const index_t o = u / per_row, j0 = u % per_row * kSpan;
      k(x + o * I + j0, mask + j0, value, out + o * I + j0, std::min(kSpan, I - j0));
    });
    return;
  }
  const index_t rows = std::max<index_t>(1, kSpan / I);  // short rows: several per unit
  const index_t units = (O + rows - 1) / rows;
  const int nt = static_cast<int>(std::min<index_t>(threads_for(O * I, index_t(1) << 16), units));
  parallel_for(units, nt, 1, [&](index_t u) {
    for (index_t o = u * rows; o < std::min(O, (u + 1) * rows); ++o) k(x + o * I, mask, value, out + o * I, I);
  });
}

template <class T>
void dropout_forward(const T* x, const float* u, float p, T scale, T* y, uint8_t* keep, index_t n) {
  auto k = dropout_fwd_span_for_isa<T>();
  for_spans(n, [&](index_t i, index_t len) { k(x + i, u + i, p, scale, y + i, keep + i, len); });
}

template <class T>
void dropout_backward(const T* g, const uint8_t* keep, T scale, T* dx, index_t n) {
  auto k = dropout_bwd_span_for_isa<T>();
  for_spans(n, [&](index_t i, index_t len) { k(g + i, keep + i, scale, dx + i, len); });
}

#define PE_INSTANTIATE(T)                                                                      \
  template void masked_fill<T>(const T*, const uint8_t*, T, T*, index_t, index_t);             \
  template void dropout_forward<T>(const T*, const float*, float, T, T*, uint8_t*, index_t);   \
  template void dropout_backward<T>(const T*, const uint8_t*, T, T*, index_t);
PE_INSTANTIATE(float)
PE_INSTANTIATE(double)
#undef PE_INSTANTIATE

}  // namespace cpu
}  // namespace pe
