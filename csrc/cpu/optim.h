// Optimizer updates, in place over all the tensors of one param group in one call.
// Specification: pyengine/backend/reference/optim.py. The binding has checked every tensor.
#pragma once
#include <vector>

#include "common.h"

namespace pe {

// One parameter with its gradient and state, each a contiguous array of n elements of dtype `kind`
// ('f' float32 or 'd' float64). Adam: m = exp_avg, v = exp_avg_sq. SGD: m = momentum buffer (or null), v unused.
struct OptimTensor {
  void* p;
  const void* g;
  void* m;
  void* v;
  index_t n;
  char kind;
};

struct AdamHyper {
  long long step;  // 1-based, after this update
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled, maximize;
};

struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize, first_step;
};

// Adam (Kingma & Ba 2015) / AdamW (Loshchilov & Hutter 2019), one fused pass over p, g, m, v per element.
void adam_update(const std::vector<OptimTensor>& tensors, const AdamHyper& h);
// SGD with momentum / dampening / Nesterov (Sutskever et al. 2013), one fused pass over p, g, b.
void sgd_update(const std::vector<OptimTensor>& tensors, const SgdHyper& h);

}  // namespace pe
