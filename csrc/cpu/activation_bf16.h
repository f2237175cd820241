// GELU on bfloat16 arrays (implementation: activation_bf16.cpp; specification:
// pyengine/backend/reference/gemm_bf16.py, gelu_bf16_forward/backward).
//
// The MLP of a model under autocast feeds GELU a bfloat16 tensor (the output of a bfloat16 linear) and hands
// its result to another bfloat16 linear. Through float32 that costs four passes over memory besides GELU's
// own (widen the input, GELU, round the output; the same in backward). These kernels widen a span of the
// input into a float32 buffer of their own (cache-sized), run the float32 GELU kernels (activation.h) on it and
// round the result to bfloat16 once, so the values are bit for bit those of the float32 path (widening is
// exact, the rounding is the one f32_to_bf16 does) and the memory traffic is that of the 2-byte arrays only.
#pragma once
#include "cpu/gemm_bf16.h"

namespace pe {

// x, y: (n,) bfloat16, contiguous      y = round(GELU(x))        (tanh_approx: GELU's tanh form)
void gelu_bf16_forward(const bf16_t* x, bf16_t* y, index_t n, bool tanh_approx);
// x, dy, dx: (n,) bfloat16              dx = round(dy * GELU'(x))  (the product in float32)
void gelu_bf16_backward(const bf16_t* x, const bf16_t* dy, bf16_t* dx, index_t n, bool tanh_approx);

}  // namespace pe
