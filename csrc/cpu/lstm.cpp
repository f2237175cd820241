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
// Speed: the gate nonlinearities are recurrence.h's (float: a vectorisable exp, so
// each row is one SIMD loop with no libm calls); the loop body is compiled three
// times (generic, AVX2, AVX-512) and chosen by pe::isa() at call time, so
// PYENGINE_ISA / set_isa reach it and the tests can run every path. Rows are split
// across threads only when a step is large enough to pay for the fork/join.
#include "cpu/lstm.h"

#include <algorithm>
#include <atomic>

#include "cpu/recurrence.h"
#include "cpu/simd.h"

namespace pe {
namespace {

using rec::sigmoid;
using rec::tanh;

// ------------------------------------------------------------------ rows [b0, b1)

// gates: (B, 4H), row stride ldg  c_prev, h, c: (B, H); rows [b0, b1), hidden units [j0, j1)
template <class T>
PE_INLINE void forward_rows_body(T* gates, index_t ldg, const T* c_prev, T* h, T* c, index_t b0, index_t b1,
                                 index_t H, index_t j0, index_t j1) {
  for (index_t b = b0; b < b1; ++b) {
    T* __restrict gi = gates + b * ldg;
    T* __restrict gf = gi + H;
    T* __restrict gg = gi + 2 * H;
    T* __restrict go = gi + 3 * H;
    const T* __restrict cp = c_prev + b * H;
    T* __restrict hb = h + b * H;
    T* __restrict cb = c + b * H;
#pragma omp simd
    for (index_t j = j0; j < j1; ++j) {
      const T i = sigmoid(gi[j]), f = sigmoid(gf[j]), g = tanh(gg[j]), o = sigmoid(go[j]);
      const T cv = f * cp[j] + i * g;
      gi[j] = i;
      gf[j] = f;
      gg[j] = g;
      go[j] = o;
      cb[j] = cv;
      hb[j] = o * tanh(cv);
    }
  }
}

// gates: (B, 4H) activations  c_prev, c, dh, dc: (B, H)  dgates: (B, 4H), both of row stride ldg;
// rows [b0, b1), units [j0, j1)
template <class T>
PE_INLINE void backward_rows_body(const T* gates, index_t ldg, const T* c_prev, const T* c, const T* dh, T* dc,
                                  T* dgates, index_t b0, index_t b1, index_t H, index_t j0, index_t j1) {
  for (index_t b = b0; b < b1; ++b) {
    const T* __restrict gi = gates + b * ldg;
    const T* __restrict gf = gi + H;
    const T* __restrict gg = gi + 2 * H;
    const T* __restrict go = gi + 3 * H;
    const T* __restrict cp = c_prev + b * H;
    const T* __restrict cb = c + b * H;
    const T* __restrict dhb = dh + b * H;
    T* __restrict dcb = dc + b * H;
    T* __restrict di = dgates + b * ldg;
    T* __restrict df = di + H;
    T* __restrict dg = di + 2 * H;
    T* __restrict dout = di + 3 * H;
#pragma omp simd
    for (index_t j = j0; j < j1; ++j) {
      const T i = gi[j], f = gf[j], g = gg[j], o = go[j];
      const T tc = tanh(cb[j]);
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
                (T * gates, index_t ldg, const T* c_prev, T* h, T* c, index_t b0, index_t b1, index_t H, index_t j0,
                 index_t j1),
                (gates, ldg, c_prev, h, c, b0, b1, H, j0, j1))
PE_ISA_VARIANTS(backward_rows,
                (const T* gates, index_t ldg, const T* c_prev, const T* c, const T* dh, T* dc, T* dgates, index_t b0,
                 index_t b1, index_t H, index_t j0, index_t j1),
                (gates, ldg, c_prev, c, dh, dc, dgates, b0, b1, H, j0, j1))

// One step of the bench LSTM (B=32, H=128: 4096 elements, ~5 us on one core) is
// too small to split; threads start at a few times that.
constexpr index_t kGrain = 16384;

std::atomic<bool> g_prefetch{true};

}  // namespace

namespace rec {
bool recurrence_prefetch() { return g_prefetch.load(std::memory_order_relaxed); }
}  // namespace rec

bool set_recurrence_prefetch(bool on) { return g_prefetch.exchange(on); }

template <class T>
void lstm_cell_forward(T* gates, const T* c_prev, T* h, T* c, index_t B, index_t H) {
  const auto fn = forward_rows_for_isa<T>();
  const int nt = B > 1 ? threads_for(B * H, kGrain) : 1;
  if (nt <= 1) {
    fn(gates, 4 * H, c_prev, h, c, 0, B, H, 0, H);
    return;
  }
#if defined(PYENGINE_OPENMP)
#pragma omp parallel num_threads(nt)
  {
    const index_t t = vm::thread_id(), n = vm::team_size();
    fn(gates, 4 * H, c_prev, h, c, B * t / n, B * (t + 1) / n, H, 0, H);
  }
#endif
}

template <class T>
void lstm_cell_backward(const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dgates, index_t B,
                        index_t H) {
  const auto fn = backward_rows_for_isa<T>();
  const int nt = B > 1 ? threads_for(B * H, kGrain) : 1;
  if (nt <= 1) {
    fn(gates, 4 * H, c_prev, c, dh, dc, dgates, 0, B, H, 0, H);
    return;
  }
#if defined(PYENGINE_OPENMP)
#pragma omp parallel num_threads(nt)
  {
    const index_t t = vm::thread_id(), n = vm::team_size();
    fn(gates, 4 * H, c_prev, c, dh, dc, dgates, B * t / n, B * (t + 1) / n, H, 0, H);
  }
#endif
}

// ====================================================================== whole sequence
// One layer's recurrence over all T steps in one OpenMP region, threads owning
// rows of the batch or slices of the hidden units (recurrence.h: the layout, the threads, the GEMM).
//
// Forward:   G[t] += h_{t-1} W_hh^T;  cell(G[t], c_{t-1}) -> h_t, c_t
// Backward:  dh += dH[t];  cell_backward(G[t], c_{t-1}, c_t, dh, dc) -> dG[t], dc;
//            dh = dG[t] W_hh                                            (t = T - 1 .. 0)

// The gate arrays' rows: step t's row b is row grow(t) + b * gstep, of stride ldg = gstep 4H.
//   packed steps (time-major): grow(t) = st.row(t), gstep = 1
//   batch_major (a dense batch): row b T + t, grow(t) = t, gstep = T: the input projection of a
//     batch_first input (B, T, I) computed in place, with no transposed copy of x or of dx.
struct GateRows {
  bool batch_major;
  index_t Tn;
  index_t grow(const rec::Steps& st, index_t t) const { return batch_major ? t : st.row(t); }
  index_t gstep() const { return batch_major ? Tn : 1; }
};

template <class T>
void lstm_sequence_forward(T* G, const T* w_hh, T* Hs, T* Cs, const index_t* batch_sizes, index_t Tn, index_t B,
                           index_t H, bool batch_major) {
  const auto cell = forward_rows_for_isa<T>();
  const GateRows gr{batch_major, Tn};
  const index_t ldg = gr.gstep() * 4 * H;
  rec::forward_steps<T>(batch_sizes, Tn, B, 4, H, w_hh,
                        [&](const rec::Steps& st, index_t t, index_t r0, index_t m, index_t u0, index_t u1,
                            rec::StepGemm<T>& gm) {
                          T* gt = G + gr.grow(st, t) * 4 * H;
                          gm.rows(m, Hs + (st.prev(t) + r0) * H, H);  // this thread's part: G[t] += h W^T
                          // step t + 1's rows of G (recurrence.h, Ahead); batch-major rows follow each other
                          if (t + 1 < Tn && u0 == 0 && u1 == H && !batch_major) {
                            rec::Ahead a;
                            const index_t mn = std::min(st.rows(t + 1) - r0, m);
                            a.add(G + (st.row(t + 1) + r0) * 4 * H, mn * 4 * H * index_t(sizeof(T)), true);
                            gm.ahead(a);
                          }
                          for (index_t g = 0; g < 4; ++g) gm.run(g, gt + r0 * ldg + g * H + u0, ldg, T(1));
                          cell(gt, ldg, Cs + st.prev(t) * H, Hs + st.out(t) * H, Cs + st.out(t) * H, r0, r0 + m, H,
                               u0, u1);
                        });
}

template <class T>
void lstm_sequence_backward(const T* G, const T* w_hh, const T* Cs, const T* dH, T* dh, T* dc, T* dG,
                            const index_t* batch_sizes, index_t Tn, index_t B, index_t H, bool batch_major) {
  const auto cell = backward_rows_for_isa<T>();
  const GateRows gr{batch_major, Tn};
  const index_t ldg = gr.gstep() * 4 * H;
  rec::backward_steps<T>(
      batch_sizes, Tn, B, 4, H, w_hh, dH, dh, T(0),
      [&](const rec::Steps& st, index_t t, index_t r0, index_t m, index_t u0, index_t u1) {
        T* dgt = dG + gr.grow(st, t) * 4 * H;
        cell(G + gr.grow(st, t) * 4 * H, ldg, Cs + st.prev(t) * H, Cs + st.out(t) * H, dh, dc, dgt, r0, r0 + m, H,
             u0, u1);
        return static_cast<const T*>(dgt);
      },
      [&](const rec::Steps& st, index_t t, index_t r0, index_t m, rec::Ahead& a) {
        const index_t rb = index_t(sizeof(T)) * H;  // bytes of an (., H) row
        const index_t g0 = gr.grow(st, t) + r0 * gr.gstep();  // the thread's first row of step t's G, dG
        a.add_rows(G + g0 * 4 * H, 4 * rb, m, ldg * index_t(sizeof(T)));
        a.add_rows(dG + g0 * 4 * H, 4 * rb, m, ldg * index_t(sizeof(T)), true);
        a.add(Cs + (st.prev(t) + r0) * H, m * rb);
        if (dH) a.add(dH + (st.row(t) + r0) * H, m * rb);
      },
      ldg);
}

template void lstm_sequence_forward<float>(float*, const float*, float*, float*, const index_t*, index_t, index_t,
                                           index_t, bool);
template void lstm_sequence_forward<double>(double*, const double*, double*, double*, const index_t*, index_t, index_t,
                                            index_t, bool);
template void lstm_sequence_backward<float>(const float*, const float*, const float*, const float*, float*, float*,
                                            float*, const index_t*, index_t, index_t, index_t, bool);
template void lstm_sequence_backward<double>(const double*, const double*, const double*, const double*, double*,
                                             double*, double*, const index_t*, index_t, index_t, index_t, bool);

template void lstm_cell_forward<float>(float*, const float*, float*, float*, index_t, index_t);
template void lstm_cell_forward<double>(double*, const double*, double*, double*, index_t, index_t);
template void lstm_cell_backward<float>(const float*, const float*, const float*, const float*, float*, float*,
                                        index_t, index_t);
template void lstm_cell_backward<double>(const double*, const double*, const double*, const double*, double*,
                                         double*, index_t, index_t);

}  // namespace pe
