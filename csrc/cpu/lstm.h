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

// The recurrence of one layer over Tn steps (one call instead of a GEMM and a
// cell kernel per step), in place:
//   G:  (Tn, B, 4H)  in: the input projections x_t W_ih^T + b of every step;
//                    out: the activated gates of every step (as lstm_cell_forward)
//   w_hh: (4H, H)
//   Hs, Cs: (Tn + 1, B, H)  in: Hs[0] = h_0, Cs[0] = c_0;  out: rows 1..Tn = h_t, c_t
// for t in 0..Tn-1:  G[t] += Hs[t] w_hh^T;  lstm_cell_forward(G[t], Cs[t], Hs[t+1], Cs[t+1]).
template <class T>
void lstm_sequence_forward(T* G, const T* w_hh, T* Hs, T* Cs, index_t Tn, index_t B, index_t H);

// Its backward, in place:
//   G, w_hh, Cs: as left by the forward   dH: (Tn, B, H) in: dL/dh_t from the layer's
//   output; used as scratch (the recurrent terms are added into it)
//   dc: (B, H) in: dL/dc_{Tn-1}; out: dL/dc_0 (before the first step)
//   dG: (Tn, B, 4H) out: dL/d(pre-activations) of every step
// for t = Tn-1 .. 0: lstm_cell_backward(G[t], Cs[t], Cs[t+1], dH[t], dc, dG[t]);
//                    dH[t-1] += dG[t] w_hh  (t > 0)
template <class T>
void lstm_sequence_backward(const T* G, const T* w_hh, const T* Cs, T* dH, T* dc, T* dG, index_t Tn, index_t B,
                            index_t H);

}  // namespace pe
