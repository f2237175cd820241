// The skeleton every whole-sequence recurrence shares (lstm.cpp, rnn.cpp: LSTM, GRU, Elman RNN):
// the packed layout of the steps, the threads that split the hidden units, the GEMM slices, and the
// gate nonlinearities. One copy here, so the three recurrences differ only in their cells.
//
// Packed steps (PyTorch's PackedSequence layout; a dense (T, B) batch is the case bs[t] = B):
//   batch_sizes bs: (T,), B >= bs[0] >= bs[1] >= ... >= bs[T-1] >= 0; N = sum_t bs[t]
//   step t runs rows b < bs[t] of the batch (sequences sorted by decreasing length): a row whose
//   sequence has ended computes nothing and keeps its state, so the final state of each row is the
//   state after its own last step.
//   (N, .) arrays (gates G, dG, output gradients dH) hold step t's rows at [off_t, off_t + bs[t]),
//   off_t = bs[0] + ... + bs[t-1];
//   state arrays (B + N, H) hold h_0 in rows [0, B), then the state after step t in rows
//   [B + off_t, B + off_t + bs[t]); the state before step t is rows [prev(t), prev(t) + bs[t]) with
//   prev(0) = 0 and prev(t) = B + off_{t-1} (a prefix of the previous step's rows).
//
// Threads (measured on the LSTM bench, B = 32, H = 128, T = 100): thread k owns hidden units
// [u0, u1) and hence the gate columns g*H + u of those units; each step it runs its slice of the
// recurrent GEMM and of the cell, then the threads meet at one barrier (step t + 1 reads all of
// h_t). What this saves over a GEMM and a cell kernel per step is the fork/join and thread wake-up
// per kernel, which cost as much as the step's arithmetic (~0.5 MFMA); on one thread it saves the
// Python loop. The GEMMs run on the calling thread (threads_for is 1 inside a parallel region).
// Backward keeps the gradient of each row's state in a carried (B, H) array dh (as dc for the LSTM's
// cell state): in: dL/dh_n, out: dL/dh_0; a row that has not started (going backwards) keeps its
// dL/dh_n until its last step is reached.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/simd.h"

namespace pe {
namespace rec {

// ------------------------------------------------------------------ gate nonlinearities
// float: the vectorisable exp of simd.h, so a cell is one SIMD loop with no libm calls; double:
// libm (exact; it is the gradient-check dtype, not the fast one).
PE_INLINE float sigmoid(float x) { return 1.0f / (1.0f + vm::exp_f(-x)); }
PE_INLINE double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
// tanh(x) = 2 sigmoid(2x) - 1: absolute error ~1e-7 near 0 (where tanh(x) ~ x), relative error at
// float rounding elsewhere; saturates cleanly to +-1.
PE_INLINE float tanh(float x) { return 2.0f / (1.0f + vm::exp_f(-2.0f * x)) - 1.0f; }
PE_INLINE double tanh(double x) { return std::tanh(x); }

// ------------------------------------------------------------------ packed steps
class Steps {
 public:
  // batch_sizes: T values as above (checked by the binding)
  Steps(const index_t* batch_sizes, index_t T, index_t B) : B_(B), off_(static_cast<size_t>(T) + 1, 0) {
    for (index_t t = 0; t < T; ++t) off_[t + 1] = off_[t] + batch_sizes[t];
  }
  index_t rows(index_t t) const { return off_[t + 1] - off_[t]; }  // bs[t]
  index_t row(index_t t) const { return off_[t]; }                 // step t's first row in (N, .) arrays
  index_t out(index_t t) const { return B_ + off_[t]; }            // its state after the step, in (B + N, H)
  index_t prev(index_t t) const { return t ? B_ + off_[t - 1] : 0; }  // its state before the step

