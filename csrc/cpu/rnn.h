// Whole-sequence recurrences of the GRU (Cho et al. 2014) and of the Elman RNN (Elman 1990), with
// PyTorch's equations for nn.GRU and nn.RNN; the LSTM's is in lstm.h. One call runs one layer and
// direction over every step: the input projections before it and the weight gradients after it are
// one GEMM each over all steps (the gemm family's), done by the caller.
// Packed steps, state arrays and threads: recurrence.h (a dense (T, B) batch is batch_sizes =
// [B] * T; N = sum of batch_sizes). NumPy twins: pyengine/backend/reference/rnn.py.
#pragma once
#include "common.h"

namespace pe {

// GRU, gate order r, z, n along the 3H axis (as PyTorch's weight_ih / weight_hh):
//   r = sigmoid(a_r + h W_hr^T)     z = sigmoid(a_z + h W_hz^T)      (a = G: the input side)
//   q = h W_hn^T + b_hn             n = tanh(a_n + r * q)
//   h' = (1 - z) * n + z * h
//   G:    (N, 3H)  in: x W_ih^T + b_ih + [b_hr, b_hz, 0] for every step's rows;  out: [r, z, n]
//   Q:    (N, H)   out: q of every step's rows (saved for backward)
//   w_hh: (3H, H)  b_hn: (H,)
//   Hs:   (B + N, H)  in: rows [0, B) = h_0;  out: the states after every step
template <class T>
void gru_sequence_forward(T* G, T* Q, const T* w_hh, const T* b_hn, T* Hs, const index_t* batch_sizes, index_t Tn,
                          index_t B, index_t H);

// Its backward (t = T-1 .. 0, rows b < bs[t]; dh_t = dh carried + dH[t]):
//   dn = dh_t (1 - z)   da_n = dn (1 - n^2)   dq = da_n r   da_r = da_n q r (1 - r)
//   da_z = dh_t (h - n) z (1 - z)             dh_{t-1} = dh_t z + [da_r, da_z, dq] W_hh
//   G, Q, w_hh, Hs: as left by the forward   dH: (N, H) dL/dh_t from the layer's output (read only)
//   dh:  (B, H) in: dL/dh_n (each row's final state); out: dL/dh_0
//   dG:  (N, 3H) out: [da_r, da_z, da_n], the gradient of the input side G (for dW_ih, db_ih, dx)
//   dGh: (N, 3H) out: [da_r, da_z, dq], the gradient of h W_hh^T + b_hh (for dW_hh, db_hh)
template <class T>
void gru_sequence_backward(const T* G, const T* Q, const T* w_hh, const T* Hs, const T* dH, T* dh, T* dG, T* dGh,
                           const index_t* batch_sizes, index_t Tn, index_t B, index_t H);

// Elman RNN:  h' = act(a + h W_hh^T), act = tanh, or relu when `relu`
//   G:    (N, H)  in: x W_ih^T + b_ih + b_hh for every step's rows;  out: the pre-activations
//   w_hh: (H, H)  Hs: (B + N, H) as for the GRU
template <class T>
void rnn_sequence_forward(T* G, const T* w_hh, T* Hs, bool relu, const index_t* batch_sizes, index_t Tn, index_t B,
                          index_t H);

// Its backward:  da = dh_t act'(a) (tanh: 1 - h'^2; relu: 0 where h' <= 0);  dh_{t-1} = da W_hh
//   dG: (N, H) out: da of every step's rows;  w_hh, Hs, dH, dh: as for the GRU
template <class T>
void rnn_sequence_backward(const T* w_hh, const T* Hs, const T* dH, T* dh, T* dG, bool relu,
                           const index_t* batch_sizes, index_t Tn, index_t B, index_t H);

}  // namespace pe
