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
// Threads: the whole time loop is one OpenMP region (a GEMM and a cell kernel per step paid a fork/join
// and a thread wake-up per kernel, as much as the step's arithmetic, ~0.5 MFMA at B = 32, H = 128).
// Rows of the batch are independent sequences, so with rows enough (>= 8 per thread) thread k owns
// rows [r0, r1) and every unit: it never reads another thread's state, and the threads never meet
// until the region ends. With fewer rows, thread k owns hidden units [u0, u1) and hence the gate
// columns g*H + u of those units; each step it runs its slice of the recurrent GEMM and of the cell,
// then the threads meet at one barrier (step t + 1 reads all of h_t), a spinning one (SpinBarrier:
// OpenMP's sleeps once its brief spin is over, or at once under OMP_WAIT_POLICY=PASSIVE). Either way
// the step's GEMM runs on the calling thread as micro-kernel calls on weights packed once per sequence
// (StepGemm); on one thread the region saves the Python loop.
// Backward keeps the gradient of each row's state in a carried (B, H) array dh (as dc for the LSTM's
// cell state): in: dL/dh_n, out: dL/dh_0; a row that has not started (going backwards) keeps its
// dL/dh_n until its last step is reached.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/gemm_kernel.h"
#include "cpu/prefetch_ahead.h"
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

// ------------------------------------------------------------------ GEMM slices

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

// The GEMM family's micro-kernels for the SIMD level in use (gemm_kernel.h), or none on the generic
// level (its kernels are private to gemm.cpp): StepGemm then calls gemm_slice every step.
template <class T>
struct Tiles {
  const gemm_detail::Kernels<T>* ks = nullptr;
  int MR = 0, NR = 0;
};

template <class T>
Tiles<T> tiles_for_isa() {
  Tiles<T> t;
#if PE_X86
  using namespace gemm_detail;
  if (isa() == Isa::avx512) {
    static const Kernels<T> k = kernels_avx512<T>();
    t.ks = &k, t.MR = TileAvx512<T>::MR, t.NR = TileAvx512<T>::NR;
  } else if (isa() == Isa::avx2) {
    static const Kernels<T> k = kernels_avx2<T>();
    t.ks = &k, t.MR = TileAvx2<T>::MR, t.NR = TileAvx2<T>::NR;
  }
#endif
  return t;
}

// What the next step will read (and write), touched a share at a time between this step's micro-kernel
// calls. A thread's rows of step t's G (and dG, Cs) are one contiguous block, but the blocks of successive
// steps lie a whole step's rows apart (forward) or go backwards (backward), and the arrays were written long
// before (G by the input projection, 6.5 MB at B 32, T 100, H 128: out of L2), so the cell's first touches
// of each step's rows wait on L3 (backward sequence 4-9% less CPU with the prefetch, 1 thread, L2 flushed
// between calls; forward within noise). The lines are spread over the step's micro-kernel calls (a burst of
// ~600 prefetches would hold up the GEMM's own loads). Prefetches only: the bits do not change.
// set_recurrence_prefetch(false) (lstm.h) turns it off, an A/B switch; on by default.
bool recurrence_prefetch();  // lstm.cpp

using pe::Ahead;  // (prefetch_ahead.h)

// One thread's share of a recurrent product, run every step:  C_s (+)= A op(W_s)  for the column
// segments s it owns (the LSTM forward: one per gate, W_s = rows g H + [u0, u1) of W_hh; backward: one,
// columns [u0, u1) of W_hh). The weights do not change over the sequence, so each op(W_s) (K x w) is
// packed ONCE, before the first step, into the micro-kernel's NR-column panels; a step is then only
// micro-kernel calls (A read in place where the kernel can, else its rows packed once per step for
// every segment). A gemm call per step and gate packed the same weights again every step and planned
// its work each time. Each C element is one FMA chain over p = 0 .. K-1 whatever its tile, segment and
// column, so the bits do not depend on how the rows or units are split among threads.
template <class T>
class StepGemm {
 public:
  static constexpr int kMaxSegs = 4;
  struct Seg {
    const T* w;   // op(W)(p, j) = trans ? w[j ld + p] : w[p ld + j]
    index_t ld, width;
    bool trans;
  };

