// GRU and Elman RNN whole-sequence recurrences (see rnn.h), on the shared skeleton of recurrence.h:
// per step each thread runs its slice of the recurrent GEMM and of the cell (its rows of the batch,
// or its units and then one barrier). The cells are auto-vectorised bodies compiled per ISA (simd.h's PE_ISA_VARIANTS) and
// chosen by pe::isa() at call time.
//
// GRU (Cho et al. 2014, PyTorch's form: the reset gate multiplies W_hn h + b_hn, not h):
// the recurrent GEMM of the r and z gates adds into G as the LSTM's does, but W_hn h + b_hn must stay
// apart from the input side (r scales it), so its slice goes to Q, which backward needs anyway
// (dr = da_n q). Backward keeps two gate gradients: the input side's [da_r, da_z, da_n] and the
// recurrent side's [da_r, da_z, r da_n]; each weight gradient is then one GEMM over all steps.
#include "cpu/rnn.h"

#include "cpu/recurrence.h"
#include "cpu/simd.h"

namespace pe {
namespace {

using rec::sigmoid;
using rec::tanh;

// ------------------------------------------------------------------ GRU cell, rows [0, M), units [j0, j1)

// g: (M, 3H) in: a + [h W_hr^T, h W_hz^T, 0]; out: [r, z, n]   q: (M, H) in: h W_hn^T; out: + b_hn
// h_prev, h: (M, H)
template <class T>
PE_INLINE void gru_forward_rows_body(T* g, T* q, const T* b_hn, const T* h_prev, T* h, index_t M, index_t H,
                                     index_t j0, index_t j1) {
  for (index_t b = 0; b < M; ++b) {
    T* __restrict gr = g + b * 3 * H;
    T* __restrict gz = gr + H;
    T* __restrict gn = gr + 2 * H;
    T* __restrict qb = q + b * H;
    const T* __restrict hp = h_prev + b * H;
    T* __restrict hb = h + b * H;
#pragma omp simd
    for (index_t j = j0; j < j1; ++j) {
      const T r = sigmoid(gr[j]), z = sigmoid(gz[j]), qv = qb[j] + b_hn[j];
      const T n = tanh(gn[j] + r * qv);
      gr[j] = r;
      gz[j] = z;
      gn[j] = n;
      qb[j] = qv;
      hb[j] = (T(1) - z) * n + z * hp[j];
    }
  }
}

// g: (M, 3H) [r, z, n]   q, h_prev: (M, H)   dh: (M, H) in: dL/dh'; out: its direct part dL/dh' z
// dg, dgh: (M, 3H) out: [da_r, da_z, da_n] and [da_r, da_z, r da_n]
template <class T>
PE_INLINE void gru_backward_rows_body(const T* g, const T* q, const T* h_prev, T* dh, T* dg, T* dgh, index_t M,
                                      index_t H, index_t j0, index_t j1) {
  for (index_t b = 0; b < M; ++b) {
    const T* __restrict gr = g + b * 3 * H;
    const T* __restrict gz = gr + H;
    const T* __restrict gn = gr + 2 * H;
    const T* __restrict qb = q + b * H;
    const T* __restrict hp = h_prev + b * H;
    T* __restrict dhb = dh + b * H;
    T* __restrict dr = dg + b * 3 * H;
    T* __restrict dz = dr + H;
    T* __restrict dn = dr + 2 * H;
    T* __restrict dhr = dgh + b * 3 * H;
    T* __restrict dhz = dhr + H;
    T* __restrict dhn = dhr + 2 * H;
#pragma omp simd
    for (index_t j = j0; j < j1; ++j) {
      const T r = gr[j], z = gz[j], n = gn[j], d = dhb[j];
      const T da_n = d * (T(1) - z) * (T(1) - n * n);
      const T da_r = da_n * qb[j] * r * (T(1) - r);
      const T da_z = d * (hp[j] - n) * z * (T(1) - z);
      dr[j] = da_r;
      dz[j] = da_z;
      dn[j] = da_n;
      dhr[j] = da_r;
      dhz[j] = da_z;
      dhn[j] = da_n * r;
      dhb[j] = d * z;
    }
  }
}

// ------------------------------------------------------------------ Elman cell

// a: (M, H) pre-activations   h: (M, H) out: act(a)
template <class T>
PE_INLINE void rnn_forward_rows_body(const T* a, T* h, bool relu, index_t M, index_t H, index_t j0, index_t j1) {
  for (index_t b = 0; b < M; ++b) {
    const T* __restrict ab = a + b * H;
    T* __restrict hb = h + b * H;
    if (relu) {
#pragma omp simd
      for (index_t j = j0; j < j1; ++j) hb[j] = ab[j] < T(0) ? T(0) : ab[j];  // NaN stays NaN
    } else {
#pragma omp simd
      for (index_t j = j0; j < j1; ++j) hb[j] = tanh(ab[j]);
    }
  }
}

// h: (M, H) outputs act(a)   dh: (M, H) dL/dh'   da: (M, H) out: dL/da
template <class T>
PE_INLINE void rnn_backward_rows_body(const T* h, const T* dh, T* da, bool relu, index_t M, index_t H, index_t j0,
                                      index_t j1) {
  for (index_t b = 0; b < M; ++b) {
    const T* __restrict hb = h + b * H;
    const T* __restrict dhb = dh + b * H;
    T* __restrict db = da + b * H;
    if (relu) {
#pragma omp simd
      for (index_t j = j0; j < j1; ++j) db[j] = hb[j] <= T(0) ? T(0) : dhb[j];  // PyTorch's threshold_backward
    } else {
#pragma omp simd
      for (index_t j = j0; j < j1; ++j) db[j] = dhb[j] * (T(1) - hb[j] * hb[j]);
    }
  }
}

PE_ISA_VARIANTS(gru_forward_rows,
                (T * g, T* q, const T* b_hn, const T* h_prev, T* h, index_t M, index_t H, index_t j0, index_t j1),
                (g, q, b_hn, h_prev, h, M, H, j0, j1))
PE_ISA_VARIANTS(gru_backward_rows,
                (const T* g, const T* q, const T* h_prev, T* dh, T* dg, T* dgh, index_t M, index_t H, index_t j0,
                 index_t j1),
                (g, q, h_prev, dh, dg, dgh, M, H, j0, j1))
PE_ISA_VARIANTS(rnn_forward_rows, (const T* a, T* h, bool relu, index_t M, index_t H, index_t j0, index_t j1),
                (a, h, relu, M, H, j0, j1))
PE_ISA_VARIANTS(rnn_backward_rows,
                (const T* h, const T* dh, T* da, bool relu, index_t M, index_t H, index_t j0, index_t j1),
                (h, dh, da, relu, M, H, j0, j1))

}  // namespace

// ====================================================================== GRU

template <class T>
void gru_sequence_forward(T* G, T* Q, const T* w_hh, const T* b_hn, T* Hs, const index_t* batch_sizes, index_t Tn,
                          index_t B, index_t H) {
  const auto cell = gru_forward_rows_for_isa<T>();
  rec::forward_steps<T>(batch_sizes, Tn, B, 3, H, w_hh,
                        [&](const rec::Steps& st, index_t t, index_t r0, index_t m, index_t u0, index_t u1,
                            rec::StepGemm<T>& gm) {
                          T* gt = G + (st.row(t) + r0) * 3 * H;  // this thread's rows r0 .. r0 + m of step t
                          T* qt = Q + (st.row(t) + r0) * H;
                          const T* hp = Hs + (st.prev(t) + r0) * H;
                          gm.rows(m, hp, H);
                          gm.run(0, gt + u0, 3 * H, T(1));      // r, z: G += h W^T
                          gm.run(1, gt + H + u0, 3 * H, T(1));
                          gm.run(2, qt + u0, H, T(0));          // q = h W_hn^T
                          cell(gt, qt, b_hn, hp, Hs + (st.out(t) + r0) * H, m, H, u0, u1);
                        });
}

template <class T>
void gru_sequence_backward(const T* G, const T* Q, const T* w_hh, const T* Hs, const T* dH, T* dh, T* dG, T* dGh,
                           const index_t* batch_sizes, index_t Tn, index_t B, index_t H) {
  const auto cell = gru_backward_rows_for_isa<T>();
  // dh_{t-1} = dh_t z (left in dh by the cell) + [da_r, da_z, dq] W_hh
  rec::backward_steps<T>(batch_sizes, Tn, B, 3, H, w_hh, dH, dh, T(1),
                         [&](const rec::Steps& st, index_t t, index_t r0, index_t m, index_t u0, index_t u1) {
                           T* dght = dGh + st.row(t) * 3 * H;
                           const index_t row = st.row(t) + r0;  // this thread's rows r0 .. r0 + m of step t
                           cell(G + row * 3 * H, Q + row * H, Hs + (st.prev(t) + r0) * H, dh + r0 * H,
                                dG + row * 3 * H, dght + r0 * 3 * H, m, H, u0, u1);
                           return static_cast<const T*>(dght);
                         });
}

// ====================================================================== Elman RNN

template <class T>
void rnn_sequence_forward(T* G, const T* w_hh, T* Hs, bool relu, const index_t* batch_sizes, index_t Tn, index_t B,
                          index_t H) {
  const auto cell = rnn_forward_rows_for_isa<T>();
  rec::forward_steps<T>(batch_sizes, Tn, B, 1, H, w_hh,
                        [&](const rec::Steps& st, index_t t, index_t r0, index_t m, index_t u0, index_t u1,
                            rec::StepGemm<T>& gm) {
                          T* gt = G + (st.row(t) + r0) * H;
                          gm.rows(m, Hs + (st.prev(t) + r0) * H, H);
                          gm.run(0, gt + u0, H, T(1));
                          cell(gt, Hs + (st.out(t) + r0) * H, relu, m, H, u0, u1);
                        });
}

template <class T>
void rnn_sequence_backward(const T* w_hh, const T* Hs, const T* dH, T* dh, T* dG, bool relu,
                           const index_t* batch_sizes, index_t Tn, index_t B, index_t H) {
  const auto cell = rnn_backward_rows_for_isa<T>();
  rec::backward_steps<T>(batch_sizes, Tn, B, 1, H, w_hh, dH, dh, T(0),
                         [&](const rec::Steps& st, index_t t, index_t r0, index_t m, index_t u0, index_t u1) {
                           T* dgt = dG + st.row(t) * H;
                           cell(Hs + (st.out(t) + r0) * H, dh + r0 * H, dgt + r0 * H, relu, m, H, u0, u1);
                           return static_cast<const T*>(dgt);
                         });
}

#define PE_RNN_INSTANTIATE(T)                                                                                      \
  template void gru_sequence_forward<T>(T*, T*, const T*, const T*, T*, const index_t*, index_t, index_t, index_t); \
  template void gru_sequence_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*,              \
                                         const index_t*, index_t, index_t, index_t);                               \
  template void rnn_sequence_forward<T>(T*, const T*, T*, bool, const index_t*, index_t, index_t, index_t);         \
  template void rnn_sequence_backward<T>(const T*, const T*, const T*, T*, T*, bool, const index_t*, index_t,       \
                                         index_t, index_t);
PE_RNN_INSTANTIATE(float)
PE_RNN_INSTANTIATE(double)
#undef PE_RNN_INSTANTIATE

}  // namespace pe
