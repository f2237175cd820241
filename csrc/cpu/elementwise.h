// Elementwise kernels: the generic ops (add, mul, exp, tanh, where, ...) and their fused backward
// rules, over N-d operands with NumPy broadcasting and arbitrary element strides.
// Specification: pyengine/backend/reference/elementwise.py (each op is one NumPy expression there).
//
// A call is one op (Op below), an output and up to three inputs, all seen in the output's shape:
// a broadcast input has stride 0 along the broadcast axes, a Python number is an input of one element
// with stride 0 everywhere. The binding (csrc/bind_elementwise.cpp) builds that Layout, merges axes
// that are contiguous for every operand (a contiguous same-shape call becomes one flat row), checks
// every size, and hands the kernel typed pointers. float and double; comparisons write bool.
#pragma once
#include "common.h"

namespace pe {
namespace cpu {
namespace ew {

// The op codes, shared with pyengine/backend/cpu/elementwise.py (OPS). Arity: inputs read.
// In the formulas: a, b, c the inputs, p the call's scalar parameter, y the op's forward output.
enum class Op : int {
  // binary (a, b) -> T
  add = 0, sub, mul, div, pow, maximum, minimum,
  // comparisons (a, b) -> bool
  eq, ne, lt, le, gt, ge,
  // where(c: bool, a, b) -> T
  where,
  // unary (a) -> T
  neg, exp, log, sqrt, rsqrt, abs, tanh, sigmoid, pow_scalar /* a^p */,
  // backward rules, g the incoming gradient
  exp_grad,        // (y, g)     g y
  log_grad,        // (x, g)     g / x
  sqrt_grad,       // (y, g)     g / (2 y)
  rsqrt_grad,      // (y, g)     -0.5 g y^3
  abs_grad,        // (x, g)     g sign(x)
  tanh_grad,       // (y, g)     g (1 - y^2)
  sigmoid_grad,    // (y, g)     g y (1 - y)
  pow_scalar_grad, // (x, g)     g p x^(p-1)
  div_grad_b,      // (g, a, b)  -g a / b^2
  pow_grad_a,      // (g, a, b)  g b a^(b-1)
  pow_grad_b,      // (g, y, a)  g y log(a)
  max_grad_a,      // (g, a, b)  g [a > b] + g/2 [a == b]
  max_grad_b,      // (g, a, b)  g [a < b] + g/2 [a == b]
  min_grad_a,      // (g, a, b)  g [a < b] + g/2 [a == b]
  min_grad_b,      // (g, a, b)  g [a > b] + g/2 [a == b]
  mask_keep,       // (c, g)     c ? g : 0      (where's gradient for its a)
  mask_drop,       // (c, g)     c ? 0 : g      (... for its b)
  count_
};

constexpr int kMaxDims = 16;
constexpr int kMaxOperands = 4;  // out, then inputs

// Operand k (0 = out, 1.. = inputs) is at base[k] + sum_d i[d] * stride[k][d] (in elements), for
// 0 <= i[d] < shape[d]. ndim >= 1; n = prod(shape) > 0.
struct Layout {
  int ndim;
  index_t n;
  index_t shape[kMaxDims];
  index_t stride[kMaxOperands][kMaxDims];
};

int arity(Op op);
bool writes_bool(Op op);   // comparisons
bool reads_bool(Op op);    // where, mask_keep, mask_drop: input 1 (the first) is bool

// out = op(in[0], in[1], in[2]; p) over the layout; T = float or double. Inputs an op does not read
// may be null. Runs on the threads pe::threads_for gives the work, at the SIMD level pe::isa().
template <class T>
void run(Op op, const Layout& layout, void* out, const void* const in[3], double p);

}  // namespace ew
}  // namespace cpu
}  // namespace pe