  // Elements of packed storage one thread needs (0: nothing packed).
  static size_t b_elems(const Tiles<T>& tl, index_t segs, index_t width, index_t K) {
    return tl.ks ? static_cast<size_t>(segs * round_up(width, tl.NR) * K) : 0;
  }
  static size_t a_elems(const Tiles<T>& tl, index_t m, index_t K) {  // a packed tile takes MR x K whatever its rows
    return tl.ks ? static_cast<size_t>(((m + tl.MR - 1) / tl.MR + 2) * tl.MR * K) : 0;
  }

  // bbuf / abuf: b_elems / a_elems elements, 64-byte aligned (null with tl.ks null: the gemm_slice path).
  StepGemm(const Tiles<T>& tl, index_t K, T* bbuf, T* abuf) : tl_(tl), K_(K), bbuf_(bbuf), abuf_(abuf) {
    if (!bbuf_ || !abuf_) tl_.ks = nullptr;
  }

  // Adds segment number segs() (packing it when packed).
  void add(const T* w, index_t ld, bool trans, index_t width) {
    Seg& s = seg_[nseg_];
    s.w = w, s.ld = ld, s.width = width, s.trans = trans;
    off_[nseg_ + 1] = off_[nseg_] + (tl_.ks ? round_up(width, tl_.NR) * K_ : 0);
    ++nseg_;
    if (!tl_.ks) return;
    T* dst = bbuf_ + off_[nseg_ - 1];
    for (index_t jr = 0; jr < width; jr += tl_.NR) {
      const int cols = static_cast<int>(std::min<index_t>(tl_.NR, width - jr));
      if (trans)
        tl_.ks->b_interleave(dst + jr * K_, w + jr * ld, ld, cols, K_);
      else
        tl_.ks->b_copy(dst + jr * K_, w + jr, ld, cols, K_);
    }
  }
  index_t segs() const { return nseg_; }

  // The lines to touch during the runs of this step (until the next call): `calls` micro-kernel calls
  // share them (0: every segment's calls, once each).
  void ahead(const Ahead& a, index_t calls = 0) {
    ah_ = a;
    ah_.rewind();
    if (!tl_.ks || !recurrence_prefetch() || ah_.n == 0) {
      ah_.n = 0;
      return;
    }
    if (calls <= 0) {
      for (index_t s = 0; s < nseg_; ++s) calls += (seg_[s].width + tl_.NR - 1) / tl_.NR;
      calls *= ntiles();
    }
    per_call_ = (ah_.total() + std::max<index_t>(calls, 1) - 1) / std::max<index_t>(calls, 1);
  }

  // The step's A: M x K, row stride lda (plans the row tiles, packs those the kernel cannot read in place).
  void rows(index_t M, const T* a, index_t lda) {
    a_ = a, lda_ = lda;
    if (!tl_.ks) {
      M_ = M;
      return;
    }
    if (M != M_) plan(M);
    index_t i0 = 0;
    for (int j = 0; j < ntiles(); ++j) {
      const int m = tile(j);
      if (!in_place(m)) tl_.ks->a_interleave(abuf_ + j * tl_.MR * K_, a + i0 * lda, lda, m, K_);
      i0 += m;
    }
  }

  // C[:M, 0:width_s] = A op(W_s) + beta C;  c: the segment's first column, row stride ldc.
  void run(index_t s, T* c, index_t ldc, T beta) const {
    const Seg& sg = seg_[s];
    if (!tl_.ks) {
      gemm_slice<T>(M_, sg.width, K_, a_, lda_, sg.w, sg.ld, sg.trans, c, ldc, beta);
      return;
    }
    const T* bp = bbuf_ + off_[s];
    index_t i0 = 0;
    for (int j = 0; j < ntiles(); i0 += tile(j), ++j) {
      const int m = tile(j);
      T* crow = c + i0 * ldc;
      for (index_t jr = 0; jr < sg.width; jr += tl_.NR) {
        const int n = static_cast<int>(std::min<index_t>(tl_.NR, sg.width - jr));
        if (in_place(m))
          tl_.ks->micro_rows(K_, a_ + i0 * lda_, lda_, bp + jr * K_, crow + jr, ldc, n, T(1), beta, nullptr);
        else
          tl_.ks->micro(K_, abuf_ + j * tl_.MR * K_, bp + jr * K_, crow + jr, ldc, m, n, T(1), beta, nullptr);
        if (ah_.n) ah_.touch(per_call_);
      }
    }
  }

 private:

