// GELU on bfloat16 arrays through cache-sized float32 spans (see activation_bf16.h).
#include "cpu/activation_bf16.h"

#include "cpu/activation.h"
#include "cpu/simd.h"

#include <algorithm>

namespace pe {

namespace {

// Elements per span: two or three float32 buffers of this size stay in L1/L2 (48 KiB at most).
constexpr index_t kBf16Span = 4096;

// body(i0, len) over spans of kBf16Span, spread over threads (each span is independent: the results do not
// depend on the thread count). GELU is ~40 flops an element: weighted as activation.cpp weights it.
template <class F>
void for_bf16_spans(index_t n, F&& body) {
  const index_t spans = (n + kBf16Span - 1) / kBf16Span;
  const int nt = threads_for(n * 4);
  parallel_for(spans, nt, 1, [&](index_t s) {
    const index_t i0 = s * kBf16Span;
    body(i0, std::min(kBf16Span, n - i0));
  });
}

}  // namespace

void gelu_bf16_forward(const bf16_t* x, bf16_t* y, index_t n, bool tanh_approx) {
  for_bf16_spans(n, [&](index_t i0, index_t len) {
    alignas(64) float xf[kBf16Span];
    alignas(64) float yf[kBf16Span];
    bf16_to_f32(x + i0, xf, len);  // a span is below the conversions' threading grain: this thread
    cpu::gelu_forward<float>(xf, yf, len, tanh_approx);
    f32_to_bf16(yf, y + i0, len);
  });
}

void gelu_bf16_backward(const bf16_t* x, const bf16_t* dy, bf16_t* dx, index_t n, bool tanh_approx) {
  for_bf16_spans(n, [&](index_t i0, index_t len) {
    alignas(64) float xf[kBf16Span];
    alignas(64) float gf[kBf16Span];
    alignas(64) float df[kBf16Span];
    bf16_to_f32(x + i0, xf, len);
    bf16_to_f32(dy + i0, gf, len);
    cpu::gelu_backward<float>(xf, gf, df, len, tanh_approx);
    f32_to_bf16(df, dx + i0, len);
  });
}

}  // namespace pe
