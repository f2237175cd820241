// Sums, float and double: column sums of an (N, C) array, sums over the middle axis of (N, R, I) (sum and
// mean over any adjacent dims), and the in-place sum of two arrays. Raw
// pointers; the bindings (csrc/bind_reduce.cpp) check shapes and dtypes.
// Specification: pyengine/backend/reference/reduce.py.
#pragma once
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

// dst[i] += src[i], i < n: gradient accumulation (a leaf's .grad += a new
// contribution). dst and src are either the same array or disjoint.
template <class T>
void add_into(T* dst, const T* src, index_t n);

}  // namespace cpu
}  // namespace pe
