// LSTM cell pointwise kernels (Hochreiter & Schmidhuber 1997; gate equations as
// PyTorch documents them for nn.LSTM, gate order i, f, g, o). The GEMMs around
// them (x W_ih^T, h W_hh^T and the weight gradients) are the gemm family's; these
// kernels fuse everything between two GEMMs into one pass over memory.
// NumPy twins: pyengine/backend/reference/lstm.py.
#pragma once
#include "common.h"

namespace pe {

// Forward of one time step for B rows.
//   gates:  (B, 4H) in: pre-activations  x W_ih^T + b_ih + h_prev W_hh^T + b_hh
//                   out: activations [sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)]
//   c_prev: (B, H)  in
//   h, c:   (B, H)  out:  c = f * c_prev + i * g,   h = o * tanh(c)
// No argument may overlap another.
template <class T>
void lstm_cell_forward(T* gates, const T* c_prev, T* h, T* c, index_t B, index_t H);

// Backward of one time step (gradients of the forward above).
//   gates:  (B, 4H) activations saved by the forward
//   c_prev, c: (B, H) the cell states before and after the step
//   dh:     (B, H) in: dL/dh_t (from the output at t and from step t + 1)
//   dc:     (B, H) in: dL/dc_t arriving from step t + 1;  out: dL/dc_{t-1}
//   dgates: (B, 4H) out: dL/d(pre-activations), gate order i, f, g, o
template <class T>
void lstm_cell_backward(const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dgates,
                        index_t B, index_t H);

// The recurrence of one layer over T packed steps (one call instead of a GEMM and a
// cell kernel per step), in place. Layout of the steps and of the state arrays: recurrence.h
// (a dense (T, B) batch is batch_sizes = [B] * T; N = sum of batch_sizes).
//   G:  (N, 4H)  in: the input projections x_t W_ih^T + b of every step's rows;
//                out: the activated gates (as lstm_cell_forward)
//   w_hh: (4H, H)
//   Hs, Cs: (B + N, H)  in: rows [0, B) = h_0, c_0;  out: the states after every step
// for t in 0..T-1, rows b < bs[t]:  G[t] += h_{t-1} w_hh^T;  lstm_cell_forward(G[t], c_{t-1}) -> h_t, c_t
// batch_major (a dense batch only): G's rows (and dG's) are ordered (b, t), row b T + t, as the input
// projection of a batch_first (B, T, I) input comes without transposing it; Hs, Cs and dH stay as above.
template <class T>
void lstm_sequence_forward(T* G, const T* w_hh, T* Hs, T* Cs, const index_t* batch_sizes, index_t Tn, index_t B,
                           index_t H, bool batch_major = false);

// Its backward, in place:
//   G, w_hh, Cs: as left by the forward   dH: (N, H) dL/dh_t from the layer's output (read only), or null: none
//   dh, dc: (B, H) in: dL/dh_n, dL/dc_n (each row's final state); out: dL/dh_0, dL/dc_0
//   dG: (N, 4H) out: dL/d(pre-activations) of every step's rows
// for t = T-1 .. 0, rows b < bs[t]:  dh += dH[t];  lstm_cell_backward(G[t], c_{t-1}, c_t, dh, dc) -> dG[t], dc;
//                                    dh = dG[t] w_hh
template <class T>
void lstm_sequence_backward(const T* G, const T* w_hh, const T* Cs, const T* dH, T* dh, T* dc, T* dG,
                            const index_t* batch_sizes, index_t Tn, index_t B, index_t H, bool batch_major = false);

// Whether the whole-sequence recurrences (LSTM, GRU, RNN) prefetch the next step's rows during each step's
// recurrent GEMM (recurrence.h, Ahead; on by default; the bits are the same either way). Returns the
// previous setting (an A/B switch for timing).
bool set_recurrence_prefetch(bool on);

}  // namespace pe
