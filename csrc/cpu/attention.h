// Attention kernel family: the kernels' interface (raw pointers, sizes, strides).
// The algorithm is described at the top of attention.cpp; the binding is
// csrc/bind_attention.cpp and the specification pyengine/backend/reference/attention.py.
#pragma once
#include <algorithm>

#include "common.h"
#include "prefetch_ahead.h"

namespace pe {
namespace attn {

// ------------------------------------------------------------------ blocking
// Default block sizes (rows of Q per block, Br; keys per block, Bc). A query
// block keeps Q_i (Br x D), the output accumulator O_i (Br x Dv), the scores
// S (Br x Bc), K_j^T (D x Bc) and V_j (Bc x Dv) hot: at D = Dv = 64 in float
// that is 5 x 16 KiB = 80 KiB, inside L2 with the streamed panels (K_j^T, one
// row of S) inside L1. Bigger Br amortises the K_j^T packing and the per-block
// row bookkeeping over more rows; bigger Bc amortises the per-row softmax
// rescale of O. Both are runtime parameters (AttnArgs::br/bc) so a tuning run
// (or a test that wants many small blocks) can change them without recompiling.
// The forward pass takes twice as many keys per block when Tk > 64: at Tk <= 128 (the small GPT's T = 128) a
// query block then sees all its keys at once, so O is never rescaled and each row's max and sum take one pass.
// Measured on 1 thread, paired rounds on a busy 2-core VM: forward 2-5% faster at B16 H4 T128 D32 (58 of 60
// rounds), ~2% at B8 H6 T256 D64 (23 of 30); the backward was not faster, so it keeps Bc = 64, and at
// Tk <= 64 the wider (padded) scratch rows lost, so Bc stays 64 there too. S (Br x 128) and K_j^T (D x 128)
// are 32 KiB each at D = 64: still L2-resident.
constexpr index_t kBlockQ = 64;         // Br
constexpr index_t kBlockK = 64;         // Bc (backward)
constexpr index_t kBlockKForward = 128;  // Bc (forward)

// Where the rows of one tensor live. The kernels see BH = B * H heads; row t of
// head bh = b * H + h starts at
//     base + b * sb + h * sh + t * st        (strides in elements)
// and holds its D (or Dv) values contiguously. A C-contiguous (BH, T, D) array is
// sb = T*D, sh = 0 with H = 1; a strided (B, H, T, D) NumPy view is read in
// place, e.g. the query heads of a packed (B, T, 3, H, D) projection:
// sb = T*3*H*D, sh = D, st = 3*H*D (no copy to a head-major layout).
struct Rows {
  index_t sb = 0, sh = 0, st = 0;
};

// The optional mask, read in place from a (possibly broadcast) NumPy view of
// shape (B, H, Tq, Tk): element (bh, i, j) is at data[b*sb + h*sh + i*sq + j*sk]
// (strides in elements, 0 for a broadcast axis, negative allowed).
struct AttnMask {
  enum Kind { none = 0, boolean = 1, additive = 2 };
  Kind kind = none;
  const void* data = nullptr;  // bool (1 byte, nonzero = attend) or T (added to the scores)
  index_t sb = 0, sh = 0, sq = 0, sk = 0;
};

// How the backward pass splits its work over threads (see attention.cpp).
enum class BwdStrategy : int { automatic = 0, per_bh = 1, split = 2 };

// Everything a kernel needs. Logical shapes (each tensor's memory layout is
// given by its Rows, below):
//   q: (BH, Tq, D)   k: (BH, Tk, D)   v: (BH, Tk, Dv)   out: (BH, Tq, Dv)
//   dout, dq, dk, dv: shaped as out, q, k, v (backward only)
//   lse, delta: (BH, Tq), C-contiguous.
// The outputs (out, lse; dq, dk, dv) must not overlap each other or the inputs.
template <class T>
struct AttnArgs {
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  T* out = nullptr;  // forward: written; backward: read
  T* lse = nullptr;  // forward: written; backward: read
  const T* dout = nullptr;
  T* dq = nullptr;
  T* dk = nullptr;
  T* dv = nullptr;
  const T* delta = nullptr;  // backward scratch: D_i = rowsum(dO_i * O_i), (BH, Tq)

