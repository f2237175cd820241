// Sums, float and double: column sums of an (N, C) array, sums over the middle axis of (N, R, I) (sum and
// mean over any adjacent dims), the in-place sum of two arrays and a strided copy. Raw
// pointers; the bindings (csrc/bind_reduce.cpp) check shapes and dtypes.
// Specification: pyengine/backend/reference/reduce.py.
#pragma once
#include <cstdint>

#include "common.h"

namespace pe {
namespace cpu {

// x: (N, C), row stride ldx >= C (elements), unit column stride   out: (C,)
// out[j] = sum_n x[n*ldx + j]: the bias gradient of a linear layer
// (db = sum over rows of dy) and the backward of a broadcast over leading axes.
template <class T>
void sum_rows(const T* x, index_t N, index_t C, index_t ldx, T* out);

// x: (N, R, I) C-contiguous   out: (N, I)
// out[n, i] = scale * sum_r x[n, r, i], accumulated in double (scale = 1 / R: the mean).
template <class T>
void sum_dim(const T* x, index_t N, index_t R, index_t I, double scale, T* out);

// x: (N, R, I) C-contiguous   vals, idx: (N, I)
// vals[n, i] = the largest (is_max) or smallest x[n, r, i] over r, idx[n, i] = its first r; a NaN wins over
// any number (the first NaN), as torch.max / np.argmax. R >= 1.
template <class T>
void max_dim(const T* x, index_t N, index_t R, index_t I, bool is_max, T* vals, std::int64_t* idx);

// g, idx: (N, I), 0 <= idx < R (checked by the caller)   dx: (N, R, I)
// dx[n, r, i] = g[n, i] where r == idx[n, i], else 0: max_dim's backward.
template <class T>
void max_dim_backward(const T* g, const std::int64_t* idx, index_t N, index_t R, index_t I, T* dx);

// dst = src over an n-D index space (ndim <= kCopyMaxDims): shape[d], strides ds[d] / ss[d] in elements
// (non-negative); dst does not overlap src. Rows of the last dim are memcpy'd when both are unit-stride.
// T is the element size only (uint8_t ... uint64_t): a copy does not look at values. The strided copies
// of views: contiguous() of a transposed array, split's gradient pieces into their slices of one array.
constexpr int kCopyMaxDims = 32;
template <class T>
void copy_into(T* dst, const T* src, int ndim, const index_t* shape, const index_t* ds, const index_t* ss);

// dst[i] += src[i], i < n: gradient accumulation (a leaf's .grad += a new
// contribution). dst and src are either the same array or disjoint.
template <class T>
void add_into(T* dst, const T* src, index_t n);

}  // namespace cpu
}  // namespace pe
