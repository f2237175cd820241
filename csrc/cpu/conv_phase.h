// Internal to the conv family (conv.cpp): the forward pass of a stride-2 convolution (ResNet's 3x3
// downsampling rows) through the polyphase components of the input, float on AVX-512.
//
// Tap (i, j) of output (oh, ow) reads x[2 oh + i - ph, 2 ow + j - pw]: with e_i = floor((i - ph) / 2) and
// a = (i - ph) mod 2 (f_j, b likewise for columns) that is row oh + e_i of the input rows of parity a and
// column ow + f_j of the columns of parity b. So the image is split once into its four phase planes
// P_ab[c] (Hp x Wp, rows and columns shifted by the smallest e and f, zero where they fall outside x), and
// the im2col row of k = (c, i, j) over one output row is then a contiguous run of P_ab[c]: no stride-2
// gather per tap and no padding test per run (the planes carry the zeros).
//
// The GEMM runs on the micro-kernel without the driver: y (O, L) = W (O, K) @ cols (K, L), K = C KH KW.
// W is packed once per call into MR-row micro-panels per depth block, shared by the threads, each panel
// where it is first needed (PackedW: the pack then feeds its first products from cache); the B
// micro-panels (NR = 32 output positions, two vectors of 16) are written straight from the phase planes,
// each half-panel by a few masked loads (one per output row it covers, lanes lined up with the row's
// columns; the offsets depend on the panel only, not on k), so the im2col matrix is never formed and
// nothing is packed twice. Images with few output positions go several to a unit (columns side by side,
// C computed into a buffer and copied out per image); a unit of one image writes y in place. The bias is
// one more depth row of the GEMM (W's column K is b, B's row K ones): no pass over y to start C as the bias
// (5% of the 64->128 56x56 forward), and the sum is the same whether a unit holds one image or several.
// The buffers are the calling thread's, kept between calls (Scratch), 64-byte aligned and not zeroed
// (every value read is written first). While a thread runs the products of one W panel it prefetches the
// W rows of the panel it packs next, if no thread has yet: a W used by few columns (256->512 14x14 on one
// thread: 4.7 MB for 392 columns) is read once per call, and its pack then reads L2. When each W panel
// serves at most two column blocks in the call, the full panels are not packed at all: the micro-kernel
// reads them in place from W's rows (micro_rows, the same sums as the packed tile; 256->512 14x14 on one
// thread 7% faster); the partial last panel and the block with the bias column are packed.
// Each output is summed over k in depth blocks in a fixed order: the result does not depend on the threads.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "cpu/conv.h"
#include "cpu/conv_panels.h"
#include "cpu/gemm_kernel.h"
#include "cpu/gemm_trace.h"
#include "cpu/scratch.h"

#if PE_X86
#include <immintrin.h>
#endif

