// Internal to the conv family (conv.cpp): the weight gradient of a stride-2 convolution (ResNet's 3x3
// downsampling rows) through the phase planes of the input (conv_phase.h), float on AVX-512.
//
// dW[o, c, i, j] = sum over images and output positions p of dy[o, p] x[c, 2 oh + i - ph, 2 ow + j - pw]. Tap
// t = (i, j) reads, for output (oh, ow), plane position (oh + U_t, ow + V_t) of the phase plane
// ab_t = ((i - ph) mod 2, (j - pw) mod 2) (U_t, V_t: the tap's shifts, conv_phase.h's geometry). So
// the GEMM  D (O, T C) = dy (O, depth) @ B (depth, T C), depth = images x output positions, column t C + c,
// takes B straight from the planes: held channel-blocked, Q[cb][ab][U][V][32 channels], the B micro-panel
// of tap t and channel block cb at depth p is the 32 floats at Q's position of p shifted by (U_t, V_t): one
// contiguous copy per depth step, no im2col gather and no transpose of the columns. Q is made per image in
// one pass over x (build_q: even / odd columns split and 16 x 16 blocks transposed in registers), so the
// whole input is transposed once, not once per tap. dy is packed as the A operand (MR-row
// micro-panels over the depth) once per group of images, shared by the threads.
//
// Threads own output tiles (tap x channel block x row panels of O), never a share of the depth: every tile
// sums its depth in the same fixed blocks in the same order (image groups, then depth blocks of a group,
// all a rule of the shape), so the bits do not depend on the thread count. With several image groups and a
// small D the groups are split into parts instead (wplan), each part on one thread from its Q to its own D,
// and the parts' D added in part order. D is then written into dW's (O, C, KH, KW) order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "cpu/conv_phase.h"
#include "cpu/simd.h"

