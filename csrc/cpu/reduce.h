// Reductions over the leading axis of an (N, C) array, float and double. Raw
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

}  // namespace cpu
}  // namespace pe
