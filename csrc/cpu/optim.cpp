// Optimizer updates (specification: pyengine/backend/reference/optim.py).
//
// Each update is one fused elementwise pass (Adam reads p, g, m, v and writes p, m, v: 7 words per
// parameter, the minimum), so big groups run at memory bandwidth. All tensors of a group are cut into
// chunks of at most kChunk elements and the chunks are shared among the threads in one parallel region:
// one fork/join per call however many tensors the group has; small groups run on the calling thread.
// Operations follow the reference's order (no reassociation; the AVX levels may fuse a multiply and an add
// into one FMA, a last-bit difference), so float64 trajectories match torch.optim to ~1e-15.
// Measured: AdamW over 10M float32 params, 2 threads (shared machine) 16-24 ms, torch.optim.AdamW
// 160-220 ms (default), 28-32 ms (fused=True).
//
// Each optimizer is a Body (compiled per ISA, simd.h's select_isa) templated on its options, so a
// disabled option (weight decay, momentum, centering, AMSGrad) costs nothing in the loop. NaN: every
// operation propagates it (AMSGrad's running max too, as torch.maximum and np.maximum do).
// The loops are `omp simd` (the arrays a body writes must not overlap: the binding refuses one array
// passed twice; overlapping views give unspecified values, never an access out of bounds), because
// without it GCC 12 gives up on bodies that write four arrays (AMSGrad; centered RMSprop with momentum):
// too many run-time alias checks to version the loop, so they ran scalar (float32, 200k elements in
// cache, 1 thread: AMSGrad 680-985 us -> 173 us, plain Adam 150 us; centered RMSprop with momentum
// 541 -> 165 us).
#include "cpu/optim.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/simd.h"  // PE_INLINE, select_isa, parallel_for