namespace pe {
namespace cpu {
namespace phase {

inline index_t floor_div2(index_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

// Geometry of the phase planes of one image.
struct Geo {
  index_t e0, f0;   // smallest row / column shift (floor((0 - ph) / 2), floor((0 - pw) / 2))
  index_t Hp, Wp;   // plane rows and columns
  index_t plane;    // Hp * Wp
  index_t image;    // 4 C plane: one image's planes, [a][b][c][Hp][Wp]
};

inline Geo geometry(const ConvShape& s) {
  Geo g;
  g.e0 = floor_div2(-s.ph), g.f0 = floor_div2(-s.pw);
  g.Hp = s.Ho + floor_div2(s.KH - 1 - s.ph) - g.e0;
  g.Wp = s.Wo + floor_div2(s.KW - 1 - s.pw) - g.f0;
  g.plane = g.Hp * g.Wp;
  g.image = 4 * s.C * g.plane;
  return g;
}

// Whether the phase path takes this convolution (float, AVX-512; the caller checks the dtype).
inline bool applies(const ConvShape& s) {
#if PE_X86
  return isa() == Isa::avx512 && s.sh == 2 && s.sw == 2 && s.dh == 1 && s.dw == 1 && s.KH >= 2 && s.KW >= 2 &&
         s.G == 1 && s.Ho > 0 && s.Wo > 0;
#else
  (void)s;
  return false;
#endif
}

// The buffers of one call: per thread the phase planes of m images, one packed B block and (m > 1) the C of
// the unit; shared, the packed W.
constexpr index_t kKC = 384, kNC = 512;  // depth and width of a B block (the GEMM driver's float blocking)
constexpr int kMR = gemm_detail::TileAvx512<float>::MR, kNR = gemm_detail::TileAvx512<float>::NR;


struct Plan {
  index_t m, units;          // images per unit, units
  index_t K, D, Opad;        // depth of x's columns, of the GEMM (K + 1 with the bias row), O rounded up to MR
  index_t nkb, kc;           // depth blocks, their depth (the last may be shorter)
  index_t cols, ncb, nc;     // columns of a unit (m L), column blocks, their width (multiple of NR)
  index_t b_at, a_at, c_at;  // a thread's packed B, own A panel and unit C: floats from its planes (multiples of 16)
  index_t per_thread;        // floats per thread (a multiple of 16: every buffer 64-byte aligned)
};

inline Plan plan(const ConvShape& s, index_t m, bool bias) {
  Plan p;
  const Geo g = geometry(s);
  p.m = m, p.units = ceil_div(s.N, m);
  p.K = s.C * s.KH * s.KW, p.D = p.K + (bias ? 1 : 0), p.Opad = round_up(s.O, kMR);
  p.nkb = ceil_div(p.D, kKC), p.kc = ceil_div(p.D, p.nkb);
  p.cols = m * s.Ho * s.Wo;
  p.ncb = ceil_div(p.cols, kNC), p.nc = round_up(ceil_div(p.cols, p.ncb), kNR);
  p.b_at = round_up(m * g.image, 16), p.a_at = p.b_at + round_up(p.kc * p.nc, 16);
  p.c_at = p.a_at + round_up(p.kc * kMR, 16);
  p.per_thread = p.c_at + (m > 1 ? round_up(s.O * p.cols, 16) : 0);
  return p;
}

inline index_t workspace_floats(const ConvShape& s, index_t m, int threads) {
  const Plan p = plan(s, m, true);
  return threads * p.per_thread + p.D * p.Opad;
}

#if PE_X86
// Phase planes of one image x (C, H, W) into P ([a][b][c][Hp][Wp]). Each plane row is written in chunks of
// 16 columns V0 .. V0 + 15 (both column parities at once): the 32 input columns 2 (V0 + f0) .. + 31 are two
// masked loads (lanes outside the row are zeros: the padding) and one permute per parity; the masks and
// offsets depend on the column geometry only, so they are worked out once. Input rows are read in order.
struct Chunk {
  index_t off;            // first input column read (may be negative: those lanes are masked off)
  __mmask16 lo, hi, out;  // valid input lanes 0..15, 16..31; plane columns written
};

inline std::vector<Chunk> chunks(const ConvShape& s, const Geo& g) {
  std::vector<Chunk> ch(static_cast<size_t>(ceil_div(g.Wp, 16)));
  for (index_t q = 0; q < static_cast<index_t>(ch.size()); ++q) {
    Chunk& k = ch[static_cast<size_t>(q)];
    k.off = 2 * (16 * q + g.f0);
    unsigned lo = 0, hi = 0;
    for (int t = 0; t < 32; ++t) {
      const index_t col = k.off + t;
      if (col >= 0 && col < s.W) (t < 16 ? lo : hi) |= 1u << (t & 15);
    }
    const index_t n = std::min<index_t>(16, g.Wp - 16 * q);
    k.lo = static_cast<__mmask16>(lo), k.hi = static_cast<__mmask16>(hi);
    k.out = static_cast<__mmask16>(n >= 16 ? 0xFFFFu : (1u << n) - 1);
  }
  return ch;
}

PE_TARGET_AVX512 inline void split(const float* x, float* P, const ConvShape& s, const Geo& g,
                                   const std::vector<Chunk>& ch) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
  const index_t nch = static_cast<index_t>(ch.size());
  constexpr index_t ahead = 12;  // rows: each row read asks for the row this far ahead (the image is contiguous)
  const index_t rows = s.C * s.H;
  for (index_t c = 0; c < s.C; ++c) {
    const float* xc = x + c * s.H * s.W;
    for (index_t U = 0; U < g.Hp; ++U)
      for (int a = 0; a < 2; ++a) {
        float* d0 = P + ((2 * a) * s.C + c) * g.plane + U * g.Wp;
        float* d1 = d0 + s.C * g.plane;
        const index_t r = 2 * (U + g.e0) + a;
        if (r < 0 || r >= s.H) {
          std::memset(d0, 0, static_cast<size_t>(g.Wp) * sizeof(float));
          std::memset(d1, 0, static_cast<size_t>(g.Wp) * sizeof(float));
          continue;
        }
        const float* row = xc + r * s.W;
        if (c * s.H + r + ahead < rows)
          for (index_t l = 0; l < s.W; l += 16)
            _mm_prefetch(reinterpret_cast<const char*>(row + ahead * s.W + l), _MM_HINT_T0);
        for (index_t q = 0; q < nch; ++q) {
          const Chunk& k = ch[static_cast<size_t>(q)];
          const __m512 lo = _mm512_maskz_loadu_ps(k.lo, row + k.off);
          const __m512 hi = _mm512_maskz_loadu_ps(k.hi, row + k.off + 16);
          _mm512_mask_storeu_ps(d0 + 16 * q, k.out, _mm512_permutex2var_ps(lo, ev, hi));
          _mm512_mask_storeu_ps(d1 + 16 * q, k.out, _mm512_permutex2var_ps(lo, od, hi));
        }
      }
  }
}

// A run of lanes of a half-panel that reads one output row: lanes in `mask`, lane l at base_k + off + l.
struct Seg {
  index_t off;
  __mmask16 mask;
};

// Segments of every half-panel of the column block [j0, j0 + nc) (nc a multiple of NR): seg[first[h] ..
// first[h + 1]) for half-panel h. Columns q >= cols get no lane (zero).
inline void segments(const ConvShape& s, const Geo& g, index_t j0, index_t nc, index_t cols, std::vector<Seg>& seg,
                     std::vector<index_t>& first) {
  const index_t L = s.Ho * s.Wo, halves = nc / 16;
  seg.clear();
  first.assign(static_cast<size_t>(halves + 1), 0);
  for (index_t h = 0; h < halves; ++h) {
    first[static_cast<size_t>(h)] = static_cast<index_t>(seg.size());
    index_t l = 0;
    while (l < 16) {
      const index_t q = j0 + 16 * h + l;
      if (q >= cols) break;
      const index_t n = q / L, rem = q % L, oh = rem / s.Wo, ow = rem % s.Wo;
      const index_t len = std::min<index_t>({16 - l, s.Wo - ow, cols - q});
      const unsigned bits = ((len >= 16 ? 0xFFFFu : ((1u << len) - 1)) << l) & 0xFFFFu;
      seg.push_back({n * g.image + oh * g.Wp + ow - l, static_cast<__mmask16>(bits)});
      l += len;
    }
  }
  first[static_cast<size_t>(halves)] = static_cast<index_t>(seg.size());
}

// B block: depth rows [p0, p0 + kc) x the block's half-panels, from the planes P (k's base: P + kbase[k])
// for the first kx, ones (the bias row) for the rest.
PE_TARGET_AVX512 inline void pack_b(float* bp, const float* P, const index_t* kbase, index_t p0, index_t kc,
                                    index_t kx, const Seg* seg, const index_t* first, index_t halves) {
  for (index_t h = 0; h < halves; ++h) {
    float* d = bp + (h / 2) * kc * kNR + (h % 2) * 16;
    for (index_t p = kx; p < kc; ++p) _mm512_storeu_ps(d + p * kNR, _mm512_set1_ps(1.f));  // the bias row
    const index_t kc = kx;  // (the rows from the planes)
    const Seg* s0 = seg + first[h];
    const index_t ns = first[h + 1] - first[h];
    if (ns == 1 && s0->mask == 0xFFFF) {  // one output row covers the half-panel
      const index_t off = s0->off;
      for (index_t p = 0; p < kc; ++p) _mm512_storeu_ps(d + p * kNR, _mm512_loadu_ps(P + kbase[p0 + p] + off));
      continue;
    }
    if (ns == 2) {  // two output rows (the common case for widths below 32)
      const index_t o0 = s0[0].off, o1 = s0[1].off;
      const __mmask16 m0 = s0[0].mask, m1 = s0[1].mask;
      for (index_t p = 0; p < kc; ++p) {
        const float* base = P + kbase[p0 + p];
        _mm512_storeu_ps(d + p * kNR, _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(m0, base + o0), m1, base + o1));
      }
      continue;
    }
    for (index_t p = 0; p < kc; ++p) {
      const float* base = P + kbase[p0 + p];
      __m512 v = _mm512_setzero_ps();
      for (index_t t = 0; t < ns; ++t) v = _mm512_mask_loadu_ps(v, s0[t].mask, base + s0[t].off);
      _mm512_storeu_ps(d + p * kNR, v);
    }
  }
}

// The packed W, shared by the threads: depth block kb at ap + kb kc Opad, its panel r at + r kc' MR (kc'
// the block's depth). Each panel is packed where it is first needed, by the first thread to claim it (it
// then sits in that thread's cache for its first products); a thread that finds it claimed but not yet
// written packs its own copy into a private panel instead of waiting. Either way the same values. Depth K
// (past W's columns) is the bias column.
class PackedW {
 public:
  PackedW(const float* w, const float* b, float* ap, const ConvShape& s, const Plan& pl)
      : w_(w), b_(b), ap_(ap), O_(s.O), K_(pl.K), Opad_(pl.Opad), npan_(pl.Opad / kMR),
        state_(new std::atomic<int>[static_cast<size_t>(pl.nkb * npan_)]) {
    for (index_t i = 0; i < pl.nkb * npan_; ++i) state_[static_cast<size_t>(i)].store(0, std::memory_order_relaxed);
  }
  // Whether panel r of depth block kb is packed (or being packed) already.
  bool claimed(index_t kb, index_t r) const {
    return state_[static_cast<size_t>(kb * npan_ + r)].load(std::memory_order_relaxed) != 0;
  }
  // Panel r of depth block kb (depth kc from p0), packed if need be; `own`: kc MR floats of the caller's.
  template <class Pack>
  const float* panel(index_t kb, index_t r, index_t p0, index_t kc, float* own, const Pack& pack) {
    float* dst = ap_ + p0 * Opad_ + r * kc * kMR;
    std::atomic<int>& st = state_[static_cast<size_t>(kb * npan_ + r)];
    if (st.load(std::memory_order_acquire) == 2) return dst;
    int expect = 0;
    const bool mine = st.compare_exchange_strong(expect, 1, std::memory_order_acq_rel);
    float* to = mine ? dst : own;
    const int rows = static_cast<int>(std::min<index_t>(kMR, O_ - r * kMR));
    const index_t kx = std::max<index_t>(0, std::min(kc, K_ - p0));  // columns of W, then the bias column
    pack(to, w_ + r * kMR * K_ + p0, K_, rows, kx);
    for (index_t p = kx; p < kc; ++p)
      for (int i = 0; i < kMR; ++i) to[p * kMR + i] = i < rows ? b_[r * kMR + i] : 0.f;
    if (mine) st.store(2, std::memory_order_release);
    return to;
  }