  // Row tiles of M: full MR-row tiles, then at most 3 smaller ones. The AVX-512 kernel (MR = 14) computes
  // a tile of m rows as 14, 8 or 4 rows (the narrowest that holds m), so the rest r = M mod 14 is cut
  // into 8s and 4s where that costs fewer rows: M = 16 (a thread's half of a 32-row batch) runs as
  // 8 + 8, not 14 + 2 (as 14 + 4). Every tile computes its rows the same way, so the cut does not change
  // the bits.
  void plan(index_t M) {
    M_ = M;
    const int MR = tl_.MR;
    nfull_ = M / MR;
    const int r = static_cast<int>(M % MR);
    ntail_ = 0;
    if (MR != 14 || r == 0 || r == 13) {
      if (r) tail_[ntail_++] = r;
    } else if (r <= 2 && nfull_ > 0) {  // 14 + r -> 8 + (6 + r)
      --nfull_;
      tail_[ntail_++] = 8;
      tail_[ntail_++] = 6 + r;
    } else if (r <= 8) {
      tail_[ntail_++] = r;
    } else {  // 9 .. 12 -> 8 + (r - 8)
      tail_[ntail_++] = 8;
      tail_[ntail_++] = r - 8;
    }
  }
  int ntiles() const { return static_cast<int>(nfull_) + ntail_; }
  int tile(int j) const { return j < nfull_ ? tl_.MR : tail_[j - nfull_]; }
  // A full tile read in place from rows no longer than 2 KiB (gemm.cpp's rule: longer rows stream badly).
  // The length is the depth K, whatever the stride: a batch-major da (rows T gates H apart) was just
  // written by the cell, it is in cache either way (the packed and in-place tiles give the same bits).
  bool in_place(int m) const {
    return tl_.ks->micro_rows && m == tl_.MR && K_ * static_cast<index_t>(sizeof(T)) <= 2048;
  }

  Tiles<T> tl_;
  index_t K_;
  T* bbuf_;
  T* abuf_;
  Seg seg_[kMaxSegs] = {};
  index_t off_[kMaxSegs + 1] = {};
  index_t nseg_ = 0;
  index_t M_ = -1, lda_ = 0;  // M_: the rows the tiles are planned for
  index_t nfull_ = 0;
  int tail_[3] = {0, 0, 0};
  int ntail_ = 0;
  const T* a_ = nullptr;
  mutable Ahead ah_;  // (walked by run(), which is const)
  index_t per_call_ = 0;
};

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

// ------------------------------------------------------------------ threads

// Threads for a recurrence with `gates` gate blocks: enough work per step (B gates H^2 FMAs), and
// at least 16 units each.
inline int sequence_threads(index_t B, index_t gates, index_t H) {
  const int nt = threads_for(B * gates * H * H, index_t(1) << 18);
  return static_cast<int>(std::max<index_t>(1, std::min<index_t>(nt, H / 16)));
}

