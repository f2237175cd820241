// Internal to the conv family: the weight gradient of a dense (one-group, not pointwise) convolution on the
// GEMM micro-kernel, with the columns packed straight into its B micro-panels (conv_wgrad.cpp).
#pragma once
#include "cpu/conv.h"

namespace pe {
namespace cpu {

bool packed_wgrad_applies(const ConvShape& s);
// dw (O, C KH KW) = sum_n dy[n] (O, L) @ cols(x[n])^T (L, C KH KW).
template <class T>
void packed_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s);
// Bytes it allocates: per thread a dW accumulator (but the first thread's) and its A and B panels.
index_t packed_wgrad_workspace_bytes(const ConvShape& s, int itemsize);

}  // namespace cpu
}  // namespace pe