 private:
  index_t B_;
  std::vector<index_t> off_;
};

// ------------------------------------------------------------------ GEMM slices and threads

// C (M x N, row stride ldc) = op(A) op(B) + beta C on the calling thread (inside the recurrence's
// parallel region; outside it gemm may use threads of its own).
template <class T>
void gemm_slice(index_t M, index_t N, index_t K, const T* a, index_t lda, const T* b, index_t ldb, bool trans_b,
                T* c, index_t ldc, T beta) {
  GemmArgs<T> g;
  g.M = M, g.N = N, g.K = K;
  g.a = a, g.lda = lda;
  g.b = b, g.ldb = ldb, g.trans_b = trans_b;
  g.c = c, g.ldc = ldc;
  g.beta = beta;
  gemm<T>(g);
}

// Forward, for each gate g < gates: C[:, g*H + u0 : g*H + u1] += A w[g*H + u0 : g*H + u1]^T
//   a: (M, H) the states before the step   w: (gates*H, H)   c: (M, ldc), ldc >= gates*H
template <class T>
void gate_columns(index_t M, index_t H, index_t gates, const T* a, const T* w, T* c, index_t ldc, index_t u0,
                  index_t u1) {
  for (index_t g = 0; g < gates; ++g)
    gemm_slice<T>(M, u1 - u0, H, a, H, w + (g * H + u0) * H, H, true, c + g * H + u0, ldc, T(1));
}

// Backward: dh[:, u0:u1] = da w[:, u0:u1] + beta dh[:, u0:u1]
//   da: (M, gates*H) gradients of the recurrent pre-activations   w: (gates*H, H)   dh: (M, H)
template <class T>
void state_grad(index_t M, index_t H, index_t gates, const T* da, const T* w, T* dh, index_t u0, index_t u1, T beta) {
  gemm_slice<T>(M, u1 - u0, gates * H, da, gates * H, w + u0, H, false, dh + u0, H, beta);
}

// dst[b, j] += src[b, j] for rows b < M, units [u0, u1); both (M, H)
template <class T>
void add_units(T* dst, const T* src, index_t M, index_t H, index_t u0, index_t u1) {
  for (index_t b = 0; b < M; ++b) {
    T* __restrict d = dst + b * H;
    const T* __restrict s = src + b * H;
#pragma omp simd
    for (index_t j = u0; j < u1; ++j) d[j] += s[j];
  }
}

// Threads for a recurrence with `gates` gate blocks: enough work per step (B gates H^2 FMAs), and
// at least 16 units each.
inline int sequence_threads(index_t B, index_t gates, index_t H) {
  const int nt = threads_for(B * gates * H * H, index_t(1) << 18);
  return static_cast<int>(std::max<index_t>(1, std::min<index_t>(nt, H / 16)));
}

// Runs steps(u0, u1, sync) once per thread, each thread owning units [u0, u1) of the H (one thread:
// steps(0, H, false)). `steps` loops over time and calls barrier(sync) after each step.
template <class Steps_>
void over_units(index_t B, index_t gates, index_t H, Steps_&& steps) {
  const int nt = sequence_threads(B, gates, H);
  if (nt <= 1) {
    steps(index_t(0), H, false);
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

// The one barrier per step (an orphaned barrier: it binds to over_units' parallel region).
inline void barrier(bool sync) {
#if defined(PYENGINE_OPENMP)
  if (sync) {
#pragma omp barrier
  }
#else
  (void)sync;
#endif
}

// ------------------------------------------------------------------ the two time loops

// Forward: for t = 0 .. T-1, each thread runs step(st, t, n, u0, u1) (its slice of the recurrent GEMM and
// its units of the cell, for the n = bs[t] rows of step t), then the threads meet at the barrier.
template <class Step>
void forward_steps(const index_t* batch_sizes, index_t Tn, index_t B, index_t gates, index_t H, Step&& step) {
  const Steps st(batch_sizes, Tn, B);
  over_units(B, gates, H, [&](index_t u0, index_t u1, bool sync) {
    for (index_t t = 0; t < Tn; ++t) {
      const index_t n = st.rows(t);
      if (n == 0) break;  // batch sizes never grow again: every thread stops here
      step(st, t, n, u0, u1);
      barrier(sync);
    }
  });
}

// Backward, for t = T-1 .. 0, each thread on its units:
//   dh += dH[t]                          (dL/dh_t: from the output, and carried from step t + 1)
//   da = cell(st, t, n, u0, u1)          the step's gradients of the recurrent pre-activations (n, gates H);
//                                        the cell leaves in dh the part of dL/dh_{t-1} that does not pass
//                                        through W_hh (beta = 1: GRU), or nothing (beta = 0)
//   barrier                              (the next line reads every unit's columns of da)
//   dh = da W_hh[:, u0:u1] + beta dh     this thread's units of dL/dh_{t-1}; only it reads them next step
//   dH: (N, H)   dh: (B, H) in: dL/dh_n; out: dL/dh_0   w_hh: (gates H, H)
template <class T, class Cell>
void backward_steps(const index_t* batch_sizes, index_t Tn, index_t B, index_t gates, index_t H, const T* w_hh,
                    const T* dH, T* dh, T beta, Cell&& cell) {
  const Steps st(batch_sizes, Tn, B);
  over_units(B, gates, H, [&](index_t u0, index_t u1, bool sync) {
    for (index_t t = Tn - 1; t >= 0; --t) {
      const index_t n = st.rows(t);
      if (n == 0) continue;
      add_units<T>(dh, dH + st.row(t) * H, n, H, u0, u1);
      const T* da = cell(st, t, n, u0, u1);
      barrier(sync);
      state_grad<T>(n, H, gates, da, w_hh, dh, u0, u1, beta);
    }
  });
}

}  // namespace rec
}  // namespace pe
