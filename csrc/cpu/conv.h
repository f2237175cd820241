// The conv family: 2-D convolution (forward, input gradient, weight gradient), max and average pooling,
// batch norm; float and double, NCHW, raw pointers to C-contiguous memory. The bindings
// (csrc/bind_conv.cpp) check every shape, size and dtype. Specification: pyengine/backend/reference/conv.py.
#pragma once
#include "common.h"

namespace pe {
namespace cpu {

// x (N, C, H, W), w (O, C / G, KH, KW), y (N, O, Ho, Wo). Output position (p, q) of kernel offset (i, j)
// reads x[p sh - ph + i dh, q sw - pw + j dw] (zero outside x). Ho, Wo are given (any value >= 0).
struct ConvShape {
  index_t N, C, H, W, O, KH, KW, Ho, Wo, sh, sw, ph, pw, dh, dw, G;
};

// Extra memory the convolution kernels may allocate (bytes): bounded column tiles, not the batch's im2col.
index_t conv_workspace_bytes(const ConvShape& s, int itemsize);
// The column tile (values) the kernels pack at a time; settable for tuning.
void set_conv_tile(index_t elems);
index_t conv_tile();

template <class T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const ConvShape& s);  // b may be null
template <class T>
void conv2d_backward_input(const T* dy, const T* w, T* dx, const ConvShape& s);
template <class T>
void conv2d_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s);
// The three gradients in one sweep over dy where a fused kernel takes the shape (depthwise: any of dx, dw,
// db may be null, db (O)); false, nothing touched, elsewhere (the caller then runs the passes apart).
template <class T>
bool conv2d_backward_fused(const T* dy, const T* w, const T* x, T* dx, T* dw, T* db, const ConvShape& s);

// Pooling over planes: P = N * C planes of (H, W) -> (Ho, Wo).
struct PoolShape {
  index_t P, H, W, Ho, Wo, KH, KW, sh, sw, ph, pw, dh, dw;
};
// y = window max (padding is -inf; the first of equal maxima, a NaN wins), idx = its h W + w.
template <class T>
void max_pool2d_forward(const T* x, T* y, std::int64_t* idx, const PoolShape& s);
// dx (zeroed here) += dy at idx; indices outside [0, H W) are skipped (the binding's caller made them).
template <class T>
void max_pool2d_backward(const T* dy, const std::int64_t* idx, T* dx, const PoolShape& s);
// y = window sum / divisor (PyTorch's rule: windows clipped to the padded input; count_include_pad=false
// counts input positions only; divisor_override > 0 replaces it).
template <class T>
void avg_pool2d_forward(const T* x, T* y, const PoolShape& s, bool count_include_pad, index_t divisor_override);
template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const PoolShape& s, bool count_include_pad, index_t divisor_override);

// x, y: (N, C, L). stats == false: mean, var (C,) are inputs; true: they are computed (var biased, in double).
// y = (x - mean) / sqrt(var + eps) * weight + bias (weight, bias may be null).
template <class T>
void batch_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* var, index_t N, index_t C,
                        index_t L, double eps, bool stats);
// dx, dweight (or null), dbias; training: mean and var were x's own.
template <class T>
void batch_norm_backward(const T* dy, const T* x, const T* weight, const T* mean, const T* var, T* dx, T* dweight,
                         T* dbias, index_t N, index_t C, index_t L, double eps, bool training);

}  // namespace cpu
}  // namespace pe
