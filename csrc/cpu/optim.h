// Optimizer updates, in place over all the tensors of one param group in one call.
// Specification: pyengine/backend/reference/optim.py. The binding has checked every tensor.
#pragma once
#include <vector>

#include "common.h"

namespace pe {

// One parameter with its gradient and state, each a contiguous array of n elements of dtype `kind`
// ('f' float32 or 'd' float64). State slots, by optimizer (null when unused):
//   Adam:    m = exp_avg, v = exp_avg_sq, w = max_exp_avg_sq (amsgrad)
//   SGD:     m = momentum buffer
//   RMSprop: m = momentum buffer, v = square_avg, w = grad_avg (centered)
//   Adagrad: v = sum
struct OptimTensor {
  void* p;
  const void* g;
  void* m;
  void* v;
  void* w;
  index_t n;
  char kind;
};

struct AdamHyper {
  long long step;  // 1-based, after this update
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled, maximize, amsgrad;
};

struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize, first_step;
};

struct RmspropHyper {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
};

struct AdagradHyper {
  long long step;  // 1-based, after this update
  double lr, lr_decay, weight_decay, eps;
  bool maximize;
};

// Adam (Kingma & Ba 2015) / AdamW (Loshchilov & Hutter 2019), optionally AMSGrad (Reddi et al. 2018),
// one fused pass over p, g, m, v (and w) per element.
void adam_update(const std::vector<OptimTensor>& tensors, const AdamHyper& h);
// SGD with momentum / dampening / Nesterov (Sutskever et al. 2013), one fused pass over p, g, b.
void sgd_update(const std::vector<OptimTensor>& tensors, const SgdHyper& h);
// RMSprop (Tieleman & Hinton 2012, PyTorch's form), optionally centered (Graves 2013) and with momentum.
void rmsprop_update(const std::vector<OptimTensor>& tensors, const RmspropHyper& h);
// Adagrad (Duchi et al. 2011, PyTorch's form) with learning-rate decay.
void adagrad_update(const std::vector<OptimTensor>& tensors, const AdagradHyper& h);

}  // namespace pe
