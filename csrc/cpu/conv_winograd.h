// Internal to the conv family: Winograd F(4x4, 3x3) for 3x3 convolutions of stride 1 and dilation 1
// (conv_winograd.cpp). conv.cpp asks winograd_applies() and then runs these instead of its implicit GEMM.
#pragma once
#include "cpu/conv.h"

namespace pe {
namespace cpu {

// True for a 3x3, stride 1, dilation 1, one-group convolution with padding <= 2 whose output size is
// the full one (Ho = H + 2 ph - 2, Wo likewise), and with at least winograd_min_channels() input and
// output channels (below that the transforms cost more than the GEMM saves).
bool winograd_applies(const ConvShape& s);
// y = conv(x, w) + b (b may be null).
template <class T>
void winograd_forward(const T* x, const T* w, const T* b, T* y, const ConvShape& s);
// dx: the convolution of dy, padded by 2 - p, with the rotated, transposed filter.
template <class T>
void winograd_backward_input(const T* dy, const T* w, T* dx, const ConvShape& s);
// Bytes winograd_forward / winograd_backward_input allocate (transformed filter + per-chunk buffers).
index_t winograd_workspace_bytes(const ConvShape& s, int itemsize);

// The channel threshold (settable for tests and tuning: 1 sends every eligible shape through Winograd,
// a huge value turns it off).
void set_winograd_min_channels(index_t c);
index_t winograd_min_channels();

}  // namespace cpu
}  // namespace pe
