// Depthwise convolution, direct (see conv_depthwise.h; specification: pyengine/backend/reference/conv.py).
//
// Every pass is a correlation of one plane with its channel's KH x KW taps,
//   out[p, q] = bias + sum_{i, j} k[i, j] B(p sh + i dh, q sw + j dw),
// over a padded copy B of the plane that a thread builds in its own buffer first. B holds the zeros of the
// padding (so the loops have no edge cases, and a tap reading padding computes w * 0 exactly as the twin's
// im2col does), and stores its columns split by phase modulo the column stride: column c at (c mod sw,
// c / sw), so the taps of a strided row are unit-stride vector loads too. One output vector (W lanes of q)
// keeps its accumulator in a register over all KH KW taps (four vectors at a time for independent FMA
// chains; a 3x3 kernel keeps its nine taps in registers), and is stored once.
//   forward        B = x (padding ph, pw), stride (sh, sw), taps w
//   input grad     B = dy spread out by the stride (dy[o] at o s, zeros between) and padded by
//                  d (K - 1) - p, stride 1, taps w reversed: the transpose of the forward as a correlation
//   weight grad    dw[c, i, j] = sum_n sum_{p, q} dy[n, c, p, q] B(p sh + i dh, q sw + j dw), B = x as in
//                  the forward; one vector accumulator per tap (registers for 3x3) over the batch's planes
//   dense          (G == 1, few input channels) the C padded planes of an image built once; a register tile
//                  of 2 output rows x OB output channels x one vector of columns sums all C KH KW taps, the
//                  input gradient the same over spread dy with the weights transposed and reversed
// Threads run planes (forward, input grad), (channel, batch block) units (weight grad) or images (dense),
// one buffer each, in contiguous shares per thread (run_units).
#include "cpu/conv_depthwise.h"

// GCC 12's AVX-512 intrinsic headers trip its own -Wmaybe-uninitialized (the `__Y = __Y` "undefined vector"
// idiom, GCC PR 105593); the warning is spurious (as in attention.cpp).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "cpu/simd.h"