  index_t BH = 0, Tq = 0, Tk = 0, D = 0, Dv = 0;
  index_t H = 1;  // heads per batch entry: bh = b * H + h (H = 1: one flat BH axis)
  Rows q_rows, k_rows, v_rows, out_rows, dout_rows, dq_rows, dk_rows, dv_rows;
  AttnMask mask;
  bool causal = false;
  index_t causal_offset = 0;  // key j visible to query i iff j <= i + causal_offset
  T scale = T(1);
  index_t br = kBlockQ, bc = kBlockK;

  // Element offset of row t of head bh in a tensor laid out as `r`.
  index_t at(const Rows& r, index_t bh, index_t t) const { return (bh / H) * r.sb + (bh % H) * r.sh + t * r.st; }

  // Keys [0, key_end(i)) may be visible to query row i (the causal limit; the mask
  // may hide more of them).
  index_t key_end(index_t i) const {
    if (!causal) return Tk;
    return std::min(Tk, std::max<index_t>(0, i + causal_offset + 1));
  }
  // The first query row that can see key j.
  index_t first_query(index_t j) const {
    if (!causal) return 0;
    return std::min(Tq, std::max<index_t>(0, j - causal_offset));
  }
};

// Zeroes `rows` rows of n values, row stride ld (a gradient block before accumulation).
template <class T>
inline void zero_rows(T* p, index_t rows, index_t n, index_t ld) {
  for (index_t r = 0; r < rows; ++r) std::fill_n(p + r * ld, n, T(0));
}

// The rows the thread's next task will read, prefetched into L2 a share at a time while the current task
// runs its score rows (attention.cpp plans it, the kernels walk it; prefetches only, so the bits do not
// change). The task's first reads of q, k, v, out and dout come from L3 or memory otherwise: in a training
// step the projection that wrote them, or the ops between, have moved on.
struct NextRows {
  Ahead walk;
  index_t per_row = 0;  // lines issued per score row of the current task
  // Empties the list (nothing to prefetch until ranges are added and spread).
  void clear() {
    walk = Ahead{};
    walk.l2 = true;
    per_row = 0;
  }
  // Spreads the listed lines over the current task's `rows` score rows.
  void spread(index_t rows) { per_row = (walk.total() + rows - 1) / std::max<index_t>(rows, 1); }
  void touch() { walk.touch(per_row); }
};

// One thread's scratch (attention.cpp allocates it; the kernels only use it).
// lds / ldo: row strides of the Bc-wide and Dv-wide buffers.
template <class T>
struct Workspace {
  T* kt = nullptr;  // K_j^T: D x Bc (row stride lds)
  T* vt = nullptr;  // V_j^T: Dv x Bc (backward)
  T* s = nullptr;   // S, then P: Br x Bc
  T* dp = nullptr;  // dP, then dS: Br x Bc (backward)
  T* o = nullptr;   // unnormalised output accumulator O_i: Br x Dv (row stride ldo; forward)
  T* m = nullptr;   // running row max: Br (forward)
  T* l = nullptr;   // running row sum: Br (forward)
  T* mb = nullptr;  // the rows' maxima over one key block: Br (forward)
  NextRows* next = nullptr;  // the next task's rows, or null (no prefetch)
  index_t lds = 0, ldo = 0;
};

// out, lse = attention(q, k, v).
template <class T>
void attention_forward(const AttnArgs<T>& args);

// dq, dk, dv from q, k, v, out, lse, dout (args.delta is allocated inside).
template <class T>
void attention_backward(const AttnArgs<T>& args, BwdStrategy strategy = BwdStrategy::automatic);

}  // namespace attn
}  // namespace pe
