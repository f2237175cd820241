// Mask kernels: masked_fill (the forward and, with value 0, the backward of Tensor.masked_fill) and
// dropout (mask and scale fused). float and double; masks are bytes (NumPy bool). Raw pointers,
// contiguous memory; the bindings (csrc/bind_mask.cpp) check shapes and dtypes.
// Specification: pyengine/backend/reference/mask.py.
#pragma once
#include <cstdint>

#include "common.h"

namespace pe {
namespace cpu {

// x, out: (O, I)   mask: (I,), the same for each of the O rows (a mask broadcast over leading dims)
// out[o, i] = mask[i] ? value : x[o, i]        (out may be x)
template <class T>
void masked_fill(const T* x, const uint8_t* mask, T value, T* out, index_t O, index_t I);

// x, y: (n,)   u: (n,) uniform draws in [0, 1)   keep: (n,) written
// keep = u >= p,  y = x * (keep ? scale : 0)   (x * 0: a NaN or inf stays NaN, as x * mask * scale)
template <class T>
void dropout_forward(const T* x, const float* u, float p, T scale, T* y, uint8_t* keep, index_t n);

// g, dx: (n,)   keep: (n,)   dx = g * (keep ? scale : 0)
template <class T>
void dropout_backward(const T* g, const uint8_t* keep, T scale, T* dx, index_t n);

}  // namespace cpu
}  // namespace pe
