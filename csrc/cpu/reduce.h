// Sums, float and double: column sums of an (N, C) array and the in-place sum of two arrays. Raw
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

// dst[i] += src[i], i < n: gradient accumulation (a leaf's .grad += a new
// contribution). dst and src are either the same array or disjoint.
template <class T>
void add_into(T* dst, const T* src, index_t n);

}  // namespace cpu
}  // namespace pe