// The barrier the threads meet at after every step. OpenMP's barrier sleeps in the kernel under
// OMP_WAIT_POLICY=PASSIVE (pyengine's default until 2026-12-07, now a brief spin first: _lib.py), so each
// of the T barriers was a futex wait and wake-up, as long as a step's arithmetic (~10 us at B = 32,
// H = 128 on 2 threads). This one spins (pause) for about as long as a few steps, then yields the core
// at every check, so a peer the OS holds back (a busy machine) is not kept from running. Sense by
// generation: a thread reads the generation before it arrives; the last to arrive resets the count and
// publishes the next generation (release), the others wait to see it (acquire), so every write before
// the barrier is visible after it.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait() {
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins) {
      if (spins < kSpins) {
#if PE_X86
        __builtin_ia32_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  static constexpr int kSpins = 2000;  // ~40-100 us of pause, depending on the core's pause latency
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<int> gen_{0};
  int n_;
};

// What a thread's time loop gets: the rows [r0, r1) of the batch and the units [u0, u1) it owns, and
// the barrier to meet the others at after each step (none when it owns whole rows, or on one thread).
struct Team {
  index_t r0, r1, u0, u1;
  SpinBarrier* bar;
  void barrier() const {
    if (bar) bar->wait();
  }
};

// How a recurrence splits among nt threads. Rows of the batch are independent sequences: a thread that
// owns whole rows (all units) never reads another's state, so it needs no barrier at all, and its
// weights stay in its own cache; each thread then packs all of W_hh (gates H^2 values). That needs rows
// enough for a micro-kernel tile (>= 8 each); else the threads split the hidden units and meet after
// every step. Rows are cut by work (a packed batch's rows run for different lengths, the first ones
// longest), contiguous, in order.
struct Split {
  int nt = 1;
  bool rows = false;
  std::vector<index_t> cut;  // rows split: thread k owns rows [cut[k], cut[k + 1])

  Split(const index_t* batch_sizes, index_t Tn, index_t B, index_t gates, index_t H) {
    nt = sequence_threads(B, gates, H);
    rows = nt > 1 && B >= 8 * nt;
    if (!rows) return;
    std::vector<index_t> len(static_cast<size_t>(B), 0);  // len[b]: steps row b runs
    for (index_t t = 0; t < Tn; ++t)
      for (index_t b = 0; b < batch_sizes[t]; ++b) ++len[b];
    index_t total = 0;
    for (index_t b = 0; b < B; ++b) total += len[b];
    cut.assign(static_cast<size_t>(nt) + 1, B);
    cut[0] = 0;
    index_t acc = 0, k = 1;
    for (index_t b = 0; b < B && k < nt; ++b) {
      acc += len[b];
      while (k < nt && acc * nt >= total * k) cut[k++] = b + 1;
    }
  }
  index_t units_max(index_t H) const { return rows ? H : (H + nt - 1) / nt; }
  index_t rows_max(index_t B) const {
    if (!rows) return B;
    index_t m = 0;
    for (int k = 0; k < nt; ++k) m = std::max(m, cut[k + 1] - cut[k]);
    return m;
  }
};

// Runs steps(team, k) once per thread, k its index in [0, nt) (-1: no buffer of its own). If OpenMP
// gives a smaller team than nt, every thread of it sees so, and thread 0 runs the whole recurrence.
template <class Steps_>
void over_team(const Split& sp, index_t B, index_t H, Steps_&& steps) {
  const int nt = sp.nt;
  if (nt <= 1) {
    steps(Team{0, B, 0, H, nullptr}, 0);
    return;
  }
#if defined(PYENGINE_OPENMP)
  SpinBarrier bar(nt);
#pragma omp parallel num_threads(nt)
  {
    const int k = vm::thread_id(), n = vm::team_size();
    if (n != nt) {
      if (k == 0) steps(Team{0, B, 0, H, nullptr}, -1);  // without the buffers (sized for nt threads)
    } else if (sp.rows) {
      steps(Team{sp.cut[k], sp.cut[k + 1], 0, H, nullptr}, k);
    } else {
      steps(Team{0, B, H * k / n, H * (k + 1) / n, &bar}, k);
    }
  }
#else
  (void)B, (void)H;
#endif
}

// One 64-byte aligned buffer of `per` elements for each of nt threads (the packed weights and A rows
// of StepGemm); allocated before the parallel region, which must not throw.
template <class T>
class ThreadBuffers {
 public:
  ThreadBuffers(int nt, size_t per) : per_((per + 15) / 16 * 16) {
    const size_t bytes = std::max<size_t>(64, (per_ * nt * sizeof(T) + 63) / 64 * 64);
    p_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!p_) throw std::bad_alloc();
  }
  ~ThreadBuffers() { std::free(p_); }
  ThreadBuffers(const ThreadBuffers&) = delete;
  ThreadBuffers& operator=(const ThreadBuffers&) = delete;
  T* at(int k) const { return p_ + per_ * static_cast<size_t>(k); }

 private:
  size_t per_;
  T* p_;
};

// ------------------------------------------------------------------ the two time loops

// Forward: for t = 0 .. T-1, each thread runs step(st, t, r0, m, u0, u1, gm) (its slice of the recurrent
// GEMM and of the cell: rows [r0, r0 + m) of step t's, units [u0, u1)), then (units split) the threads
// meet at the barrier. gm: the thread's StepGemm with one segment per gate g < gates, W_g = w_hh rows
// g H + [u0, u1), depth H (gm.rows(m, h_prev + r0 H, H) then gm.run(g, C + r0 ldc + g H + u0, ldc, beta)
// computes those rows of C[:, g H + u0 : g H + u1]; gm.ahead between the two prefetches what the next step
// will read).
template <class T, class Step>
void forward_steps(const index_t* batch_sizes, index_t Tn, index_t B, index_t gates, index_t H, const T* w_hh,
                   Step&& step) {
  const Steps st(batch_sizes, Tn, B);
  const Split sp(batch_sizes, Tn, B, gates, H);
  const Tiles<T> tl = tiles_for_isa<T>();
  const size_t nb = StepGemm<T>::b_elems(tl, gates, sp.units_max(H), H);
  const size_t na = StepGemm<T>::a_elems(tl, sp.rows_max(B), H);
  ThreadBuffers<T> buf(sp.nt, nb + na);
  over_team(sp, B, H, [&](const Team& team, int k) {
    const bool own = tl.ks && k >= 0;
    StepGemm<T> gm(tl, H, own ? buf.at(k) : nullptr, own ? buf.at(k) + nb : nullptr);
    if (team.r0 >= team.r1) return;  // no rows (a rows split of a short batch)
    for (index_t g = 0; g < gates; ++g) gm.add(w_hh + (g * H + team.u0) * H, H, true, team.u1 - team.u0);
    for (index_t t = 0; t < Tn; ++t) {
      const index_t m = std::min(st.rows(t), team.r1) - team.r0;
      if (m <= 0) break;  // batch sizes never grow again: this thread's rows (all rows, units split) are done
      step(st, t, team.r0, m, team.u0, team.u1, gm);
      team.barrier();
    }
  });
}

