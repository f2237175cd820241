// Internal to the conv family: Winograd F(4x4, 3x3) for 3x3 convolutions of stride 1 and dilation 1
// (conv_winograd.cpp). conv.cpp asks winograd_applies() and then runs these instead of its implicit GEMM.
#pragma once
#include "cpu/conv.h"

namespace pe {
namespace cpu {

// True for a 3x3, stride 1, dilation 1, one-group convolution with padding <= 2 whose output size is
// the full one (Ho = H + 2 ph - 2, Wo likewise), with at least winograd_min_channels() input and output
// channels (below that the transforms cost more than the GEMM saves) and at least winograd_min_tiles()
// 4x4 tiles in the batch (the GEMMs run 32 tiles side by side on AVX-512: a panel of fewer tiles costs as
// much; ResNet's 7x7 layers at batch 8 have 32, padded to 8x8: 3x fewer products than the implicit GEMM).
bool winograd_applies(const ConvShape& s);
// y = conv(x, w) + b (b may be null). Returns false, with y unspecified, when x or w holds a NaN or inf
// (the transforms check every value they read, which is every value: no separate pass over the operands):
// Winograd's transforms would spread it over whole tiles, so the caller then computes y another way.
template <class T>
bool winograd_forward(const T* x, const T* w, const T* b, T* y, const ConvShape& s);
// dx: the convolution of dy, padded by 2 - p, with the rotated, transposed filter. Returns false (dx
// unspecified) when dy or w holds a NaN or inf, as winograd_forward.
template <class T>
bool winograd_backward_input(const T* dy, const T* w, T* dx, const ConvShape& s);
// dw (O, C, 3, 3): sum over the tiles of the batch of the transformed gradient tiles times the input tiles,
// 36 GEMMs in chunks of tiles (see conv_winograd.cpp); the same bits on any number of threads.
template <class T>
void winograd_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s);
// Bytes winograd_forward / winograd_backward_input / winograd_backward_weight allocate (transformed filter + per-chunk buffers).
index_t winograd_workspace_bytes(const ConvShape& s, int itemsize);

// The thresholds (defaults 32 channels, 32 tiles), settable for tests and tuning: (1, 1) sends every
// eligible shape through Winograd, a huge value turns it off.
void set_winograd_min(index_t channels, index_t tiles);
index_t winograd_min_channels();
index_t winograd_min_tiles();

}  // namespace cpu
}  // namespace pe