namespace pe {
namespace cpu {
namespace dwconv {

constexpr index_t kMaxBuffer = index_t(1) << 22;  // values in one thread's padded plane (16 MiB of float)
constexpr index_t kGrain = index_t(1) << 15;      // multiply-adds per thread, at least
constexpr index_t kMaxKW = 32;                    // kernel columns the direct kernels take (wider: the fallback)
// Dense direct kernels: output channels per register tile (2 rows x OB accumulators: 16 of AVX-512's 32
// registers, 8 of AVX2's 16); the most input values per output position they take (C KH KW) and the most
// values of an image's padded planes (so that they stay in L2).
template <Isa I>
constexpr int kDenseOB = I == Isa::avx512 ? 8 : 4;
constexpr index_t kDenseMaxK = 400;  // 16 channels of 5 x 5, 44 of 3 x 3: ResNet's layers (C >= 64) stay on the GEMM
constexpr index_t kDenseMaxBuffer = index_t(1) << 16;
// The dense K x K weight gradient (wgrad_tile, K = 3 or 5, stride 1 or 2): output channels per register tile (OB x K K
// accumulators: 18 or 25 of AVX-512's 32 registers, 9 of AVX2's 16, which takes K = 3 only), the bytes of x
// and dy per image chunk (a chunk's images stay in L2 while its tiles sweep them), and the most channels (of
// the smaller side) it takes.
template <Isa I, int K>
constexpr int kWgradOB = I == Isa::avx512 && K == 3 ? 2 : 1;
constexpr index_t kWgradChunkBytes = index_t(256) << 10;
constexpr index_t kDenseWgradMaxChannels = 32;

template <class T>
struct Wgrad {
  const T* xp;   // the chunk's x planes, padded, K copies (one per tap column): (images, C, K, Hp, Pw)
  const T* dyp;  // the chunk's dy planes, rows of Pw values (zeros past Wo): (images, O, Ho, Pw)
  index_t C, O, Ho, Wo, Hp, Pw;
};

// The padded plane: padded coordinates (r, c) hold source element ((r - pt) / uh, (c - pl) / uw) where that
// divides and lies inside (Hs, Ws), zero elsewhere. Row r starts at r rs; column c at (c % sw) pw + c / sw.
struct Layout {
  index_t Hs, Ws, uh, uw, pt, pl;  // source plane, its spreading, the padded position of its (0, 0)
  index_t rows, sw, pw;            // buffer rows, column phases, phase width
  index_t rs() const { return sw * pw; }
  index_t size() const { return rows * sw * pw; }
};

// The layout for an output of (Ho, Wo) with stride (sh, sw), dilation (dh, dw) and a KH x KW kernel; the
// phase width leaves room for a full vector read past the last output column of each tap.
inline Layout make_layout(index_t Hs, index_t Ws, index_t uh, index_t uw, index_t pt, index_t pl, index_t Ho,
                          index_t Wo, index_t KH, index_t KW, index_t sh, index_t sw, index_t dh, index_t dw,
                          index_t lanes) {
  Layout L{Hs, Ws, uh, uw, pt, pl, 0, sw, 0};
  L.rows = (Ho - 1) * sh + (KH - 1) * dh + 1;
  L.pw = Wo + lanes + (KW - 1) * dw / sw;
  return L;
}

template <class T>
struct Args {
  const T* src;   // the planes B is built from (x, or dy for the input gradient)
  const T* taps;  // KH KW per channel (reversed already for the input gradient)
  const T* bias;  // per channel, or null
  const T* dy;    // weight gradient: the output gradient
  T* out;         // output planes (forward, input grad) or dw (C, KH KW)
  T* bufs;        // one padded plane per thread
  T* part;        // weight gradient: per unit dw slots when the batch is split in nb blocks
  int tid;
  Layout L;
  index_t N, C, Ho, Wo, KH, KW, sh, sw, dh, dw;  // the correlation's output plane and geometry
  index_t src_plane;                             // Hs Ws
  index_t Og = 1, nb = 1;                        // weight gradient: outputs per input channel, batch blocks
  index_t O = 0, Opad = 0;                       // dense: output channels, rounded up to the o-block
};

// nt buffers of `each` values, zeroed: every plane a thread builds in its buffer has the same layout, so the
// padding's zeros are written once here and build() writes the source's values alone (a plane's copy is then
// its rows' data, without the zero fills that cost as much as the copy on small planes).
template <class T>
std::unique_ptr<T[]> thread_buffers(int nt, index_t each) {
  return std::unique_ptr<T[]>(new T[static_cast<size_t>(nt) * static_cast<size_t>(each)]());
}

// Writes the source plane's values at their places in B (a buffer from thread_buffers, its other values
// zero and left alone).
template <class T>
inline void build(const T* src, T* buf, const Layout& L) {
  const index_t rs = L.rs();
  const index_t r0 = std::max<index_t>(L.pt, 0), r1 = std::min(L.rows, L.pt + (L.Hs - 1) * L.uh + 1);
  for (index_t r = r0; r < r1; ++r) {
    const index_t sr = r - L.pt;
    if (sr % L.uh != 0) continue;
    T* row = buf + r * rs;
    const T* s = src + (sr / L.uh) * L.Ws;
    if (L.sw == 1 && L.uw == 1) {
      const index_t lo = std::min(std::max<index_t>(L.pl, 0), L.pw);
      const index_t hi = std::max(lo, std::min(L.pl + L.Ws, L.pw));
      if (hi > lo) std::memcpy(row + lo, s + (lo - L.pl), static_cast<size_t>(hi - lo) * sizeof(T));
      continue;
    }
    // source column m sits at padded column pc = pl + m uw, which is column pc / sw of phase pc % sw (every
    // padded column is visited once per source column, with no division in the sw = 1 and 2 cases)
    const index_t m0 = L.pl >= 0 ? 0 : (-L.pl + L.uw - 1) / L.uw;
    const index_t m1 = std::min(L.Ws, std::max<index_t>(0, (L.sw * L.pw - L.pl + L.uw - 1) / L.uw));
    if (L.sw == 1) {
      for (index_t m = m0; m < m1; ++m) row[L.pl + m * L.uw] = s[m];
    } else if (L.sw == 2) {
      for (index_t m = m0; m < m1; ++m) {
        const index_t pc = L.pl + m * L.uw;
        row[(pc & 1) * L.pw + (pc >> 1)] = s[m];
      }
    } else {
      for (index_t m = m0; m < m1; ++m) {
        const index_t pc = L.pl + m * L.uw;
        row[(pc % L.sw) * L.pw + pc / L.sw] = s[m];
      }
    }
  }
}

}  // namespace dwconv
}  // namespace cpu
}  // namespace pe

#define PE_DW_NS dw_generic
#define PE_DW_ISA Isa::generic
#define PE_DW_TARGET
#include "cpu/conv_depthwise_impl.h"
#undef PE_DW_NS
#undef PE_DW_ISA
#undef PE_DW_TARGET
#if PE_X86
#define PE_DW_NS dw_avx2
#define PE_DW_ISA Isa::avx2
#define PE_DW_TARGET PE_TARGET_AVX2
#include "cpu/conv_depthwise_impl.h"
#undef PE_DW_NS
#undef PE_DW_ISA
#undef PE_DW_TARGET
#define PE_DW_NS dw_avx512
#define PE_DW_ISA Isa::avx512
#define PE_DW_TARGET PE_TARGET_AVX512
#include "cpu/conv_depthwise_impl.h"
#undef PE_DW_NS
#undef PE_DW_ISA
#undef PE_DW_TARGET
#endif

