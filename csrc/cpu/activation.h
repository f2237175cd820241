// Activation kernels: ReLU, GELU (elementwise, any shape seen as flat n), and
// softmax / log-softmax along C of an (N, C, I) array (I = 1: over rows). float and double.
// Raw pointers, contiguous memory; the bindings (csrc/bind_activation.cpp)
// check shapes and dtypes. Specification: pyengine/backend/reference/activation.py.
#pragma once
#include "common.h"

namespace pe {
namespace cpu {

// x, y: (n,)                               y = max(x, 0)
template <class T> void relu_forward(const T* x, T* y, index_t n);
// x, dy, dx: (n,)                          dx = dy * (x > 0)
template <class T> void relu_backward(const T* x, const T* dy, T* dx, index_t n);

// x, y: (n,)   y = x Phi(x) ('none'), or 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))
template <class T> void gelu_forward(const T* x, T* y, index_t n, bool tanh_approx);
// x, dy, dx: (n,)                          dx = dy * GELU'(x)
template <class T> void gelu_backward(const T* x, const T* dy, T* dx, index_t n, bool tanh_approx);

// x, y: (N, C, I)   y = exp(x - lse(x)) along C, or x - lse(x) with `log` (I = 1: rows)
template <class T> void softmax_forward(const T* x, T* y, index_t N, index_t C, index_t I, bool log);
// y, dy, dx: (N, C, I)   along C, softmax: dx = y (dy - sum(dy y));  log: dx = dy - exp(y) sum(dy)
template <class T>
void softmax_backward(const T* y, const T* dy, T* dx, index_t N, index_t C, index_t I, bool log);

}  // namespace cpu
}  // namespace pe
