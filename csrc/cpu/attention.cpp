// Scaled dot-product attention on the CPU, forward and backward, flash-style.
//
// Shapes: q: (BH, Tq, D)   k: (BH, Tk, D)   v: (BH, Tk, Dv)   out: (BH, Tq, Dv)
//         lse: (BH, Tq)     with BH = B * H heads. q, k, v, out and the gradients
// are read and written in place through per-tensor row strides (attn::Rows), so a
// (B, H, T, D) view of a (B, T, H, D) or packed (B, T, 3, H, D) array needs no
// copy; only the last axis must be contiguous.
// mask: optional, bool (True = attend) or float (added to the scores), read in
// place from a (B, H, Tq, Tk) view with any element strides (0 for broadcast axes).
// causal: key j is visible to query i iff j <= i + causal_offset.
// Specification: pyengine/backend/reference/attention.py.
//
// Forward (Dao et al. 2022, "FlashAttention", Algorithm 1; the online softmax of
// Milakov & Gimelshein 2018). For each head bh and block of Br query rows Q_i,
// loop over blocks of Bc keys K_j, V_j:
//     S = scale Q_i K_j^T (+ mask; -inf where hidden)
//     m' = max(m, rowmax S);   P = exp(S - m');   l' = e^(m - m') l + rowsum P
//     O = e^(m - m') O + P V_j
// then out_i = O / l and lse_i = m + log l. A row that sees no key (every score
// masked: m stays -inf) gets out = 0, lse = -inf; NaN or inf in q, k, v or the
// mask reach out and lse as in the formula (a NaN score makes its row NaN).
// Key blocks wholly above the causal diagonal are skipped. Only out and lse are saved for the backward pass.
//
// Backward (Dao et al. 2022, Algorithm 2 / appendix B.2). With D_i =
// rowsum(dO_i o O_i), for each pair of blocks the probabilities are recomputed
// from the saved lse, P = exp(S - lse), and
//     dV_j += P^T dO_i;   dP = dO_i V_j^T;   dS = P o (dP - D_i)
//     dQ_i += scale dS K_j;   dK_j += scale dS^T Q_i
// (rows with lse = -inf have P = 0, hence zero gradients).
//
// Memory: besides the outputs, each thread holds K_j^T (D x Bc), V_j^T (Dv x Bc),
// S/P and dP/dS (Br x Bc each), O_i (Br x Dv) and two Br vectors: O(Br*Bc +
// (Br + Bc)(D + Dv)), independent of T. The backward pass adds D_i, one value per
// query row (BH x Tq, like lse). Nothing of size Tq x Tk is ever formed.
//
// The block GEMMs (S = Q K^T, P V, dO V^T, P^T dO, dS^T Q, dS K) share one
// register-blocked micro-kernel and the softmax rows use a vectorised exp; both
// are written once (attention_impl.h, on simd.h's Vec<T, Isa>) and compiled
// three times: generic, AVX2 + FMA and AVX-512, chosen per call with pe::isa().
//
// Threads (OpenMP, num_threads(pe::threads_for(work))):
//   forward: one task per (bh, query block), dynamically scheduled, last query
//     blocks first (under a causal mask they see the most keys).
//   backward: see attention_backward below.
#include "attention.h"

// GCC 12's AVX-512 intrinsic headers trip its own -Wmaybe-uninitialized (the
// `__Y = __Y` "undefined vector" idiom, GCC PR 105593); the warning is spurious.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "simd.h"

#define PE_ATTN_NS attn_generic
#define PE_ATTN_ISA Isa::generic
#define PE_ATTN_TARGET
#include "attention_impl.h"
#undef PE_ATTN_NS
#undef PE_ATTN_ISA
#undef PE_ATTN_TARGET

#if PE_X86
#define PE_ATTN_NS attn_avx2
#define PE_ATTN_ISA Isa::avx2
#define PE_ATTN_TARGET PE_TARGET_AVX2
#include "attention_impl.h"
#undef PE_ATTN_NS
#undef PE_ATTN_ISA
#undef PE_ATTN_TARGET

#define PE_ATTN_NS attn_avx512
#define PE_ATTN_ISA Isa::avx512
#define PE_ATTN_TARGET PE_TARGET_AVX512
#include "attention_impl.h"
#undef PE_ATTN_NS
#undef PE_ATTN_ISA
#undef PE_ATTN_TARGET
#endif

