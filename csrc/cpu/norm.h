// LayerNorm over the rows of an (N, C) array, float and double. Raw pointers,
// contiguous memory; the bindings (csrc/bind_norm.cpp) check shapes and dtypes.
// Specification: pyengine/backend/reference/norm.py.
#pragma once
#include "common.h"

namespace pe {
namespace cpu {

// x, y: (N, C)   weight, bias: (C,) or nullptr   mean, rstd: (N,)
// y = (x - mean) rstd weight + bias, rstd = 1 / sqrt(var + eps) (biased var);
// mean and rstd are saved for backward.
template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, index_t N,
                        index_t C, double eps);

// dy, x, dx: (N, C)   weight: (C,) or nullptr   mean, rstd: (N,)
// dweight: (C,) or nullptr (not computed)   dbias: (C,) (always computed)
// xhat = (x - mean) rstd, g = dy weight:
//   dx = rstd (g - mean_C(g) - xhat mean_C(g xhat)),  dweight = sum_N(dy xhat),  dbias = sum_N(dy)
template <class T>
void layer_norm_backward(const T* dy, const T* x, const T* weight, const T* mean, const T* rstd, T* dx,
                         T* dweight, T* dbias, index_t N, index_t C);

}  // namespace cpu
}  // namespace pe
