// LSTM cell pointwise kernels, forward and backward side by side (see lstm.h).
//
// Per element j of row b (PyTorch's nn.LSTM equations; Hochreiter & Schmidhuber 1997):
//   i = sigmoid(a_i)  f = sigmoid(a_f)  g = tanh(a_g)  o = sigmoid(a_o)
//   c = f * c_prev + i * g
//   h = o * tanh(c)
// Backward, with tc = tanh(c) recomputed (cheaper than storing a fifth (T, B, H) array):
//   dc_t  = dc_next + dh * o * (1 - tc^2)
//   da_o  = dh * tc * o (1 - o)           da_i = dc_t * g * i (1 - i)
//   da_f  = dc_t * c_prev * f (1 - f)     da_g = dc_t * i * (1 - g^2)
//   dc_prev = dc_t * f
//
// Speed: float uses the vectorisable exp of simd.h, so each row is one SIMD loop with
// no libm calls; the loop body is compiled three times (generic, AVX2, AVX-512)
// and chosen by pe::isa() at call time, so PYENGINE_ISA / set_isa reach it and the
// tests can run every path. double calls libm (exact; it is the gradient-check
// dtype, not the fast one). Rows are split across threads only when a step is
// large enough to pay for the fork/join.
#include "cpu/lstm.h"

#include <algorithm>
#include <cmath>

#include "cpu/gemm.h"
#include "cpu/simd.h"