namespace pe {
namespace attn {
namespace {

int thread_id() {
#if defined(PYENGINE_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// The per-task entry points of one SIMD level.
template <class T>
struct Kernels {
  void (*forward_block)(const AttnArgs<T>&, const Workspace<T>&, index_t bh, index_t i0);
  void (*backward_delta)(const AttnArgs<T>&, index_t bh, T* delta);
  void (*backward_key_block)(const AttnArgs<T>&, const Workspace<T>&, index_t bh, index_t j0, bool with_dq);
  void (*backward_query_block)(const AttnArgs<T>&, const Workspace<T>&, index_t bh, index_t i0);
};

#define PE_ATTN_KERNELS(ns)                                                                        \
  Kernels<T> {                                                                                     \
    &ns::forward_block<T>, &ns::backward_delta<T>, &ns::backward_key_block<T>, &ns::backward_query_block<T> \
  }

template <class T>
Kernels<T> kernels() {
#if PE_X86
  switch (pe::isa()) {
    case Isa::avx512: return PE_ATTN_KERNELS(attn_avx512);
    case Isa::avx2: return PE_ATTN_KERNELS(attn_avx2);
    default: break;
  }
#endif
  return PE_ATTN_KERNELS(attn_generic);
}
#undef PE_ATTN_KERNELS


// One thread's scratch, carved out of a single allocation; every buffer starts
// on a 64-byte boundary and the Bc- and Dv-wide rows are padded to 64 bytes.
template <class T>
class Scratch {
 public:
  Scratch(const AttnArgs<T>& a, bool backward) {
    constexpr index_t align = 64 / sizeof(T);
    const index_t lds = round_up(a.bc, align), ldo = round_up(std::max<index_t>(a.Dv, 1), align);
    constexpr int nbuf = 8;
    const index_t sizes[nbuf] = {a.D * lds,                 // kt
                                 backward ? a.Dv * lds : 0,  // vt
                                 a.br * lds,                 // s
                                 backward ? a.br * lds : 0,  // dp
                                 backward ? 0 : a.br * ldo,  // o
                                 a.br, a.br, a.br};          // m, l, mb
    index_t total = align;
    for (index_t s : sizes) total += round_up(s, align);
    buf_.assign(static_cast<size_t>(total), T(0));
    T* p = buf_.data();
    while (reinterpret_cast<std::uintptr_t>(p) % 64) ++p;
    T** dst[nbuf] = {&ws_.kt, &ws_.vt, &ws_.s, &ws_.dp, &ws_.o, &ws_.m, &ws_.l, &ws_.mb};
    for (int b = 0; b < nbuf; ++b) {
      *dst[b] = p;
      p += round_up(sizes[b], align);
    }
    ws_.lds = lds;
    ws_.ldo = ldo;
    ws_.next = &next_;
  }
  const Workspace<T>& ws() const { return ws_; }
  NextRows& next() { return next_; }

 private:
  std::vector<T> buf_;
  Workspace<T> ws_;
  NextRows next_;
};

// ------------------------------------------------------------------ next task's rows (NextRows)
// Tasks are claimed dynamically, so the thread's next task is a guess: the one nt tasks on, which is what
// it gets while the threads keep pace. A wrong guess costs only the bandwidth (the prefetches are reads).
// Measured (AMD EPYC Zen 4 VM, old / new build alternating): in the GPT training step, attention backward
// 11.6-12.0 -> 10.3-11.1 ms a step (L4 T128 hd32, 1 thread), 6.2-7.7 -> 5.5-6.9 (2 threads), forward
// unchanged; L6 T256 hd64, 1 thread: forward 35.9-36.6 -> 34.2 ms, backward 81.5-82.5 -> 74.9-75.1, the
// step 1428-1436 -> 1385-1387 ms. dev/attn_ab.cpp with the operands evicted before each call: fwd + bwd
// 8-14% faster; on operands hot from the previous call 0-5% slower (prefetches that hit).
template <class T>
void plan_rows(NextRows& nx, const T* base, const Rows& rows, const AttnArgs<T>& a, index_t bh, index_t t0,
               index_t n, index_t width) {
  constexpr index_t item = sizeof(T);
  if (n > 0) nx.walk.add_rows(base + a.at(rows, bh, t0), width * item, n, rows.st * item);
}

// Query block i0 of head bh in the forward: its q rows and the k, v rows it sees; spread over the current
// task's `rows` score rows.
template <class T>
void plan_forward(NextRows& nx, const AttnArgs<T>& a, index_t bh, index_t i0, index_t rows) {
  nx.clear();
  const index_t mr = std::min(a.br, a.Tq - i0), kend = a.key_end(i0 + mr - 1);
  plan_rows(nx, a.q, a.q_rows, a, bh, i0, mr, a.D);
  plan_rows(nx, a.k, a.k_rows, a, bh, 0, kend, a.D);
  plan_rows(nx, a.v, a.v_rows, a, bh, 0, kend, a.Dv);
  nx.spread(rows);
}

// Head bh in the per-head backward: its q, k, v, out and dout rows; spread over the score rows one head's
// task runs (every query block that sees each key block).
template <class T>
void plan_backward(NextRows& nx, const AttnArgs<T>& a, index_t bh) {
  nx.clear();
  plan_rows(nx, a.q, a.q_rows, a, bh, 0, a.Tq, a.D);
  plan_rows(nx, a.k, a.k_rows, a, bh, 0, a.Tk, a.D);
  plan_rows(nx, a.v, a.v_rows, a, bh, 0, a.Tk, a.Dv);
  plan_rows(nx, static_cast<const T*>(a.out), a.out_rows, a, bh, 0, a.Tq, a.Dv);
  plan_rows(nx, a.dout, a.dout_rows, a, bh, 0, a.Tq, a.Dv);
  index_t rows = 0;
  for (index_t j0 = 0; j0 < a.Tk; j0 += a.bc) rows += a.Tq - std::min(a.Tq, a.first_query(j0) / a.br * a.br);
  nx.spread(rows);
}

// Block sizes default when unset; the causal offset is clamped to [-(Tq+1), Tk]
// (all values beyond mean "no key" / "every key"), which keeps i + offset from
// overflowing.
template <class T>
AttnArgs<T> normalised(const AttnArgs<T>& args, index_t default_bc) {
  AttnArgs<T> a = args;
  if (a.br <= 0) a.br = kBlockQ;
  if (a.bc <= 0) a.bc = a.Tk <= kBlockK ? kBlockK : default_bc;  // short Tk: one block of kBlockK either way
  a.causal_offset = std::min(a.Tk, std::max(-(a.Tq + 1), a.causal_offset));
  return a;
}

// Multiply-adds of the whole problem, halved under a causal mask (roughly).
template <class T>
index_t work_of(const AttnArgs<T>& a, index_t gemms_per_pair) {
  const double w = double(a.BH) * double(a.Tq) * double(a.Tk) * double(a.D + a.Dv) * double(gemms_per_pair) / 2.0 *
                   (a.causal ? 0.5 : 1.0);
  return w > 4e18 ? index_t(4e18) : static_cast<index_t>(w);
}

}  // namespace

template <class T>
void attention_forward(const AttnArgs<T>& args) {
  const AttnArgs<T> a = normalised(args, kBlockKForward);
  const index_t nqb = (a.Tq + a.br - 1) / a.br;
  const index_t ntasks = a.BH * nqb;
  if (ntasks == 0) return;
  const int nt = static_cast<int>(std::min<index_t>(threads_for(work_of(a, 2)), ntasks));
  const Kernels<T> K = kernels<T>();
  std::vector<Scratch<T>> scratch;  // allocated here, so that a failure throws in the caller's thread
  scratch.reserve(nt);
  for (int t = 0; t < nt; ++t) scratch.emplace_back(a, false);

  // task t: head t / nqb, query block nqb - 1 - t % nqb
  const auto query_block = [nqb, &a](index_t t) { return (nqb - 1 - t % nqb) * a.br; };
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (index_t t = 0; t < ntasks; ++t) {
    const index_t bh = t / nqb, i0 = query_block(t);
    Scratch<T>& s = scratch[thread_id()];
    if (t + nt < ntasks) {  // the rows of the task nt on, over this task's score rows
      const index_t mr = std::min(a.br, a.Tq - i0), kend = a.key_end(i0 + mr - 1);
      plan_forward(s.next(), a, (t + nt) / nqb, query_block(t + nt), mr * ((kend + a.bc - 1) / a.bc));
    } else {
      s.next().clear();
    }
    K.forward_block(a, s.ws(), bh, i0);
  }
}

// Backward threading. The race is on the gradient rows: dK_j/dV_j collect one
// term per query block and dQ_i one per key block. Two race-free schedules:
//
//   per_bh: one task per head. A thread runs Algorithm 2 for the whole head
//     (key blocks outside, query blocks inside), so it alone writes that head's
//     dQ, dK and dV: no atomics, no extra memory, no recomputation (5 block
//     GEMMs per block pair). Needs enough heads to keep the threads busy.
//   split: pass 1, one task per (bh, key block), writes dK_j and dV_j; pass 2,
//     one task per (bh, query block), writes dQ_i. Every task owns its output
//     rows, and there are many tasks even for one head, at the price of
//     recomputing S, P, dP and dS in both passes (7 block GEMMs per pair instead
//     of 5). We prefer this to FlashAttention-2's per-thread dQ buffers, which
//     would cost threads x Tq x D memory and a reduction.
//
// automatic: per_bh unless the heads fill fewer than 3/4 of the thread-rounds
// (e.g. BH = 1, or BH = 5 on 4 threads), where split's parallelism wins over its
// extra 40% of flops.
template <class T>
void attention_backward(const AttnArgs<T>& args, BwdStrategy strategy) {
  AttnArgs<T> a = normalised(args, kBlockK);
  if (a.BH == 0) return;
  const index_t nqb = (a.Tq + a.br - 1) / a.br, nkb = (a.Tk + a.bc - 1) / a.bc;
  int nt = threads_for(work_of(a, 4));
  if (strategy == BwdStrategy::automatic) {
    const index_t rounds = (a.BH + nt - 1) / nt;
    strategy = (nt == 1 || 4 * a.BH >= 3 * rounds * nt) ? BwdStrategy::per_bh : BwdStrategy::split;
  }
  if (strategy == BwdStrategy::per_bh) nt = static_cast<int>(std::min<index_t>(nt, a.BH));
  else nt = static_cast<int>(std::max<index_t>(1, std::min<index_t>(nt, a.BH * std::max(nqb, nkb))));

  std::vector<T> delta(static_cast<size_t>(a.BH * a.Tq));
  a.delta = delta.data();
  const Kernels<T> K = kernels<T>();
  std::vector<Scratch<T>> scratch;
  scratch.reserve(nt);
  for (int t = 0; t < nt; ++t) scratch.emplace_back(a, true);
  const bool per_bh = strategy == BwdStrategy::per_bh;

#pragma omp parallel num_threads(nt)
  {
    const Workspace<T>& ws = scratch[thread_id()].ws();
    if (per_bh) {
      // Heads in batch-major order: tasks that run at the same time then belong to different batch
      // entries. In a (B, T, H, D) layout (attn::Rows) the rows of heads h and h + 1 of one entry are
      // neighbours in memory, and two threads writing their gradients would share cache lines (measured:
      // 2-thread backward 30% slower in head order).
      const index_t nb = a.BH / a.H;
      const auto head = [nb, &a](index_t t) { return (t % nb) * a.H + t / nb; };
#pragma omp for schedule(dynamic, 1)
      for (index_t t = 0; t < a.BH; ++t) {
        const index_t bh = head(t);
        NextRows& next = scratch[thread_id()].next();
        if (t + nt < a.BH) plan_backward(next, a, head(t + nt));  // the head nt on
        else next.clear();
        K.backward_delta(a, bh, delta.data());  // this head's D_i (only this task reads them)
        // dq rows of the query blocks before the first one key block 0 visits (backward_key_block)
        // (all of them when there are no keys)
        zero_rows(a.dq + a.at(a.dq_rows, bh, 0), nkb == 0 ? a.Tq : std::min(a.Tq, a.first_query(0) / a.br * a.br),
                  a.D, a.dq_rows.st);
        for (index_t kb = 0; kb < nkb; ++kb) K.backward_key_block(a, ws, bh, kb * a.bc, true);
      }
    } else {
#pragma omp for schedule(static)
      for (index_t bh = 0; bh < a.BH; ++bh) K.backward_delta(a, bh, delta.data());
      // (implicit barrier: every D_i is ready)
#pragma omp for schedule(dynamic, 1)
      for (index_t t = 0; t < a.BH * nkb; ++t) K.backward_key_block(a, ws, t / nkb, (t % nkb) * a.bc, false);
#pragma omp for schedule(dynamic, 1)
      for (index_t t = 0; t < a.BH * nqb; ++t)  // last query blocks (most keys) first
        K.backward_query_block(a, ws, t / nqb, (nqb - 1 - t % nqb) * a.br);
    }
  }
}

template void attention_forward<float>(const AttnArgs<float>&);
template void attention_forward<double>(const AttnArgs<double>&);
template void attention_backward<float>(const AttnArgs<float>&, BwdStrategy);
template void attention_backward<double>(const AttnArgs<double>&, BwdStrategy);

}  // namespace attn
}  // namespace pe