namespace pe {
namespace {

constexpr index_t kChunk = 32768;

struct Chunk {
  index_t tensor, lo, hi;
};

std::vector<Chunk> make_chunks(const std::vector<OptimTensor>& ts, index_t* total) {
  std::vector<Chunk> chunks;
  *total = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    for (index_t lo = 0; lo < ts[i].n; lo += kChunk)
      chunks.push_back({static_cast<index_t>(i), lo, std::min(ts[i].n, lo + kChunk)});
    *total += ts[i].n;
  }
  return chunks;
}

// The pointers of one tensor, typed; every optimizer's Args derives from it.
template <class T>
struct Ptrs {
  T* p;
  const T* g;
  T* m;
  T* v;
  T* w;
  void bind(const OptimTensor& t) {
    p = static_cast<T*>(t.p), g = static_cast<const T*>(t.g);
    m = static_cast<T*>(t.m), v = static_cast<T*>(t.v), w = static_cast<T*>(t.w);
  }
};

template <class A>
using ArgsFn = void (*)(const A&, index_t, index_t);

// Runs the body over every chunk of the group, in parallel when the group is big: the float32 variant
// `fn_f` with scalars `sf` on float32 tensors, the float64 one on the others.
template <template <class> class Args>
void run_group(const std::vector<OptimTensor>& ts, ArgsFn<Args<float>> fn_f, const Args<float>& sf,
               ArgsFn<Args<double>> fn_d, const Args<double>& sd) {
  index_t total;
  const std::vector<Chunk> chunks = make_chunks(ts, &total);
  parallel_for(static_cast<index_t>(chunks.size()), threads_for(total), 1, [&](index_t k) {
    const Chunk& c = chunks[k];
    const OptimTensor& t = ts[c.tensor];
    if (t.kind == 'f') {
      Args<float> a = sf;
      a.bind(t);
      fn_f(a, c.lo, c.hi);
    } else {
      Args<double> a = sd;
      a.bind(t);
      fn_d(a, c.lo, c.hi);
    }
  });
}

// ============================================================ Adam (Kingma & Ba 2015) / AdamW (Loshchilov & Hutter 2019)
// p, g, m, v (, w): (n,) each
//   g = -g if maximize
//   AdamW: p = p (1 - lr wd)               Adam: g = g + wd p
//   m = beta1 m + (1 - beta1) g            v = beta2 v + (1 - beta2) g^2
//   AMSGrad (Reddi et al. 2018, PyTorch's form): w = max(w, v), NaN-propagating; v_used = w, else v
//   p = p - lr / (1 - beta1^t) m / (sqrt(v_used) / sqrt(1 - beta2^t) + eps)
//
// The update is bound by the divider (float32, AVX-512: one sqrt and two divisions per element, ~0.75 ns
// an element in cache and out of it), so on the FMA levels the division by the constant b = sqrt(1 -
// beta2^t) is done without it, with the same bits: q = s r with r = 1/b rounded, then one correction
// (Markstein): q' = q + (s - q b) r, both steps one FMA. r is the correctly rounded 1/b and q is within
// one ulp of s/b, so the remainder s - q b is exact and q' is the correctly rounded s/b, unless s - q b
// underflows: s >= sqrt(smallest subnormal) = 2^-74.5 (float32) and b <= 1 keep it at >= 2^-99, and
// checked: every non-negative float32 s against four divisors, and 2^17 random s for each of 765
// divisors sqrt(1 - beta2^t) and 2000 random ones, bit for bit against s / b (and float64 the same way,
// random s). s = 0 and s = inf take q itself (the correction would give +0 for -0, NaN for inf). Without
// FMA (the generic level) it stays a division: std::fma would be a library call there.
template <class T>
struct AdamArgs : Ptrs<T> {
  T gsign, decay, wd, beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bc2, inv_sqrt_bc2, eps, step_size;
};

enum AdamDecay { kNoDecay = 0, kL2 = 1, kDecoupled = 2 };

template <class T, int kDecay, bool kAmsgrad, bool kFmaDivide>
struct AdamBody {
  using Args = AdamArgs<T>;
  static PE_INLINE void run(const Args& a, index_t lo, index_t hi) {
    T* __restrict p = a.p;
    const T* __restrict g = a.g;
    T* __restrict m = a.m;
    T* __restrict v = a.v;
    T* __restrict w = a.w;
#pragma omp simd
    for (index_t i = lo; i < hi; ++i) {
      T gi = g[i] * a.gsign;
      T pi = p[i];
      if (kDecay == kDecoupled) pi = pi * a.decay;
      if (kDecay == kL2) gi = gi + a.wd * pi;
      const T mi = m[i] * a.beta1 + a.one_minus_beta1 * gi;
      const T vi = v[i] * a.beta2 + a.one_minus_beta2 * gi * gi;
      T v_used = vi;
      if (kAmsgrad) {
        // max(w, v), NaN if either is NaN (as torch.maximum; std::max(w, v) drops a NaN v)
        const T wi = w[i];
        v_used = wi > vi ? wi : vi;
        v_used = wi != wi ? wi : v_used;
        w[i] = v_used;
      }
      const T s = std::sqrt(v_used);
      T scaled;  // s / sqrt_bc2, correctly rounded either way
      if (kFmaDivide) {
        const T q = s * a.inv_sqrt_bc2;
        const T q2 = std::fma(std::fma(-q, a.sqrt_bc2, s), a.inv_sqrt_bc2, q);
        scaled = (q == T(0) || q == std::numeric_limits<T>::infinity()) ? q : q2;
      } else {
        scaled = s / a.sqrt_bc2;
      }
      const T denom = scaled + a.eps;
      p[i] = pi - a.step_size * mi / denom;
      m[i] = mi;
      v[i] = vi;
    }
  }
};

// The generic level divides; the AVX levels (which have FMA) take the FMA division.
template <class T, int kDecay, bool kAmsgrad>
ArgsFn<AdamArgs<T>> select_adam_isa() {
  if (isa() == Isa::generic) return &run_generic<AdamBody<T, kDecay, kAmsgrad, false>>;
  return select_isa<AdamBody<T, kDecay, kAmsgrad, true>>();
}

template <class T, bool kAmsgrad>
ArgsFn<AdamArgs<T>> select_adam_decay(int decay) {
  if (decay == kDecoupled) return select_adam_isa<T, kDecoupled, kAmsgrad>();
  if (decay == kL2) return select_adam_isa<T, kL2, kAmsgrad>();
  return select_adam_isa<T, kNoDecay, kAmsgrad>();
}

template <class T>
ArgsFn<AdamArgs<T>> select_adam(int decay, bool amsgrad) {
  return amsgrad ? select_adam_decay<T, true>(decay) : select_adam_decay<T, false>(decay);
}

// The hyperparameters, rounded once to T (as NumPy rounds a Python float against a float32 array).
template <class T>
AdamArgs<T> adam_scalars(const AdamHyper& h) {
  const double bias_correction1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bias_correction2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  AdamArgs<T> a{};
  a.gsign = h.maximize ? T(-1) : T(1);
  a.decay = static_cast<T>(1.0 - h.lr * h.weight_decay);
  a.wd = static_cast<T>(h.weight_decay);
  a.beta1 = static_cast<T>(h.beta1);
  a.one_minus_beta1 = static_cast<T>(1.0 - h.beta1);
  a.beta2 = static_cast<T>(h.beta2);
  a.one_minus_beta2 = static_cast<T>(1.0 - h.beta2);
  a.sqrt_bc2 = static_cast<T>(std::sqrt(bias_correction2));
  a.inv_sqrt_bc2 = T(1) / a.sqrt_bc2;  // correctly rounded in T: the FMA division needs exactly this
  a.eps = static_cast<T>(h.eps);
  a.step_size = static_cast<T>(h.lr / bias_correction1);
  return a;
}

// ============================================================ SGD with momentum (Sutskever et al. 2013)
// p, g, b: (n,) each
//   g = -g if maximize   (first, as PyTorch >= 1.13: weight decay and momentum see the negated gradient)
//   g = g + wd p
//   momentum: b = g (first step) or momentum b + (1 - dampening) g;   g = g + momentum b (Nesterov) or b
//   p = p - lr g
template <class T>
struct SgdArgs : Ptrs<T> {
  T lr, wd, momentum, one_minus_dampening, gsign;
};

template <class T, bool kWD, bool kMomentum, bool kFirst, bool kNesterov>
struct SgdBody {
  using Args = SgdArgs<T>;
  static PE_INLINE void run(const Args& a, index_t lo, index_t hi) {
    T* __restrict p = a.p;
    const T* __restrict g = a.g;
    T* __restrict b = a.m;
#pragma omp simd
    for (index_t i = lo; i < hi; ++i) {
      T gi = a.gsign * g[i];  // exact: a sign flip
      if (kWD) gi = gi + a.wd * p[i];
      if (kMomentum) {
        const T bi = kFirst ? gi : b[i] * a.momentum + a.one_minus_dampening * gi;
        b[i] = bi;
        gi = kNesterov ? gi + a.momentum * bi : bi;
      }
      p[i] = p[i] - a.lr * gi;
    }
  }
};

template <class T, bool kWD>
ArgsFn<SgdArgs<T>> select_sgd_momentum(bool momentum, bool first, bool nesterov) {
  if (!momentum) return select_isa<SgdBody<T, kWD, false, false, false>>();
  if (first) return nesterov ? select_isa<SgdBody<T, kWD, true, true, true>>()
                             : select_isa<SgdBody<T, kWD, true, true, false>>();
  return nesterov ? select_isa<SgdBody<T, kWD, true, false, true>>()
                  : select_isa<SgdBody<T, kWD, true, false, false>>();
}

template <class T>
ArgsFn<SgdArgs<T>> select_sgd(const SgdHyper& h) {
  const bool momentum = h.momentum != 0.0;
  return h.weight_decay != 0.0 ? select_sgd_momentum<T, true>(momentum, h.first_step, h.nesterov)
                               : select_sgd_momentum<T, false>(momentum, h.first_step, h.nesterov);
}

template <class T>
SgdArgs<T> sgd_scalars(const SgdHyper& h) {
  SgdArgs<T> a{};
  a.lr = static_cast<T>(h.lr);
  a.gsign = h.maximize ? T(-1) : T(1);
  a.wd = static_cast<T>(h.weight_decay);
  a.momentum = static_cast<T>(h.momentum);
  a.one_minus_dampening = static_cast<T>(1.0 - h.dampening);
  return a;
}

// ============================================================ RMSprop (Tieleman & Hinton 2012, lecture 6e)
// p, g, v = square_avg, b = momentum buffer, a = grad_avg: (n,) each
//   g = -g if maximize;  g = g + wd p
//   v = alpha v + (1 - alpha) g^2
//   centered (Graves 2013): a = alpha a + (1 - alpha) g;  avg = sqrt(max(v - a^2, 0)) + eps;   else avg = sqrt(v) + eps
//   momentum: b = momentum b + g / avg;  p = p - lr b            else p = p - lr g / avg
template <class T>
struct RmspropArgs : Ptrs<T> {
  T gsign, wd, alpha, one_minus_alpha, eps, momentum, lr;
};

template <class T, bool kWD, bool kCentered, bool kMomentum>
struct RmspropBody {
  using Args = RmspropArgs<T>;
  static PE_INLINE void run(const Args& a, index_t lo, index_t hi) {
    T* __restrict p = a.p;
    const T* __restrict g = a.g;
    T* __restrict b = a.m;
    T* __restrict v = a.v;
    T* __restrict ga = a.w;
#pragma omp simd
    for (index_t i = lo; i < hi; ++i) {
      T gi = a.gsign * g[i];
      if (kWD) gi = gi + a.wd * p[i];
      const T vi = v[i] * a.alpha + a.one_minus_alpha * gi * gi;
      v[i] = vi;
      T avg;
      if (kCentered) {
        const T ai = ga[i] * a.alpha + a.one_minus_alpha * gi;
        ga[i] = ai;
        // v - a^2 is a variance, >= 0; rounding (an FMA gives the exact a^2) can leave it just below 0
        // where it is 0 (a constant gradient), and sqrt would make the parameter NaN: clamp, NaN stays NaN
        const T var = vi - ai * ai;
        avg = std::sqrt(var < T(0) ? T(0) : var) + a.eps;
      } else {
        avg = std::sqrt(vi) + a.eps;
      }
      if (kMomentum) {
        const T bi = b[i] * a.momentum + gi / avg;
        b[i] = bi;
        p[i] = p[i] - a.lr * bi;
      } else {
        p[i] = p[i] - a.lr * gi / avg;
      }
    }
  }
};

template <class T, bool kWD>
ArgsFn<RmspropArgs<T>> select_rmsprop_wd(bool centered, bool momentum) {
  if (centered) return momentum ? select_isa<RmspropBody<T, kWD, true, true>>()
                                : select_isa<RmspropBody<T, kWD, true, false>>();
  return momentum ? select_isa<RmspropBody<T, kWD, false, true>>() : select_isa<RmspropBody<T, kWD, false, false>>();
}

template <class T>
ArgsFn<RmspropArgs<T>> select_rmsprop(const RmspropHyper& h) {
  const bool momentum = h.momentum != 0.0;
  return h.weight_decay != 0.0 ? select_rmsprop_wd<T, true>(h.centered, momentum)
                               : select_rmsprop_wd<T, false>(h.centered, momentum);
}

template <class T>
RmspropArgs<T> rmsprop_scalars(const RmspropHyper& h) {
  RmspropArgs<T> a{};
  a.gsign = h.maximize ? T(-1) : T(1);
  a.wd = static_cast<T>(h.weight_decay);
  a.alpha = static_cast<T>(h.alpha);
  a.one_minus_alpha = static_cast<T>(1.0 - h.alpha);
  a.eps = static_cast<T>(h.eps);
  a.momentum = static_cast<T>(h.momentum);
  a.lr = static_cast<T>(h.lr);
  return a;
}

// ============================================================ Adagrad (Duchi et al. 2011)
// p, g, s = sum: (n,) each
//   g = -g if maximize;  g = g + wd p
//   clr = lr / (1 + (t - 1) lr_decay)
//   s = s + g^2;  p = p - clr g / (sqrt(s) + eps)
template <class T>
struct AdagradArgs : Ptrs<T> {
  T gsign, wd, eps, clr;
};

template <class T, bool kWD>
struct AdagradBody {
  using Args = AdagradArgs<T>;
  static PE_INLINE void run(const Args& a, index_t lo, index_t hi) {
    T* __restrict p = a.p;
    const T* __restrict g = a.g;
    T* __restrict s = a.v;
#pragma omp simd
    for (index_t i = lo; i < hi; ++i) {
      T gi = a.gsign * g[i];
      if (kWD) gi = gi + a.wd * p[i];
      const T si = s[i] + gi * gi;
      s[i] = si;
      p[i] = p[i] - a.clr * gi / (std::sqrt(si) + a.eps);
    }
  }
};

template <class T>
ArgsFn<AdagradArgs<T>> select_adagrad(const AdagradHyper& h) {
  return h.weight_decay != 0.0 ? select_isa<AdagradBody<T, true>>() : select_isa<AdagradBody<T, false>>();
}

template <class T>
AdagradArgs<T> adagrad_scalars(const AdagradHyper& h) {
  AdagradArgs<T> a{};
  a.gsign = h.maximize ? T(-1) : T(1);
  a.wd = static_cast<T>(h.weight_decay);
  a.eps = static_cast<T>(h.eps);
  a.clr = static_cast<T>(h.lr / (1.0 + static_cast<double>(h.step - 1) * h.lr_decay));
  return a;
}

}  // namespace