namespace pe {
namespace cpu {
namespace dwconv {

// The ISA's copy of a per-ISA function template of conv_depthwise_impl.h (the body of the pick_* below), with
// the template arguments given after the name.
#if PE_X86
#define PE_DW_PICK(fn, ...)                                   \
  switch (isa()) {                                            \
    case Isa::avx512: return &dw_avx512::fn<__VA_ARGS__>;     \
    case Isa::avx2: return &dw_avx2::fn<__VA_ARGS__>;         \
    default: return &dw_generic::fn<__VA_ARGS__>;             \
  }
#else
#define PE_DW_PICK(fn, ...) return &dw_generic::fn<__VA_ARGS__>;
#endif

template <class T>
using RangeFn = void (*)(const Args<T>&, index_t, index_t);

template <class T>
RangeFn<T> pick_planes() {
  PE_DW_PICK(planes, T)
}

template <class T>
RangeFn<T> pick_channels() {
  PE_DW_PICK(channels, T)
}

template <class T>
using WgradFn = void (*)(const Wgrad<T>&, index_t, index_t, index_t, T*);  // images, o0, c, dw

// The SIMD copies only (the generic Vec's load_part reads its one lane whatever the mask), for K = 3 (AVX2,
// AVX-512) and 5 (AVX-512: 25 accumulators), stride S = 1 or 2; null where there is none.
template <class T, int S>
WgradFn<T> pick_wgrad_k(index_t K) {
#if PE_X86
  switch (isa()) {
    case Isa::avx512:
      return K == 3 ? &dw_avx512::wgrad_tile<T, 3, S> : K == 5 ? &dw_avx512::wgrad_tile<T, 5, S> : nullptr;
    case Isa::avx2: return K == 3 ? &dw_avx2::wgrad_tile<T, 3, S> : nullptr;
    default: return nullptr;
  }
#else
  (void)K;
  return nullptr;
#endif
}

template <class T>
WgradFn<T> pick_wgrad(index_t K, index_t S) {
  return S == 1 ? pick_wgrad_k<T, 1>(K) : S == 2 ? pick_wgrad_k<T, 2>(K) : nullptr;
}

template <class T>
using FusedFn = void (*)(const Args<T>&, const Args<T>&, T*, index_t, index_t);

template <class T>
FusedFn<T> pick_fused() {
  PE_DW_PICK(fused_backward, T)
}

inline int lanes_for_isa(int itemsize) {
  switch (isa()) {
    case Isa::avx512: return 64 / itemsize;
    case Isa::avx2: return 32 / itemsize;
    default: return 1;
  }
}

// Runs fn over [0, n) one unit at a time on nt threads, each with its own tid (its buffer), on
// pe::parallel_for's schedule: thread t starts on its own contiguous share of the units, the same on every
// call (so the planes it writes in one pass are the ones it reads in the next, in its core's cache), then
// takes what is left of the others' shares; one counter per share instead of one for all the units.
template <class T, class Fn>
void run_units(Fn fn, Args<T> a, index_t n, int nt) {
  if (nt <= 1) {
    a.tid = 0;
    fn(a, 0, n);
    return;
  }
  parallel_for(n, nt, 1, [&](index_t u) {
    Args<T> b = a;
    b.tid = vm::thread_id();
    fn(b, u, u + 1);
  });
}

inline bool takes(const ConvShape& s) {
  return s.KW <= kMaxKW && s.N > 0 && s.C > 0 && s.Ho > 0 && s.Wo > 0 && s.H > 0 && s.W > 0 && s.KH > 0 &&
         s.KW > 0 && s.sh > 0 && s.sw > 0 && s.dh > 0 && s.dw > 0;
}

}  // namespace dwconv

template <class T>
bool depthwise_forward(const T* x, const T* w, const T* b, T* y, const ConvShape& s) {
  using namespace dwconv;
  if (!takes(s)) return false;
  const index_t lanes = lanes_for_isa(sizeof(T));
  Args<T> a{};
  a.L = make_layout(s.H, s.W, 1, 1, s.ph, s.pw, s.Ho, s.Wo, s.KH, s.KW, s.sh, s.sw, s.dh, s.dw, 4 * lanes);
  if (a.L.size() > kMaxBuffer) return false;
  a.src = x, a.taps = w, a.bias = b, a.out = y;
  a.N = s.N, a.C = s.C, a.Ho = s.Ho, a.Wo = s.Wo, a.KH = s.KH, a.KW = s.KW;
  a.sh = s.sh, a.sw = s.sw, a.dh = s.dh, a.dw = s.dw, a.src_plane = s.H * s.W;
  const index_t P = s.N * s.C;
  const int nt =
      std::max(1, static_cast<int>(std::min<index_t>(threads_for(P * s.Ho * s.Wo * s.KH * s.KW, kGrain), P)));
  const auto bufs = thread_buffers<T>(nt, a.L.size());
  a.bufs = bufs.get();
  run_units(pick_planes<T>(), a, P, nt);
  return true;
}

template <class T>
bool depthwise_backward_input(const T* dy, const T* w, T* dx, const ConvShape& s) {
  using namespace dwconv;
  if (!takes(s)) return false;
  const index_t KK = s.KH * s.KW;
  for (index_t t = 0; t < s.C * KK; ++t)
    if (!std::isfinite(w[t])) return false;  // the fallback keeps the twin's 0 * w only where a tap was read
  const index_t lanes = lanes_for_isa(sizeof(T));
  Args<T> a{};
  // dy spread by the stride, padded by d (K - 1) - p; the correlation's output is dx (H, W), stride 1
  a.L = make_layout(s.Ho, s.Wo, s.sh, s.sw, s.dh * (s.KH - 1) - s.ph, s.dw * (s.KW - 1) - s.pw, s.H, s.W, s.KH,
                    s.KW, 1, 1, s.dh, s.dw, 4 * lanes);
  if (a.L.size() > kMaxBuffer) return false;
  std::vector<T> flipped(static_cast<size_t>(s.C * KK));
  for (index_t c = 0; c < s.C; ++c)
    for (index_t t = 0; t < KK; ++t) flipped[c * KK + t] = w[c * KK + (KK - 1 - t)];
  a.src = dy, a.taps = flipped.data(), a.bias = nullptr, a.out = dx;
  a.N = s.N, a.C = s.C, a.Ho = s.H, a.Wo = s.W, a.KH = s.KH, a.KW = s.KW;
  a.sh = 1, a.sw = 1, a.dh = s.dh, a.dw = s.dw, a.src_plane = s.Ho * s.Wo;
  const index_t P = s.N * s.C;
  const int nt = std::max(1, static_cast<int>(std::min<index_t>(threads_for(P * s.H * s.W * KK, kGrain), P)));
  const auto bufs = thread_buffers<T>(nt, a.L.size());
  a.bufs = bufs.get();
  run_units(pick_planes<T>(), a, P, nt);
  return true;
}

template <class T>
bool depthwise_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s) {
  using namespace dwconv;
  if (!takes(s) || s.G != s.C || s.O % s.G != 0 || s.KH * s.KW > 25) return false;
  const index_t lanes = lanes_for_isa(sizeof(T));
  Args<T> a{};
  a.L = make_layout(s.H, s.W, 1, 1, s.ph, s.pw, s.Ho, s.Wo, s.KH, s.KW, s.sh, s.sw, s.dh, s.dw, lanes);
  if (a.L.size() > kMaxBuffer) return false;
  a.src = x, a.dy = dy, a.out = dw;
  a.N = s.N, a.C = s.C, a.Ho = s.Ho, a.Wo = s.Wo, a.KH = s.KH, a.KW = s.KW;
  a.sh = s.sh, a.sw = s.sw, a.dh = s.dh, a.dw = s.dw, a.src_plane = s.H * s.W;
  a.Og = s.O / s.G;
  // Few input channels (a first layer's C = 1): the batch split in blocks too, so that threads have units;
  // the block count depends on the shape alone, so the sums' order does not depend on the thread count.
  a.nb = s.C >= 8 ? 1 : std::min<index_t>(s.N, (8 + s.C - 1) / s.C);
  const index_t units = s.C * a.nb, KK = s.KH * s.KW;
  std::vector<T> part(a.nb > 1 ? static_cast<size_t>(units * a.Og * KK) : 0);
  a.part = part.data();
  const int nt = std::max(
      1, static_cast<int>(std::min<index_t>(threads_for(s.N * s.O * s.Ho * s.Wo * KK, kGrain), units)));
  const auto bufs = thread_buffers<T>(nt, a.L.size());
  a.bufs = bufs.get();
  run_units(pick_channels<T>(), a, units, nt);
  if (a.nb > 1) {  // dw[c's outputs] = the sum of the blocks' slots, in block order
    const index_t per = a.Og * KK;
    for (index_t c = 0; c < s.C; ++c) {
      T* d = dw + c * per;
      const T* p0 = part.data() + c * a.nb * per;
      for (index_t t = 0; t < per; ++t) d[t] = p0[t];
      for (index_t b = 1; b < a.nb; ++b)
        for (index_t t = 0; t < per; ++t) d[t] += p0[b * per + t];
    }
  }
  return true;
}

template <class T>
bool depthwise_backward(const T* dy, const T* w, const T* x, T* dx, T* dw, T* db, const ConvShape& s) {
  using namespace dwconv;
  const index_t KK = s.KH * s.KW;
  // one channel per unit: enough units (C >= 8, as the weight gradient's unsplit batch) and taps it keeps
  if (!takes(s) || s.G != s.C || s.O != s.C || s.C < 8 || KK > 25) return false;
  if (dx)
    for (index_t t = 0; t < s.C * KK; ++t)
      if (!std::isfinite(w[t])) return false;  // as depthwise_backward_input
  const index_t lanes = lanes_for_isa(sizeof(T));
  Args<T> ad{}, aw{};
  // dx: as depthwise_backward_input; dw: as depthwise_backward_weight
  ad.L = make_layout(s.Ho, s.Wo, s.sh, s.sw, s.dh * (s.KH - 1) - s.ph, s.dw * (s.KW - 1) - s.pw, s.H, s.W, s.KH,
                     s.KW, 1, 1, s.dh, s.dw, 4 * lanes);
  aw.L = make_layout(s.H, s.W, 1, 1, s.ph, s.pw, s.Ho, s.Wo, s.KH, s.KW, s.sh, s.sw, s.dh, s.dw, lanes);
  if (ad.L.size() > kMaxBuffer || aw.L.size() > kMaxBuffer) return false;
  std::vector<T> flipped(dx ? static_cast<size_t>(s.C * KK) : 0);
  if (dx)
    for (index_t c = 0; c < s.C; ++c)
      for (index_t t = 0; t < KK; ++t) flipped[c * KK + t] = w[c * KK + (KK - 1 - t)];
  ad.src = dy, ad.taps = flipped.data(), ad.out = dx;
  ad.N = s.N, ad.C = s.C, ad.Ho = s.H, ad.Wo = s.W, ad.KH = s.KH, ad.KW = s.KW;
  ad.sh = 1, ad.sw = 1, ad.dh = s.dh, ad.dw = s.dw, ad.src_plane = s.Ho * s.Wo;
  aw.src = x, aw.dy = dy, aw.out = dw;
  aw.N = s.N, aw.C = s.C, aw.Ho = s.Ho, aw.Wo = s.Wo, aw.KH = s.KH, aw.KW = s.KW;
  aw.sh = s.sh, aw.sw = s.sw, aw.dh = s.dh, aw.dw = s.dw, aw.src_plane = s.H * s.W;
  const index_t work = s.N * s.C * (s.H * s.W + s.Ho * s.Wo) * KK;
  const int nt = std::max(1, static_cast<int>(std::min<index_t>(threads_for(work, kGrain), s.C)));
  const auto bd = thread_buffers<T>(dx ? nt : 0, ad.L.size());
  const auto bx = thread_buffers<T>(dw ? nt : 0, aw.L.size());
  ad.bufs = bd.get(), aw.bufs = bx.get();
  const auto fn = pick_fused<T>();
  if (nt <= 1) {
    fn(ad, aw, db, 0, s.C);
    return true;
  }
  parallel_for(s.C, nt, 1, [&](index_t c) {  // one channel a unit: its sums in one thread, in batch order
    Args<T> d = ad, e = aw;
    d.tid = e.tid = vm::thread_id();
    fn(d, e, db, c, c + 1);
  });
  return true;
}

namespace dwconv {

template <class T, int KWc>
RangeFn<T> pick_dense_kw() {
  PE_DW_PICK(dense_images, T, KWc)
}

// dense_images with the tap loop of a 3- or 5-wide kernel at unit column stride and dilation unrolled.
template <class T>
RangeFn<T> pick_dense(index_t KW, index_t sw, index_t dw) {
  if (sw == 1 && dw == 1 && KW == 3) return pick_dense_kw<T, 3>();
  if (sw == 1 && dw == 1 && KW == 5) return pick_dense_kw<T, 5>();
  return pick_dense_kw<T, 0>();
}
#undef PE_DW_PICK

inline int dense_ob() {
  switch (isa()) {
    case Isa::avx512: return kDenseOB<Isa::avx512>;
    case Isa::avx2: return kDenseOB<Isa::avx2>;
    default: return kDenseOB<Isa::generic>;
  }
}

// The dense correlation of a.C input planes into O output planes (a.L, geometry and src set by the caller);
// w_t(c, i, j, o) = tap(o, c, i, j) from `tap`.
template <class T, class Tap>
bool dense_run(Args<T> a, index_t O, const T* bias, T* out, const Tap& tap) {
  using namespace dwconv;
  const index_t ob = dense_ob(), Op = (O + ob - 1) / ob * ob, KK = a.KH * a.KW;
  if (a.C * KK > kDenseMaxK || a.C * a.L.size() > kDenseMaxBuffer || O < ob / 2) return false;
  std::vector<T> wt(static_cast<size_t>(a.C * KK * Op), T(0));
  for (index_t c = 0; c < a.C; ++c)
    for (index_t t = 0; t < KK; ++t)
      for (index_t o = 0; o < O; ++o) wt[(c * KK + t) * Op + o] = tap(o, c, t);
  a.taps = wt.data(), a.bias = bias, a.out = out, a.O = O, a.Opad = Op;
  const int nt = std::max(
      1, static_cast<int>(std::min<index_t>(threads_for(a.N * O * a.Ho * a.Wo * a.C * KK, kGrain), a.N)));
  const auto bufs = thread_buffers<T>(nt, a.C * a.L.size());
  a.bufs = bufs.get();
  run_units(pick_dense<T>(a.KW, a.sw, a.dw), a, a.N, nt);
  return true;
}

inline bool dense_takes(const ConvShape& s) {
  return takes(s) && s.G == 1 && s.KH * s.KW > 1 && s.C * s.KH * s.KW <= kDenseMaxK;
}

}  // namespace dwconv

template <class T>
bool dense_direct_forward(const T* x, const T* w, const T* b, T* y, const ConvShape& s) {
  using namespace dwconv;
  if (!dense_takes(s)) return false;
  Args<T> a{};
  // rows for an even number of output rows: the tiles compute two rows at a time
  a.L = make_layout(s.H, s.W, 1, 1, s.ph, s.pw, s.Ho + (s.Ho & 1), s.Wo, s.KH, s.KW, s.sh, s.sw, s.dh, s.dw,
                    lanes_for_isa(sizeof(T)));
  a.src = x;
  a.N = s.N, a.C = s.C, a.Ho = s.Ho, a.Wo = s.Wo, a.KH = s.KH, a.KW = s.KW;
  a.sh = s.sh, a.sw = s.sw, a.dh = s.dh, a.dw = s.dw, a.src_plane = s.H * s.W;
  const index_t KK = s.KH * s.KW, C = s.C;
  return dense_run(a, s.O, b, y, [&](index_t o, index_t c, index_t t) { return w[(o * C + c) * KK + t]; });
}

template <class T>
bool dense_direct_backward_input(const T* dy, const T* w, T* dx, const ConvShape& s) {
  using namespace dwconv;
  if (!dense_takes(s) || s.O * s.KH * s.KW > kDenseMaxK) return false;
  const index_t KK = s.KH * s.KW, C = s.C;
  for (index_t t = 0; t < s.O * C * KK; ++t)
    if (!std::isfinite(w[t])) return false;  // the fallback keeps the twin's 0 * w only where a tap was read
  Args<T> a{};
  // dy spread by the stride and padded by d (K - 1) - p, its O planes correlated into C planes of dx
  a.L = make_layout(s.Ho, s.Wo, s.sh, s.sw, s.dh * (s.KH - 1) - s.ph, s.dw * (s.KW - 1) - s.pw, s.H + (s.H & 1), s.W,
                    s.KH, s.KW, 1, 1, s.dh, s.dw, lanes_for_isa(sizeof(T)));
  a.src = dy;
  a.N = s.N, a.C = s.O, a.Ho = s.H, a.Wo = s.W, a.KH = s.KH, a.KW = s.KW;
  a.sh = 1, a.sw = 1, a.dh = s.dh, a.dw = s.dw, a.src_plane = s.Ho * s.Wo;
  // tap (c', o', t) of the transposed correlation: input plane o of dy, output plane c of dx, taps reversed
  return dense_run(a, C, static_cast<const T*>(nullptr), dx,
                   [&](index_t c, index_t o, index_t t) { return w[(o * C + c) * KK + (KK - 1 - t)]; });
}

namespace dwconv {

// The dense K x K weight gradient's buffers: x's padded planes as K copies, one per tap column j, copy j's row
// r holding xp[r, S u + j] at u for the output columns u < Wo (rows S oh + i, oh < Ho, i < K), in rows of whole
// 64-byte lines, so every tap's vector load is aligned, and dy's rows likewise (zeros past Wo); image chunks
// of as many images as keep x and dy of the chunk within kWgradChunkBytes, a rule of the shape alone (the
// chunks' partial sums are added in chunk order, so the bits do not depend on the thread count); one buffer
// of a chunk's planes per thread.
struct WgradPlan {
  index_t Hp, Pw, plane, dplane, per, chunks, each, line;
  WgradPlan(const ConvShape& s, index_t itemsize) {
    line = 64 / itemsize;
    Hp = (s.Ho - 1) * s.sh + s.KH, Pw = round_up(s.Wo, line);
    plane = s.KW * Hp * Pw, dplane = s.Ho * Pw;
    const index_t per_image = (s.C * s.H * s.W + s.O * s.Ho * s.Wo) * itemsize;
    per = std::max<index_t>(1, std::min<index_t>(s.N, kWgradChunkBytes / std::max<index_t>(per_image, 1)));
    chunks = (s.N + per - 1) / per;
    each = round_up(per * (s.C * plane + s.O * dplane), line);
  }
  index_t values(const ConvShape& s, index_t nt) const {  // buffers and the partial sums
    return nt * each + line + (chunks - 1) * s.O * s.C * s.KH * s.KW;
  }
};

inline index_t dense_wgrad_ob(index_t K) {
  switch (isa()) {
    case Isa::avx512: return K == 3 ? kWgradOB<Isa::avx512, 3> : kWgradOB<Isa::avx512, 5>;
    case Isa::avx2: return kWgradOB<Isa::avx2, 3>;
    default: return 1;
  }
}

}  // namespace dwconv

static bool g_direct_wgrad = true;
void set_direct_wgrad(bool on) { g_direct_wgrad = on; }
bool direct_wgrad() { return g_direct_wgrad; }

bool dense_wgrad_takes(const ConvShape& s, int itemsize) {
  using namespace dwconv;
  if (!g_direct_wgrad) return false;
  if (!(takes(s) && s.G == 1 && s.KH == s.KW && s.sh == s.sw && s.dh == 1 && s.dw == 1)) return false;
  const index_t K = s.KH, S = s.sh;
  if (s.Ho != (s.H + 2 * s.ph - K) / S + 1 || s.Wo != (s.W + 2 * s.pw - K) / S + 1 || s.ph >= K || s.pw >= K)
    return false;
  // vectors along the output row: rows of at least 3/4 of a vector's lanes in use (ResNet-20's 8x8 stage
  // with 16 lanes wastes half of every FMA; the GEMM paths do better there)
  const index_t lanes = lanes_for_isa(itemsize);
  if (4 * s.Wo < 3 * round_up(s.Wo, lanes)) return false;
  // stride 2 from 16 input channels: the phase-plane path (conv_phase_bwd.h) is faster (same-process A/B, 1
  // thread: 16->32 32x32 0.85x of it; 12->24 1.22x, 8->16 1.85x, 3->16 4.6x faster than the GEMM paths)
  if (S == 2 && s.C >= 16) return false;
  const WgradPlan p(s, itemsize);
  return (itemsize == 4 ? pick_wgrad<float>(K, S) != nullptr : pick_wgrad<double>(K, S) != nullptr) &&
         s.C * p.plane + s.O * p.dplane <= kMaxBuffer && std::min(s.C, s.O) <= kDenseWgradMaxChannels;
}

template <class T>
void dense_direct_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s) {
  using namespace dwconv;
  const WgradFn<T> tile = pick_wgrad<T>(s.KH, s.sh);
  const index_t OB = dense_wgrad_ob(s.KH), OK = s.O * s.C * s.KH * s.KW, HW = s.H * s.W, S = s.sw;
  const WgradPlan p(s, sizeof(T));
  const index_t per = p.per, line = p.line;
  std::vector<T> parts(static_cast<size_t>((p.chunks - 1) * OK));  // chunk k > 0's dw; chunk 0 writes dw
  const int nt = static_cast<int>(
      std::min<index_t>(threads_for(s.N * s.O * s.Ho * s.Wo * s.C * s.KH * s.KW, kGrain), p.chunks));
  const auto bufs = thread_buffers<T>(1, nt * p.each + line);  // zeros: the padding, written once
  T* base = bufs.get() + (line - reinterpret_cast<std::uintptr_t>(bufs.get()) / sizeof(T) % line) % line;
  // the rows of x the sums read (a stride-2 window may stop short of the last ones)
  const index_t rows = std::min(s.H, p.Hp - s.ph);
  parallel_for(p.chunks, nt, 1, [&](index_t k) {
    const index_t n0 = k * per, cnt = std::min(s.N, n0 + per) - n0;
    const int tid = nt > 1 ? vm::thread_id() : 0;  // parallel_for runs one thread inline
    T* xp = base + static_cast<size_t>(tid) * static_cast<size_t>(p.each);
    for (index_t q = 0; q < cnt * s.C; ++q) {  // x into the K copies (the padding stays zero)
      const T* src = x + (n0 * s.C + q) * HW;
      for (index_t j = 0; j < s.KW; ++j) {
        // copy j, row r + ph, column u: x[r, S u + j - pw], for the u where that lies inside x
        T* dst = xp + q * p.plane + (j * p.Hp + s.ph) * p.Pw;
        const index_t off = j - s.pw;
        const index_t u0 = off >= 0 ? 0 : (-off + S - 1) / S;
        const index_t u1 = std::min(s.Wo, s.W - off > 0 ? (s.W - off + S - 1) / S : 0);
        for (index_t r = 0; r < rows; ++r) {
          const T* sr = src + r * s.W + off;
          T* dr = dst + r * p.Pw;
          if (S == 1) {
            if (u1 > u0) std::memcpy(dr + u0, sr + u0, static_cast<size_t>(u1 - u0) * sizeof(T));
          } else {
            for (index_t u = u0; u < u1; ++u) dr[u] = sr[2 * u];  // S == 2 (dense_wgrad_takes)
          }
        }
      }
    }
    T* dyp = xp + per * s.C * p.plane;  // dy's rows into lines (the zeros past Wo stay)
    for (index_t q = 0; q < cnt * s.O * s.Ho; ++q)
      std::memcpy(dyp + q * p.Pw, dy + n0 * s.O * s.Ho * s.Wo + q * s.Wo, static_cast<size_t>(s.Wo) * sizeof(T));
    const Wgrad<T> a{xp, dyp, s.C, s.O, s.Ho, s.Wo, p.Hp, p.Pw};
    T* out = k ? parts.data() + (k - 1) * OK : dw;
    for (index_t o0 = 0; o0 < s.O; o0 += OB)
      for (index_t c = 0; c < s.C; ++c) tile(a, cnt, o0, c, out);
  });
  for (index_t k = 1; k < p.chunks; ++k) {  // in chunk order
    const T* part = parts.data() + (k - 1) * OK;
    for (index_t i = 0; i < OK; ++i) dw[i] += part[i];
  }
}