 private:
  const float* w_;
  const float* b_;
  float* ap_;
  index_t O_, K_, Opad_, npan_;
  std::unique_ptr<std::atomic<int>[]> state_;
};

// y = conv(x, w) + b through the phase planes, in units of m images, on nt threads.
inline void forward(const float* x, const float* w, const float* b, float* y, const ConvShape& s, index_t m, int nt) {
  using namespace gemm_detail;
  static const Kernels<float> ks = kernels_avx512<float>();
  // PE_GEMM_TRACE (dev only, gemm_trace.h; dev/conv_s2_trace.py reads it): per-thread timings, the phases
  // read here as pack A = W panels, pack B = B blocks, kernel = micro-kernels, own B = phase planes
  // (split), sum = copy out; null when off.
  namespace tr = gemm_trace;
  const std::unique_ptr<tr::Call> trace(
      tr::path() ? new tr::Call("phase_fwd", s.O, s.N * s.Ho * s.Wo, s.C * s.KH * s.KW, nt) : nullptr);
  auto resume = [&](int tid) { return trace ? trace->resume(tid) : nullptr; };
  const Geo g = geometry(s);
  const Plan pl = plan(s, m, b != nullptr);
  const bool w_in_place = pl.units * pl.ncb <= 2;  // (the kernels give the same bits either way)
  const std::vector<Chunk> chunk = chunks(s, g);
  const index_t L = s.Ho * s.Wo, KK = s.KH * s.KW;
  // k = (c, i, j): its run's start in the planes
  std::vector<index_t> kbase(static_cast<size_t>(pl.K));
  for (index_t k = 0; k < pl.K; ++k) {
    const index_t c = k / KK, i = (k % KK) / s.KW, j = k % s.KW;
    const index_t a = (i - s.ph) & 1, bb = (j - s.pw) & 1;
    kbase[static_cast<size_t>(k)] =
        ((2 * a + bb) * s.C + c) * g.plane + (floor_div2(i - s.ph) - g.e0) * g.Wp + (floor_div2(j - s.pw) - g.f0);
  }
  static thread_local Scratch tl_w, tl_buf;  // the packed W; the threads' buffers
  float* const ap = tl_w.values<float>(pl.D * pl.Opad);
  PackedW pw(w, b, ap, s, pl);
  const index_t npan = pl.Opad / kMR;
  // Units on threads when there are enough of them; else the units one at a time, each one's column
  // blocks x groups of A panels on the threads (every C tile is the same sum whoever computes it).
  const bool by_units = nt <= 1 || pl.units >= nt;
  const int team = std::max(nt, 1);
  float* const buf = tl_buf.values<float>(team * pl.per_thread);
  // the half-panel segments of each column block (the same for every unit of m images, but a last short one)
  const index_t kinds = (s.N % m) ? 2 : 1;
  std::vector<std::vector<Seg>> segs(static_cast<size_t>(kinds * pl.ncb));
  std::vector<std::vector<index_t>> firsts(static_cast<size_t>(kinds * pl.ncb));
  for (index_t kind = 0; kind < kinds; ++kind) {
    const index_t cols = (kind == 0 ? m : s.N % m) * L;
    for (index_t cb = 0; cb < pl.ncb; ++cb) {
      const index_t j0 = cb * pl.nc, nc = std::max<index_t>(0, std::min(pl.nc, round_up(cols - j0, kNR)));
      segments(s, g, j0, nc, cols, segs[static_cast<size_t>(kind * pl.ncb + cb)],
               firsts[static_cast<size_t>(kind * pl.ncb + cb)]);
    }
  }
  auto thread_buf = [&](int tid) { return buf + static_cast<size_t>(tid) * static_cast<size_t>(pl.per_thread); };
  struct Unit {
    index_t n0, cnt, cols, kind;
    float* c;
    index_t ldc;
  };
  auto unit = [&](index_t u, float* tmp) {
    Unit t;
    t.n0 = u * m, t.cnt = std::min(m, s.N - t.n0), t.cols = t.cnt * L, t.kind = t.cnt == m ? 0 : 1;
    t.c = m > 1 ? tmp : y + t.n0 * s.O * L;
    t.ldc = m > 1 ? t.cols : L;
    return t;
  };
  // Column block cb of unit t, A panels [r0, r1) starting at r0 + rot (mod the range: threads that run
  // the same panels at once start apart, so that each packs different ones), B packed into bp, own: the
  // thread's private A panel. The bias (if any) is the last depth row (pack_b's ones, PackedW's bias column).
  auto block = [&](const Unit& t, const float* P, float* bp, float* own, index_t cb, index_t r0, index_t r1,
                   index_t rot, tr::Thread* tt) {
    const index_t j0 = cb * pl.nc;
    if (j0 >= t.cols) return;
    const index_t nc = std::min(pl.nc, t.cols - j0), halves = round_up(nc, kNR) / 16;
    const std::vector<Seg>& sg = segs[static_cast<size_t>(t.kind * pl.ncb + cb)];
    const std::vector<index_t>& fs = firsts[static_cast<size_t>(t.kind * pl.ncb + cb)];
    for (index_t kb = 0; kb < pl.nkb; ++kb) {
      const index_t p0 = kb * pl.kc, kc = std::min(pl.kc, pl.D - p0), kx = std::max<index_t>(0, std::min(kc, pl.K - p0));
      {
        tr::Span span(tt, tr::kPackB);
        pack_b(bp, P, kbase.data(), p0, kc, kx, sg.data(), fs.data(), halves);
      }
      const float beta = kb ? 1.f : 0.f;
      for (index_t i = 0; i < r1 - r0; ++i) {
        const index_t r = r0 + (i + rot) % (r1 - r0);
        // The W rows of the panel this loop packs next (the next depth block's first after the last), when no
        // thread has claimed it yet: prefetched to L2 over this panel's products, one share per product, so
        // that its pack reads L2 rather than memory (a W used by few columns is read once per call).
        const float* pf = nullptr;
        index_t pf_rows = 0, pf_lines = 0;
        {
          const index_t ni = i + 1 < r1 - r0 ? i + 1 : 0, nkb = i + 1 < r1 - r0 ? kb : kb + 1;
          const index_t nr = r0 + (ni + rot) % (r1 - r0);
          if (nkb < pl.nkb && !pw.claimed(nkb, nr)) {
            const index_t np0 = nkb * pl.kc, nkc = std::max<index_t>(0, std::min(pl.kc, pl.K - np0));
            pf = w + nr * kMR * pl.K + np0;
            pf_rows = std::min<index_t>(kMR, s.O - nr * kMR);
            pf_lines = (nkc + 15) / 16 + 1;
          }
        }
        const int mm = static_cast<int>(std::min<index_t>(kMR, s.O - r * kMR));
        float* crow = t.c + r * kMR * t.ldc + j0;
        // A full panel of a block without the bias row is read in place from W's rows when W is used by at
        // most two column blocks in the call (its pack would be amortised over a few products only).
        const bool rows_a = w_in_place && mm == kMR && kx == kc;
        const float* a = w + r * kMR * pl.K + p0;
        if (!rows_a) {
          tr::Span span(tt, tr::kPackA);
          a = pw.panel(kb, r, p0, kc, own, ks.a_interleave);
        }
        tr::Span span(tt, tr::kKernel);
        const index_t calls = ceil_div(nc, kNR);
        for (index_t jr = 0; jr < nc; jr += kNR) {
          if (pf)  // rows [q pf_rows / calls, (q + 1) pf_rows / calls) of the next panel's
            for (index_t q = jr / kNR, row = q * pf_rows / calls; row < (q + 1) * pf_rows / calls; ++row)
              for (index_t l = 0; l < pf_lines; ++l)
                _mm_prefetch(reinterpret_cast<const char*>(pf + row * pl.K + 16 * l), _MM_HINT_T1);
          const int n = static_cast<int>(std::min<index_t>(kNR, nc - jr));
          if (rows_a) ks.micro_rows(kc, a, pl.K, bp + (jr / kNR) * kc * kNR, crow + jr, t.ldc, n, 1.f, beta, nullptr);
          else ks.micro(kc, a, bp + (jr / kNR) * kc * kNR, crow + jr, t.ldc, mm, n, 1.f, beta, nullptr);
        }
      }
    }
  };
  auto copy_out = [&](const Unit& t, index_t o) {  // m > 1: C row o of each image into y
    for (index_t k = 0; k < t.cnt; ++k) {
      float* dst = y + ((t.n0 + k) * s.O + o) * L;
      const float* src = t.c + o * t.cols + k * L;
      std::memcpy(dst, src, static_cast<size_t>(L) * sizeof(float));
    }
  };
  if (by_units) {
    const index_t busy = std::min<index_t>(team, pl.units);
    panels::par_for(pl.units, static_cast<int>(busy), [&](index_t u, int tid) {
      tr::Thread* tt = resume(tid);
      float* P = thread_buf(tid);
      const Unit t = unit(u, P + pl.c_at);
      {
        tr::Span span(tt, tr::kPackBOwn);
        for (index_t k = 0; k < t.cnt; ++k) split(x + (t.n0 + k) * s.C * s.H * s.W, P + k * g.image, s, g, chunk);
      }
      for (index_t cb = 0; cb < pl.ncb; ++cb)
        block(t, P, P + pl.b_at, P + pl.a_at, cb, 0, npan, (u % busy) * npan / busy, tt);
      if (m > 1) {
        tr::Span span(tt, tr::kSum);
        for (index_t o = 0; o < s.O; ++o) copy_out(t, o);
      }
      if (tt) ++tt->units, tr::Call::leave(tt, trace->t0());
    });
    return;
  }
  float* P = thread_buf(0);
  const index_t rgroups = std::min<index_t>(npan, 2 * team);  // A panel groups per column block
  for (index_t u = 0; u < pl.units; ++u) {
    const Unit t = unit(u, P + pl.c_at);
    panels::par_for(t.cnt, team, [&](index_t k, int tid) {
      tr::Thread* tt = resume(tid);
      {
        tr::Span span(tt, tr::kPackBOwn);
        split(x + (t.n0 + k) * s.C * s.H * s.W, P + k * g.image, s, g, chunk);
      }
      if (tt) tr::Call::leave(tt, trace->t0());
    });
    panels::par_for(pl.ncb * rgroups, team, [&](index_t i, int tid) {
      tr::Thread* tt = resume(tid);
      const index_t cb = i / rgroups, rg = i % rgroups;
      float* tb = thread_buf(tid);
      block(t, P, tb + pl.b_at, tb + pl.a_at, cb, rg * npan / rgroups, (rg + 1) * npan / rgroups, 0, tt);
      if (tt) ++tt->units, tr::Call::leave(tt, trace->t0());
    });
    if (m > 1)
      panels::par_for(s.O, team, [&](index_t o, int tid) {
        tr::Thread* tt = resume(tid);
        {
          tr::Span span(tt, tr::kSum);
          copy_out(t, o);
        }
        if (tt) tr::Call::leave(tt, trace->t0());
      });
  }
}
#endif

}  // namespace phase
}  // namespace cpu
}  // namespace pe