void adam_update(const std::vector<OptimTensor>& tensors, const AdamHyper& h) {
  const int decay = h.weight_decay == 0.0 ? kNoDecay : h.decoupled ? kDecoupled : kL2;
  run_group<AdamArgs>(tensors, select_adam<float>(decay, h.amsgrad), adam_scalars<float>(h),
                      select_adam<double>(decay, h.amsgrad), adam_scalars<double>(h));
}

void sgd_update(const std::vector<OptimTensor>& tensors, const SgdHyper& h) {
  run_group<SgdArgs>(tensors, select_sgd<float>(h), sgd_scalars<float>(h), select_sgd<double>(h),
                     sgd_scalars<double>(h));
}

void rmsprop_update(const std::vector<OptimTensor>& tensors, const RmspropHyper& h) {
  run_group<RmspropArgs>(tensors, select_rmsprop<float>(h), rmsprop_scalars<float>(h), select_rmsprop<double>(h),
                         rmsprop_scalars<double>(h));
}

void adagrad_update(const std::vector<OptimTensor>& tensors, const AdagradHyper& h) {
  run_group<AdagradArgs>(tensors, select_adagrad<float>(h), adagrad_scalars<float>(h), select_adagrad<double>(h),
                         adagrad_scalars<double>(h));
}

}  // namespace pe