index_t direct_workspace_bytes(const ConvShape& s, int itemsize) {
  using namespace dwconv;
  if (!takes(s)) return 0;
  const index_t nt = num_threads(), KK = s.KH * s.KW;
  const index_t lanes = std::max(lanes_for_isa(itemsize), 64 / itemsize);  // the widest vectors
  const Layout fwd = make_layout(s.H, s.W, 1, 1, s.ph, s.pw, s.Ho + (s.Ho & 1), s.Wo, s.KH, s.KW, s.sh, s.sw, s.dh,
                                 s.dw, 4 * lanes);
  const Layout bwd = make_layout(s.Ho, s.Wo, s.sh, s.sw, s.dh * (s.KH - 1) - s.ph, s.dw * (s.KW - 1) - s.pw,
                                 s.H + (s.H & 1), s.W, s.KH, s.KW, 1, 1, s.dh, s.dw, 4 * lanes);
  index_t values = 0;
  if (s.G == s.C) {  // depthwise (and the weight gradient of one input channel per group): a plane per thread,
    // two in the fused backward (dy spread for dx, x for dw)
    values = nt * (fwd.size() + bwd.size()) + s.O * KK;
    if (s.C < 8) values += std::min<index_t>(s.N, 8) * s.O * KK;  // the batch blocks' partial sums
  } else if (dense_takes(s)) {  // dense of few input channels: an image's planes per thread, weights (c, t, o)
    const index_t ob = 8, Op = (std::max(s.O, s.C) + ob - 1) / ob * ob;
    values = nt * std::max(s.C * fwd.size(), s.O * bwd.size()) + std::max(s.C, s.O) * KK * Op;
  }
  if (dense_wgrad_takes(s, itemsize)) values = std::max(values, WgradPlan(s, itemsize).values(s, nt));
  return values * itemsize;
}

#define PE_DW_INSTANTIATE(T)                                                               \
  template bool depthwise_forward<T>(const T*, const T*, const T*, T*, const ConvShape&); \
  template bool depthwise_backward_input<T>(const T*, const T*, T*, const ConvShape&);   \
  template bool depthwise_backward_weight<T>(const T*, const T*, T*, const ConvShape&); \
  template bool depthwise_backward<T>(const T*, const T*, const T*, T*, T*, T*, const ConvShape&); \
  template bool dense_direct_forward<T>(const T*, const T*, const T*, T*, const ConvShape&); \
  template bool dense_direct_backward_input<T>(const T*, const T*, T*, const ConvShape&); \
  template void dense_direct_backward_weight<T>(const T*, const T*, T*, const ConvShape&);
PE_DW_INSTANTIATE(float)
PE_DW_INSTANTIATE(double)
#undef PE_DW_INSTANTIATE

}  // namespace cpu
}  // namespace pe