namespace pe {
namespace cpu {
namespace phase {

constexpr index_t kWDepth = 1536;           // depth (output positions) of an image group, at least
constexpr index_t kWPlanes = index_t(1) << 20;  // at most this many floats of Q per group (4 MiB)
constexpr index_t kWKC = 256;               // depth blocks of a group at most this deep (equal depths)
constexpr index_t kWCB = 32;                // channels of a Q block (= the B micro-panel's NR)
constexpr index_t kWPanels = 16;            // B micro-panels of a unit's block, at most
constexpr index_t kWParts = 4;              // parts of the image groups, at most (each on one thread)
constexpr index_t kWPartD = index_t(1) << 18;  // floats of D (O T C) a part may hold (1 MiB)

struct WPlan {
  index_t T, L, m, groups;  // taps, output positions, images per group, groups
  index_t cbs, qimage;      // channel blocks, Q floats per image
  index_t depth, nkb, kc;   // a full group's depth, its depth blocks and their depth (the last may be shorter)
  index_t Opad;             // O rounded up to MR
  index_t parts;            // parts of the groups, each on one thread into its own D (1: groups in turn)
};

inline WPlan wplan(const ConvShape& s) {
  WPlan p;
  const Geo g = geometry(s);
  p.T = s.KH * s.KW, p.L = s.Ho * s.Wo;
  p.cbs = ceil_div(s.C, kWCB);
  p.qimage = p.cbs * 4 * g.plane * kWCB;
  p.m = std::max<index_t>(1, std::min<index_t>(s.N, ceil_div(kWDepth, p.L)));
  while (p.m > 1 && p.m * p.qimage > kWPlanes) --p.m;
  p.groups = ceil_div(s.N, p.m);
  p.depth = p.m * p.L;
  p.nkb = ceil_div(p.depth, kWKC), p.kc = ceil_div(p.depth, p.nkb);
  p.Opad = round_up(s.O, kMR);
  // Several groups: at most kWParts parts (a rule of the shape alone), each on one thread with its own Q,
  // packed dy and D, the parts' D added in part order at the end; where D is small enough to stay in L2.
  // Shared (every group's Q, dy and products split over all threads) the threads read what the other wrote
  // and add into D tiles the other held a group before: 64->128 56x56 at batch 8 on 2 threads of a 2-vCPU
  // AMD EPYC VM took 5.8-9.9 ms, in parts 5.1-6.0 (1 thread: 10-11.5) (dev/conv_s2_notes.md).
  p.parts = s.O * p.T * s.C <= kWPartD ? std::min(p.groups, kWParts) : 1;
  return p;
}

// Whether the weight-gradient path takes the shape (applies(s) checked by the caller): one image's Q stays
// within a few column tiles.
inline bool wgrad_fits(const ConvShape& s, index_t tile) { return wplan(s).qimage <= 4 * tile; }

// Floats the path allocates on nt threads: Q and packed dy of a group (per worker in parts), D (per part),
// and per thread a B block.
inline index_t wgrad_workspace_floats(const ConvShape& s, int nt) {
  const WPlan p = wplan(s);
  const index_t workers = p.parts > 1 ? std::min<index_t>(std::max(nt, 1), p.parts) : 1;
  return workers * (p.m * p.qimage + p.Opad * p.depth) + p.parts * s.O * p.T * s.C +
         static_cast<index_t>(std::max(nt, 1)) * p.kc * kWPanels * kWCB;
}

#if PE_X86
// Q of one image x (C, H, W): Q[cb][ab][U][V][32] (channel 32 cb + lane; lanes past C are zero), straight
// from x: per plane row, 16 channels x 32 input columns are loaded (masked to the columns inside x),
// split into their even and odd columns (phases b = 0, 1) and transposed into 16 positions of 16 channels.
PE_TARGET_AVX512 inline void build_q(const float* x, float* Q, const ConvShape& s, const Geo& g, index_t cbs) {
  using S = simd::Vec<float, Isa::avx512>;
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
  const index_t HW = s.H * s.W, cbstride = 4 * g.plane * kWCB;
  auto lanes = [](index_t lo, index_t hi) {  // mask of lanes [lo, hi) of 16, both clamped to [0, 16]
    lo = std::min<index_t>(std::max<index_t>(lo, 0), 16), hi = std::min<index_t>(std::max<index_t>(hi, lo), 16);
    return static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
  };
  for (index_t cb = 0; cb < cbs; ++cb)
    for (index_t a = 0; a < 2; ++a)
      for (index_t U = 0; U < g.Hp; ++U) {
        const index_t r = 2 * (U + g.e0) + a;
        float* q0 = Q + cb * cbstride + ((2 * a) * g.plane + U * g.Wp) * kWCB;  // phase (a, 0), row U
        float* q1 = q0 + g.plane * kWCB;                                      // phase (a, 1)
        if (r < 0 || r >= s.H) {
          std::memset(q0, 0, static_cast<size_t>(g.Wp * kWCB) * sizeof(float));
          std::memset(q1, 0, static_cast<size_t>(g.Wp * kWCB) * sizeof(float));
          continue;
        }
        for (index_t V0 = 0; V0 < g.Wp; V0 += 16) {
          const index_t nv = std::min<index_t>(16, g.Wp - V0), col0 = 2 * (V0 + g.f0);
          // input columns col0 + l, l < 32, inside [0, W); masked lanes are never read
          const __mmask16 mlo = lanes(-col0, s.W - col0), mhi = lanes(-col0 - 16, s.W - col0 - 16);
          for (index_t h = 0; h < 2; ++h) {
            __m512 e[16], o[16];
            for (index_t ch = 0; ch < 16; ++ch) {
              const index_t c = cb * kWCB + h * 16 + ch;
              if (c >= s.C) {
                e[ch] = o[ch] = _mm512_setzero_ps();
                continue;
              }
              const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(x + c * HW + r * s.W) +
                                        static_cast<std::uintptr_t>(col0 * static_cast<index_t>(sizeof(float)));
              const __m512 lo = _mm512_maskz_loadu_ps(mlo, reinterpret_cast<const float*>(at));
              const __m512 hi = _mm512_maskz_loadu_ps(mhi, reinterpret_cast<const float*>(at) + 16);
              e[ch] = _mm512_permutex2var_ps(lo, ev, hi);
              o[ch] = _mm512_permutex2var_ps(lo, od, hi);
            }
            S::transpose(e);
            S::transpose(o);
            for (index_t v = 0; v < nv; ++v) {
              _mm512_storeu_ps(q0 + (V0 + v) * kWCB + h * 16, e[v]);
              _mm512_storeu_ps(q1 + (V0 + v) * kWCB + h * 16, o[v]);
            }
          }
        }
      }
}

// B micro-panel: depth rows [0, kc) of tap t's channel block cb from Q (depth p at Q + qoff[p]).
PE_TARGET_AVX512 inline void wpack_b(float* bp, const float* Q, const index_t* qoff, index_t kc, index_t tshift,
                                     index_t cb, index_t cbstride) {
  const float* src = Q + cb * cbstride + tshift;
  for (index_t p = 0; p < kc; ++p) {
    const float* q = src + qoff[p];
    _mm512_storeu_ps(bp + p * kWCB, _mm512_loadu_ps(q));
    _mm512_storeu_ps(bp + p * kWCB + 16, _mm512_loadu_ps(q + 16));
  }
}

// dst (C, T) = src (T, C)^T: 16 channels at a time through a 16 x 16 register transpose when T <= 16
// (rows t < T of the block, zeros below; lane t of row i after it is dst[c0 + i, t]).
PE_TARGET_AVX512 inline void unshuffle(const float* src, float* dst, index_t T, index_t C) {
  using S = simd::Vec<float, Isa::avx512>;
  index_t c0 = 0;
  if (T <= 16) {
    const __mmask16 mt = static_cast<__mmask16>((1u << T) - 1);
    for (; c0 + 16 <= C; c0 += 16) {
      __m512 v[16];
      for (index_t t = 0; t < 16; ++t) v[t] = t < T ? _mm512_loadu_ps(src + t * C + c0) : _mm512_setzero_ps();
      S::transpose(v);
      for (index_t i = 0; i < 16; ++i) _mm512_mask_storeu_ps(dst + (c0 + i) * T, mt, v[i]);
    }
  }
  for (index_t c = c0; c < C; ++c)
    for (index_t t = 0; t < T; ++t) dst[c * T + t] = src[t * C + c];
}

// dw (O, C, KH, KW) of y = conv(x, w) through the phase planes, on nt threads.
inline void backward_weight(const float* dy, const float* x, float* dw, const ConvShape& s, int nt) {
  using namespace gemm_detail;
  static const Kernels<float> ks = kernels_avx512<float>();
  const Geo g = geometry(s);
  const WPlan pl = wplan(s);
  const index_t L = pl.L, T = pl.T, C = s.C, O = s.O, HW = s.H * s.W;
  const index_t cbstride = 4 * g.plane * kWCB;  // one channel block of one image in Q
  const index_t npan = pl.Opad / kMR, ldd = T * C;
  const int team = std::max(nt, 1);
  // tap t: its phase plane and shift inside a channel block of Q
  std::vector<index_t> tshift(static_cast<size_t>(T));
  for (index_t i = 0; i < s.KH; ++i)
    for (index_t j = 0; j < s.KW; ++j) {
      const index_t a = (i - s.ph) & 1, b = (j - s.pw) & 1;
      const index_t U = floor_div2(i - s.ph) - g.e0, V = floor_div2(j - s.pw) - g.f0;
      tshift[static_cast<size_t>(i * s.KW + j)] = ((2 * a + b) * g.plane + U * g.Wp + V) * kWCB;
    }
  // depth p of a group (image k, output oh, ow): its position in Q (image k's blocks at k cbs cbstride)
  std::vector<index_t> qoff(static_cast<size_t>(pl.depth));
  for (index_t p = 0; p < pl.depth; ++p) {
    const index_t k = p / L, oh = (p % L) / s.Wo, ow = p % s.Wo;
    qoff[static_cast<size_t>(p)] = k * pl.cbs * cbstride + (oh * g.Wp + ow) * kWCB;
  }
  // output units: groups of B micro-panels (tap t, channel block cb; panel t cbs + cb) of at most kWPanels,
  // their count a multiple of the threads where it can be, x groups of A panels when they are fewer than
  // the threads. Every tile of D is the same sum whoever computes it.
  const index_t npanels = T * pl.cbs;
  const int uteam = pl.parts > 1 ? 1 : team;  // in parts each part's units run on its thread
  const index_t pgroups = std::min(npanels, round_up(ceil_div(npanels, kWPanels), uteam));
  const index_t rgroups = std::min<index_t>(npan, ceil_div(uteam, pgroups)), units = pgroups * rgroups;
  const index_t per_group = ceil_div(npanels, pgroups);
  const size_t each = static_cast<size_t>(pl.kc * per_group * kWCB);
  // per worker: Q of a group, its packed dy and a B block (in parts; else Q and dy once, a B block per thread)
  const size_t qsz = static_cast<size_t>(pl.m * pl.qimage), apsz = static_cast<size_t>(pl.Opad * pl.depth);
  const int workers = pl.parts > 1 ? static_cast<int>(std::min<index_t>(team, pl.parts)) : 1;
  std::unique_ptr<float[]> wbuf(new float[static_cast<size_t>(workers) * (qsz + apsz) + static_cast<size_t>(team) * each]);
  std::unique_ptr<float[]> d(new float[static_cast<size_t>(pl.parts * O * ldd)]);  // part k's D at + k O ldd
  // group grp's Q, packed dy and products into D (its first group's products written, the later ones added),
  // on nt threads (1: all on the calling thread, whose buffers are worker w's and B block thread w's)
  auto run_group = [&](index_t grp, bool first, int nt, int w, float* dd) {
    float* q = wbuf.get() + static_cast<size_t>(w) * (qsz + apsz);
    float* ap = q + qsz;
    const index_t n0 = grp * pl.m, cnt = std::min(pl.m, s.N - n0), depth = cnt * L;
    panels::par_for(cnt, nt, [&](index_t k, int) {  // Q of the group's images
      build_q(x + (n0 + k) * C * HW, q + k * pl.qimage, s, g, pl.cbs);
    });
    // dy packed: depth block kb at ap + p0 Opad, its panel r at + r kc' MR (kc' the block's depth)
    const index_t nkb = ceil_div(depth, pl.kc);
    panels::par_for(nkb * npan, nt, [&](index_t u, int) {
      const index_t kb = u / npan, r = u % npan, p0 = kb * pl.kc, kc = std::min(pl.kc, depth - p0);
      const int rows = static_cast<int>(std::min<index_t>(kMR, O - r * kMR));
      float* dst = ap + p0 * pl.Opad + r * kc * kMR;
      for (index_t p = p0; p < p0 + kc;) {  // runs of one image
        const index_t k = p / L, l = p % L, len = std::min(p0 + kc, (k + 1) * L) - p;
        ks.a_interleave(dst + (p - p0) * kMR, dy + ((n0 + k) * O + r * kMR) * L + l, L, rows, len);
        p += len;
      }
    });
    float* bufs = wbuf.get() + static_cast<size_t>(workers) * (qsz + apsz);
    panels::par_for(units, nt, [&](index_t u, int tid) {
      const index_t pg = u / rgroups, rg = u % rgroups;
      const index_t j0 = pg * npanels / pgroups, j1 = (pg + 1) * npanels / pgroups;
      const index_t r0 = rg * npan / rgroups, r1 = (rg + 1) * npan / rgroups;
      float* bp = bufs + static_cast<size_t>(nt > 1 ? tid : w) * each;
      for (index_t kb = 0; kb < nkb; ++kb) {
        const index_t p0 = kb * pl.kc, kc = std::min(pl.kc, depth - p0);
        for (index_t j = j0; j < j1; ++j)
          wpack_b(bp + (j - j0) * kc * kWCB, q, qoff.data() + p0, kc, tshift[static_cast<size_t>(j / pl.cbs)],
                  j % pl.cbs, cbstride);
        const float* a0 = ap + p0 * pl.Opad;
        const float beta = !first || kb ? 1.f : 0.f;
        for (index_t r = r0; r < r1; ++r) {
          const int mm = static_cast<int>(std::min<index_t>(kMR, O - r * kMR));
          for (index_t j = j0; j < j1; ++j) {
            const index_t t = j / pl.cbs, c0 = (j % pl.cbs) * kWCB;
            ks.micro(kc, a0 + r * kc * kMR, bp + (j - j0) * kc * kWCB, dd + r * kMR * ldd + t * C + c0, ldd, mm,
                     static_cast<int>(std::min<index_t>(kWCB, C - c0)), 1.f, beta, nullptr);
          }
        }
      }
    });
  };
  if (pl.parts == 1) {
    for (index_t grp = 0; grp < pl.groups; ++grp) run_group(grp, grp == 0, team, 0, d.get());
  } else {  // part k: groups [k groups / parts, (k + 1) groups / parts) on one thread, into its own D
    panels::par_for(pl.parts, workers, [&](index_t k, int w) {
      const index_t g0 = k * pl.groups / pl.parts, g1 = (k + 1) * pl.groups / pl.parts;
      for (index_t grp = g0; grp < g1; ++grp) run_group(grp, grp == g0, 1, w, d.get() + k * O * ldd);
    });
  }
  // D (O, T, C) (the parts' D summed in part order) into dw (O, C, T), dw written in order
  panels::par_for(O, team, [&](index_t o, int) {
    float* row = d.get() + o * ldd;
    for (index_t k = 1; k < pl.parts; ++k) {
      const float* add = row + k * O * ldd;
      for (index_t i = 0; i < ldd; ++i) row[i] += add[i];
    }
    unshuffle(row, dw + o * ldd, T, C);
  });
}
#endif

}  // namespace phase
}  // namespace cpu
}  // namespace pe