namespace pe {
namespace {

using vm::exp_f;  // the vectorisable float exp of simd.h

PE_INLINE float sigmoid_(float x) { return 1.0f / (1.0f + exp_f(-x)); }
PE_INLINE double sigmoid_(double x) { return 1.0 / (1.0 + std::exp(-x)); }
// tanh(x) = 2 sigmoid(2x) - 1: absolute error ~1e-7 near 0 (where tanh(x) ~ x),
// relative error at float rounding elsewhere; saturates cleanly to +-1.
PE_INLINE float tanh_(float x) { return 2.0f / (1.0f + exp_f(-2.0f * x)) - 1.0f; }
PE_INLINE double tanh_(double x) { return std::tanh(x); }

// ------------------------------------------------------------------ rows [b0, b1)

// gates: (B, 4H)  c_prev, h, c: (B, H); rows [b0, b1), hidden units [j0, j1)
template <class T>
PE_INLINE void forward_rows_body(T* gates, const T* c_prev, T* h, T* c, index_t b0, index_t b1, index_t H,
                                 index_t j0, index_t j1) {
  for (index_t b = b0; b < b1; ++b) {
    T* __restrict gi = gates + b * 4 * H;
    T* __restrict gf = gi + H;
    T* __restrict gg = gi + 2 * H;
    T* __restrict go = gi + 3 * H;
    const T* __restrict cp = c_prev + b * H;
    T* __restrict hb = h + b * H;
    T* __restrict cb = c + b * H;
#pragma omp simd
    for (index_t j = j0; j < j1; ++j) {
      const T i = sigmoid_(gi[j]), f = sigmoid_(gf[j]), g = tanh_(gg[j]), o = sigmoid_(go[j]);
      const T cv = f * cp[j] + i * g;
      gi[j] = i;
      gf[j] = f;
      gg[j] = g;
      go[j] = o;
      cb[j] = cv;
      hb[j] = o * tanh_(cv);
    }
  }
}

// gates: (B, 4H) activations  c_prev, c, dh, dc: (B, H)  dgates: (B, 4H); rows [b0, b1), units [j0, j1)
template <class T>
PE_INLINE void backward_rows_body(const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dgates,
                                  index_t b0, index_t b1, index_t H, index_t j0, index_t j1) {
  for (index_t b = b0; b < b1; ++b) {
    const T* __restrict gi = gates + b * 4 * H;
    const T* __restrict gf = gi + H;
    const T* __restrict gg = gi + 2 * H;
    const T* __restrict go = gi + 3 * H;
    const T* __restrict cp = c_prev + b * H;
    const T* __restrict cb = c + b * H;
    const T* __restrict dhb = dh + b * H;
    T* __restrict dcb = dc + b * H;
    T* __restrict di = dgates + b * 4 * H;
    T* __restrict df = di + H;
    T* __restrict dg = di + 2 * H;
    T* __restrict dout = di + 3 * H;
#pragma omp simd
    for (index_t j = j0; j < j1; ++j) {
      const T i = gi[j], f = gf[j], g = gg[j], o = go[j];
      const T tc = tanh_(cb[j]);
      const T dhv = dhb[j];
      const T dcv = dcb[j] + dhv * o * (T(1) - tc * tc);
      dout[j] = dhv * tc * o * (T(1) - o);
      di[j] = dcv * g * i * (T(1) - i);
      df[j] = dcv * cp[j] * f * (T(1) - f);
      dg[j] = dcv * i * (T(1) - g * g);
      dcb[j] = dcv * f;
    }
  }
}

// ------------------------------------------------------------------ one copy per ISA (simd.h)

PE_ISA_VARIANTS(forward_rows,
                (T * gates, const T* c_prev, T* h, T* c, index_t b0, index_t b1, index_t H, index_t j0, index_t j1),
                (gates, c_prev, h, c, b0, b1, H, j0, j1))
PE_ISA_VARIANTS(backward_rows,
                (const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dgates, index_t b0, index_t b1,
                 index_t H, index_t j0, index_t j1),
                (gates, c_prev, c, dh, dc, dgates, b0, b1, H, j0, j1))

// One step of the bench LSTM (B=32, H=128: 4096 elements, ~5 us on one core) is
// too small to split; threads start at a few times that.
constexpr index_t kGrain = 16384;

}  // namespace

template <class T>
void lstm_cell_forward(T* gates, const T* c_prev, T* h, T* c, index_t B, index_t H) {
  const auto fn = forward_rows_for_isa<T>();
  const int nt = B > 1 ? threads_for(B * H, kGrain) : 1;
  if (nt <= 1) {
    fn(gates, c_prev, h, c, 0, B, H, 0, H);
    return;
  }
#if defined(PYENGINE_OPENMP)
#pragma omp parallel num_threads(nt)
  {
    const index_t t = vm::thread_id(), n = vm::team_size();
    fn(gates, c_prev, h, c, B * t / n, B * (t + 1) / n, H, 0, H);
  }
#endif
}

template <class T>
void lstm_cell_backward(const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dgates, index_t B,
                        index_t H) {
  const auto fn = backward_rows_for_isa<T>();
  const int nt = B > 1 ? threads_for(B * H, kGrain) : 1;
  if (nt <= 1) {
    fn(gates, c_prev, c, dh, dc, dgates, 0, B, H, 0, H);
    return;
  }
#if defined(PYENGINE_OPENMP)
#pragma omp parallel num_threads(nt)
  {
    const index_t t = vm::thread_id(), n = vm::team_size();
    fn(gates, c_prev, c, dh, dc, dgates, B * t / n, B * (t + 1) / n, H, 0, H);
  }
#endif
}

// ====================================================================== whole sequence
// One layer's recurrence over all T steps in one OpenMP region, instead of a
// Python loop that starts two kernels (a GEMM and a cell) per step. Thread k
// owns the hidden units [u0, u1), hence the gate columns g*H + u (g = i, f, g,
// o) of those units: each step it runs its slice of the recurrent GEMM and of
// the cell, then the threads meet at one barrier (step t + 1 reads all of h_t).
// The per-step work is small (B = 32, H = 128: ~0.5 MFMA), so what this saves
// is the fork/join and the thread wake-up per kernel, which cost as much as the
// arithmetic; on one thread it saves the Python loop. The GEMMs run on the
// calling thread (threads_for is 1 inside a parallel region).
//
// Forward:   G[t] += Hs[t] W_hh^T;  cell(G[t], Cs[t]) -> Hs[t + 1], Cs[t + 1]
// Backward:  cell_backward(G[t], Cs[t], Cs[t + 1], dH[t], dc) -> dG[t], dc;
//            dH[t - 1] += dG[t] W_hh                     (t = T - 1 .. 0)

namespace {

// C (M x N, row stride ldc) += op(A) op(B) on the calling thread.
template <class T>
void gemm_acc(index_t M, index_t N, index_t K, const T* a, index_t lda, const T* b, index_t ldb, bool trans_b, T* c,
              index_t ldc) {
  GemmArgs<T> g;
  g.M = M, g.N = N, g.K = K;
  g.a = a, g.lda = lda;
  g.b = b, g.ldb = ldb, g.trans_b = trans_b;
  g.c = c, g.ldc = ldc;
  g.beta = T(1);
  gemm<T>(g);
}

// Threads for a recurrence: enough work per step, and at least 16 units each.
inline int sequence_threads(index_t B, index_t H) {
  const int nt = threads_for(B * 4 * H * H, index_t(1) << 18);
  return static_cast<int>(std::max<index_t>(1, std::min<index_t>(nt, H / 16)));
}

}  // namespace

template <class T>
void lstm_sequence_forward(T* G, const T* w_hh, T* Hs, T* Cs, index_t Tn, index_t B, index_t H) {
  const auto cell = forward_rows_for_isa<T>();
  const index_t G4 = 4 * H, BH = B * H;
  auto steps = [&](index_t u0, index_t u1, bool sync) {
    for (index_t t = 0; t < Tn; ++t) {
      T* gt = G + t * B * G4;
      for (index_t g = 0; g < 4; ++g)  // this thread's columns of each gate: G[t] += h_{t-1} W_g^T
        gemm_acc<T>(B, u1 - u0, H, Hs + t * BH, H, w_hh + (g * H + u0) * H, H, true, gt + g * H + u0, G4);
      cell(gt, Cs + t * BH, Hs + (t + 1) * BH, Cs + (t + 1) * BH, 0, B, H, u0, u1);
#if defined(PYENGINE_OPENMP)
      if (sync) {
#pragma omp barrier
      }
#endif
    }
  };
  const int nt = sequence_threads(B, H);
  if (nt <= 1) {
    steps(0, H, false);
    return;
  }
#if defined(PYENGINE_OPENMP)
#pragma omp parallel num_threads(nt)
  {
    const index_t k = vm::thread_id(), n = vm::team_size();
    steps(H * k / n, H * (k + 1) / n, true);
  }
#endif
}

template <class T>
void lstm_sequence_backward(const T* G, const T* w_hh, const T* Cs, T* dH, T* dc, T* dG, index_t Tn, index_t B,
                            index_t H) {
  const auto cell = backward_rows_for_isa<T>();
  const index_t G4 = 4 * H, BH = B * H;
  auto steps = [&](index_t u0, index_t u1, bool sync) {
    for (index_t t = Tn - 1; t >= 0; --t) {
      T* dgt = dG + t * B * G4;
      cell(G + t * B * G4, Cs + t * BH, Cs + (t + 1) * BH, dH + t * BH, dc, dgt, 0, B, H, u0, u1);
#if defined(PYENGINE_OPENMP)
      if (sync) {
#pragma omp barrier
      }
#endif
      // this thread's units of dh_{t-1} += da_t W_hh[:, u0:u1]; only this thread reads them next step
      if (t > 0) gemm_acc<T>(B, u1 - u0, G4, dgt, G4, w_hh + u0, H, false, dH + (t - 1) * BH + u0, H);
    }
  };
  const int nt = sequence_threads(B, H);
  if (nt <= 1) {
    steps(0, H, false);
    return;
  }
#if defined(PYENGINE_OPENMP)
#pragma omp parallel num_threads(nt)
  {
    const index_t k = vm::thread_id(), n = vm::team_size();
    steps(H * k / n, H * (k + 1) / n, true);
  }
#endif
}

template void lstm_sequence_forward<float>(float*, const float*, float*, float*, index_t, index_t, index_t);
template void lstm_sequence_forward<double>(double*, const double*, double*, double*, index_t, index_t, index_t);
template void lstm_sequence_backward<float>(const float*, const float*, const float*, float*, float*, float*, index_t,
                                            index_t, index_t);
template void lstm_sequence_backward<double>(const double*, const double*, const double*, double*, double*, double*,
                                             index_t, index_t, index_t);

template void lstm_cell_forward<float>(float*, const float*, float*, float*, index_t, index_t);
template void lstm_cell_forward<double>(double*, const double*, double*, double*, index_t, index_t);
template void lstm_cell_backward<float>(const float*, const float*, const float*, const float*, float*, float*,
                                        index_t, index_t);
template void lstm_cell_backward<double>(const double*, const double*, const double*, const double*, double*,
                                         double*, index_t, index_t);

}  // namespace pe