// Backward, for t = T-1 .. 0, each thread on its rows [r0, r0 + m) of step t's and its units:
//   dh += dH[t]                          (dL/dh_t: from the output, and carried from step t + 1)
//   da = cell(st, t, r0, m, u0, u1)      step t's gradients of the recurrent pre-activations (its rows of
//                                        da; the cell returns row 0 of the step's (bs[t], gates H) array);
//                                        the cell leaves in dh the part of dL/dh_{t-1} that does not pass
//                                        through W_hh (beta = 1: GRU), or nothing (beta = 0)
//   barrier (units split)                (the next line reads every unit's columns of da)
//   dh = da W_hh[:, u0:u1] + beta dh     this thread's part of dL/dh_{t-1}; only it reads it next step
//   dH: (N, H), or null (no gradient from the output: the classifier that reads only h_n)
//   dh: (B, H) in: dL/dh_n; out: dL/dh_0   w_hh: (gates H, H)
// next(st, t - 1, r0, m', a): adds to `a` what step t - 1 (m' rows from r0) will touch, prefetched during
// step t's GEMM when the thread owns every unit (NoAhead: nothing).
struct NoAhead {
  void operator()(const Steps&, index_t, index_t, index_t, Ahead&) const {}
};

// lda: the row stride of the cell's da (0: gates H, the packed layout).
template <class T, class Cell, class Next = NoAhead>
void backward_steps(const index_t* batch_sizes, index_t Tn, index_t B, index_t gates, index_t H, const T* w_hh,
                    const T* dH, T* dh, T beta, Cell&& cell, Next&& next = Next(), index_t lda = 0) {
  const Steps st(batch_sizes, Tn, B);
  const Split sp(batch_sizes, Tn, B, gates, H);
  const Tiles<T> tl = tiles_for_isa<T>();
  const index_t K = gates * H, ld = lda > 0 ? lda : K;
  const size_t nb = StepGemm<T>::b_elems(tl, 1, sp.units_max(H), K), na = StepGemm<T>::a_elems(tl, sp.rows_max(B), K);
  ThreadBuffers<T> buf(sp.nt, nb + na);
  over_team(sp, B, H, [&](const Team& team, int k) {
    const index_t r0 = team.r0, u0 = team.u0, u1 = team.u1;
    const bool own = tl.ks && k >= 0;
    StepGemm<T> gm(tl, K, own ? buf.at(k) : nullptr, own ? buf.at(k) + nb : nullptr);
    if (team.r0 >= team.r1) return;
    gm.add(w_hh + u0, H, false, u1 - u0);
    for (index_t t = Tn - 1; t >= 0; --t) {
      const index_t m = std::min(st.rows(t), team.r1) - r0;
      if (m <= 0) continue;  // (units split: every thread skips the same steps)
      if (dH) add_units<T>(dh + r0 * H, dH + (st.row(t) + r0) * H, m, H, u0, u1);
      const T* da = cell(st, t, r0, m, u0, u1);
      team.barrier();
      gm.rows(m, da + r0 * ld, ld);
      const index_t mn = t > 0 ? std::min(st.rows(t - 1), team.r1) - r0 : 0;
      if (mn > 0 && u0 == 0 && u1 == H) {
        Ahead a;
        next(st, t - 1, r0, mn, a);
        gm.ahead(a);
      }
      gm.run(0, dh + r0 * H + u0, H, beta);
    }
  });
}

}  // namespace rec
}  // namespace pe
