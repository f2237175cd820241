// Depthwise convolution (one input and one output channel per group, C == G == O): direct SIMD kernels,
// picked by conv.cpp's dispatch before its per-plane fallback loops. Each returns false, having touched
// nothing, when it does not take the case (empty sizes, a plane too large for its buffer, and for the input
// gradient a non-finite weight, whose 0 * w terms the fallback keeps as the twin does); the caller then runs
// the fallback. Specification: pyengine/backend/reference/conv.py (conv2d_* with groups == C).
#pragma once
#include "cpu/conv.h"

namespace pe {
namespace cpu {

template <class T>
bool depthwise_forward(const T* x, const T* w, const T* b, T* y, const ConvShape& s);
template <class T>
bool depthwise_backward_input(const T* dy, const T* w, T* dx, const ConvShape& s);
// Also takes one input channel per group with several outputs each (G == C, O = G Og: a first layer's
// C = 1): dw[o] = sum over the batch of dy[n, o] correlated with x[n, o / Og].
template <class T>
bool depthwise_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s);

// The whole backward of a depthwise convolution (C == G == O >= 8, KH KW <= 25) in one sweep over dy: any of
// dx (as depthwise_backward_input), dw (as depthwise_backward_weight, the same bits) and db (O: dy summed per
// channel) may be null. Same contract: false (nothing touched) where it does not take the case.
template <class T>
bool depthwise_backward(const T* dy, const T* w, const T* x, T* dx, T* dw, T* db, const ConvShape& s);

// Dense (G == 1) convolutions of few input channels (C KH KW <= 400, an image's padded planes in L2): direct
// register-tiled kernels. Same contract: false (nothing touched) where they do not take the case.
template <class T>
bool dense_direct_forward(const T* x, const T* w, const T* b, T* y, const ConvShape& s);
template <class T>
bool dense_direct_backward_input(const T* dy, const T* w, T* dx, const ConvShape& s);

// The dense weight gradient of a 3 x 3 or 5 x 5 (AVX-512), stride-1 or 2, undilated, one-group convolution with
// few channels (min(C, O) <= 32; stride 2 below 16 input channels): x copied into K column-shifted padded copies
// and dy into whole lines a chunk of images at a time, register tiles of output channels x K K taps with vectors
// along the output row. dense_wgrad_takes says whether it takes the shape (and the CPU: AVX2 or AVX-512); the
// caller must also check that x and dy are finite (lanes past the row's end add 0 x, and the twin never forms
// those products).
bool dense_wgrad_takes(const ConvShape& s, int itemsize);
// Tuning and A/B: the direct weight gradient on (default) or off (the GEMM paths take its shapes).
void set_direct_wgrad(bool on);
bool direct_wgrad();
template <class T>
void dense_direct_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s);

// Bytes the direct kernels above may allocate for this shape (per-thread padded planes, weight copies), at
// the current thread count; 0 where none of them takes it.
index_t direct_workspace_bytes(const ConvShape& s, int itemsize);

}  // namespace cpu
}  // namespace pe
