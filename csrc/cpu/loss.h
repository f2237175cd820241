// Loss kernels: fused softmax + cross-entropy, MSE, binary cross-entropy (plain and with logits).
// Specification: pyengine/backend/reference/loss.py. Pointers are contiguous; the binding has checked
// dtypes, shapes and target ranges. `T` is float or double; reductions accumulate in double.
#pragma once
#include <cstdint>

#include "common.h"

namespace pe {

// logits: (N, C)  targets: (N,)  ->  loss: (N,)  lse: (N,)
//   lse_i  = log sum_j exp(x_ij)
//   loss_i = lse_i - (1 - eps) x_{i,t_i} - (eps / C) sum_j x_ij      (0 where t_i == ignore_index)
template <class T>
void cross_entropy_forward(const T* logits, const std::int64_t* targets, index_t n, index_t c,
                           std::int64_t ignore_index, double label_smoothing, T* loss, T* lse);

// logits: (N, C)  targets: (N,)  lse: (N,)  dloss: (N,) or one value (dloss_stride 0)  ->  dlogits: (N, C)
//   dlogits_ij = dloss_i * (exp(x_ij - lse_i) - (1 - eps) [j == t_i] - eps / C)   (0 on ignored rows)
template <class T>
void cross_entropy_backward(const T* logits, const std::int64_t* targets, const T* lse, const T* dloss,
                            index_t dloss_stride, index_t n, index_t c, std::int64_t ignore_index,
                            double label_smoothing, T* dlogits);

// input, target: (n,)  ->  sum (x - y)^2, accumulated in double (deterministic for any thread count)
template <class T>
double mse_forward(const T* input, const T* target, index_t n);
// input, target, dinput: (n,)   dinput = 2 scale (x - y)
template <class T>
void mse_backward(const T* input, const T* target, double scale, index_t n, T* dinput);

// probs, targets, out: (n,)   out = -(y max(log p, -100) + (1 - y) max(log(1 - p), -100))
// Returns false if some p lies outside [0, 1] (the binding raises; `out` is then garbage).
template <class T>
bool bce_forward(const T* probs, const T* targets, index_t n, T* out);
// dprobs = dloss (p - y) / max(p (1 - p), 1e-12); dloss has n values or one (dloss_stride 0)
template <class T>
void bce_backward(const T* probs, const T* targets, const T* dloss, index_t dloss_stride, index_t n,
                  T* dprobs);

// logits, targets, out: (n,)   out = max(x, 0) - x y + log(1 + exp(-|x|))
template <class T>
void bce_with_logits_forward(const T* logits, const T* targets, index_t n, T* out);
// dlogits = dloss (sigmoid(x) - y)
template <class T>
void bce_with_logits_backward(const T* logits, const T* targets, const T* dloss, index_t dloss_stride,
                              index_t n, T* dlogits);

}  // namespace pe
