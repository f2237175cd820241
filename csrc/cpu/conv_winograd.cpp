// Winograd F(4x4, 3x3) convolution (see conv_winograd.h; specification: pyengine/backend/reference/conv.py).
//
// Every 4x4 output tile (image n, output channel o) of a 3x3 correlation is (Lavin and Gray, 2015)
//   Y = A^T [ sum_c (G g_oc G^T) . (B^T d_c B) ] A
// with d_c the 6x6 input patch of channel c under the tile and g_oc the 3x3 filter. At each of the 36
// positions xi of the transformed 6x6 the channel sum is a GEMM,
//   M[xi] (O, tiles) = U[xi] (O, C) @ V[xi] (C, tiles),
// 36 C multiply-adds per 16 outputs instead of 9 C per output: 4x fewer. The transforms are adds and
// small constant multiplies.
//
// The GEMMs run on the GEMM family's micro-kernel (gemm_kernel.h) without its driver: U is written
// once per call straight into the A micro-panel layout (MR rows of O, C steps), and the input transform
// writes V straight into the B micro-panel layout (NR tiles side by side, C steps), so nothing is
// packed twice. Tiles are taken NR at a time (a "panel": NR consecutive tiles of the batch in raster
// order, images one after the other), and the transforms run on all NR tiles of a panel at once, one
// SIMD lane per tile.
//
// The weight gradient (run_wgrad) runs the same algebra backwards: dU[xi] (O, C) = sum over the batch's
// tiles of (A dY A^T)[xi] (O, tiles) @ (B^T d B)[xi] (tiles, C), dw = G^T dU G, in chunks of tiles.
//
// Memory: U (36 x O x C, O rounded up to MR), and V (36 x C x NR) and M (36 x O x NR) per panel in flight:
// one per thread, or a chunk of about one column tile (conv_tile() values, as the implicit GEMM's tiles)
// when there are few panels; bounded whatever the batch. With few tiles and many channels, U's rows of
// one A panel per thread instead of U (see Plan). The weight gradient: a chunk's panels and dU (or, with
// one chunk, 36 MR NR per thread); see WPlan.
// Threads: all share U (transformed once per call, in parallel). Each thread then runs whole panels
// (input transform, GEMMs, output transform: no barrier in between); with fewer than two panels per
// thread, a chunk's three steps are each split over the threads instead (see Plan).
//
// Accuracy: the transforms' constants (up to 8 and 1/24) cost about two decimal digits against a direct
// sum in float32; tests compare with the float64 twin at a tolerance scaled to the output's size.
#include "cpu/conv_winograd.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "cpu/conv_panels.h"
#include "cpu/gemm_kernel.h"
#include "cpu/gemm_trace.h"
#include "cpu/simd.h"

namespace pe {
namespace cpu {
namespace wino {

constexpr int kAA = 36;                              // transformed positions (6 x 6)
constexpr index_t kChanBlock = 32;                   // channels per unit of the transform loops
constexpr index_t kKBlock = 64;                      // by_op plan: input channels per GEMM step (see Plan)
constexpr index_t kGroup = 4;                        // by_op plan: A panels per unit, at most (see Plan)
index_t g_min_channels = 32;
index_t g_min_tiles = 32;

using panels::par_for;

// Dev-only stage timing (dev/conv_winograd_notes.md; dev/wino_trace.py summarises): off unless the
// environment has PE_WINO_TRACE=<file> when the first Winograd call runs (read once). Then each forward /
// input-gradient call appends one line per thread that took part:
//   pass plan N C H W O threads tid total filter input gemm output filter_cpu input_cpu gemm_cpu output_cpu units
// (microseconds; total: the call's wall time; the stages: the thread's wall time in each, then its CPU time
// in each (CLOCK_THREAD_CPUTIME_ID); total minus a thread's stages is its wait at the loops' ends plus the
// allocation). When off, each timed span costs one test of a null pointer.
namespace trace {
enum Stage : int { kFilter = 0, kInput, kGemm, kOutput, kStages };
constexpr int kMaxThreads = 64;

inline const char* path() {
  static const char* p = gemm_trace::env_file("PE_WINO_TRACE");  // read once
  return p;
}
using gemm_trace::now_ns;                  // steady clock
inline std::int64_t cpu_ns() { return gemm_trace::thread_cpu_ns(); }  // this thread's CPU time

struct Thread {
  std::int64_t wall[kStages] = {}, cpu[kStages] = {};
  int units = 0;
  bool used = false;
};

class Call {
 public:
  Call(const char* pass, const char* plan, index_t N, index_t C, index_t H, index_t W, index_t O, int nt)
      : pass_(pass), plan_(plan), dims_{N, C, H, W, O}, nt_(nt), t0_(now_ns()) {}
  Thread* at(int tid) { return tid >= 0 && tid < kMaxThreads ? &th_[tid] : nullptr; }
  ~Call() {
    const std::int64_t total = now_ns() - t0_;
    gemm_trace::append(path(), [&](FILE* f) {
      for (int i = 0; i < kMaxThreads; ++i) {
        const Thread& t = th_[i];
        if (!t.used) continue;
        std::fprintf(f, "%s %s %lld %lld %lld %lld %lld %d %d %.1f", pass_, plan_, static_cast<long long>(dims_[0]),
                     static_cast<long long>(dims_[1]), static_cast<long long>(dims_[2]),
                     static_cast<long long>(dims_[3]), static_cast<long long>(dims_[4]), nt_, i, total / 1e3);
        for (std::int64_t x : t.wall) std::fprintf(f, " %.1f", x / 1e3);
        for (std::int64_t x : t.cpu) std::fprintf(f, " %.1f", x / 1e3);
        std::fprintf(f, " %d\n", t.units);
      }
    });
  }

 private:
  const char *pass_, *plan_;
  index_t dims_[5];
  int nt_;
  std::int64_t t0_;
  Thread th_[kMaxThreads];
};

// Adds the time from construction to destruction to one stage of thread tid (nothing when call is null).
class Span {
 public:
  Span(Call* call, int tid, Stage s) : t_(call ? call->at(tid) : nullptr), s_(s) {
    if (!t_) return;
    t_->used = true;
    ++t_->units;
    w0_ = now_ns(), c0_ = cpu_ns();
  }
  ~Span() {
    if (!t_) return;
    t_->wall[s_] += now_ns() - w0_;
    t_->cpu[s_] += cpu_ns() - c0_;
  }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

 private:
  Thread* t_;
  Stage s_;
  std::int64_t w0_ = 0, c0_ = 0;
};
}  // namespace trace

#define PE_WINO_INLINE inline __attribute__((always_inline))

// The geometry shared by the loops: the effective convolution (x: N, C, H, W) -> (y: N, O, Ho, Wo).
struct Geo {
  index_t N, C, H, W, O, Ho, Wo, ph, pw;
  index_t TH, TW, tiles;  // tiles per column / row of an image, tiles in the batch
  index_t vxs = 0, mxs = 0;  // forward / input gradient: the xi strides of a panel's V and M (see xstride)
};

// The stride between the 36 xi of a transformed array whose xi hold n values each: n rounded up to a whole,
// odd number of 64-byte lines. The transforms write (and read) all 36 xi at once; with n C 4 bytes a
// multiple of 4 KiB (C a multiple of 32) the 36 streams fell on one L1 set of 12 ways and evicted each
// other at every step.
template <class T>
index_t xstride(index_t n) {
  constexpr index_t line = 64 / sizeof(T);
  return ((n + line - 1) / line | 1) * line;
}

// Lane l of a panel starting at tile t0: image n, top-left output (oh, ow); n < 0 past the last tile.
template <int NR>
PE_WINO_INLINE void lanes(const Geo& g, index_t t0, index_t* n, index_t* oh, index_t* ow) {
  const index_t per = g.TH * g.TW;
  index_t t = t0, nn = t0 / per, r = t0 % per, th = r / g.TW, tw = r % g.TW;
  for (int l = 0; l < NR; ++l, ++t) {
    n[l] = t < g.tiles ? nn : -1;
    oh[l] = th * 4, ow[l] = tw * 4;
    if (++tw == g.TW) {
      tw = 0;
      if (++th == g.TH) th = 0, ++nn;
    }
  }
}

// The six-point B^T transform of L lanes, the one formula every input transform applies twice (B^T d, then
// (B^T d) B as B^T of the transposed tile): o[k os + l] = sum_i B^T[k][i] a[i as + l], with
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
// written with the shared terms p, q, s, u (rows 1-4 pair up as p +- q and s +- u).
template <class T, int L>
PE_WINO_INLINE void bt6(const T* a, index_t as, T* o, index_t os) {
  const T *a0 = a, *a1 = a0 + as, *a2 = a1 + as, *a3 = a2 + as, *a4 = a3 + as, *a5 = a4 + as;
  T *r0 = o, *r1 = r0 + os, *r2 = r1 + os, *r3 = r2 + os, *r4 = r3 + os, *r5 = r4 + os;
  for (int l = 0; l < L; ++l) {
    const T p = a4[l] - T(4) * a2[l], q = a3[l] - T(4) * a1[l], s = a4[l] - a2[l], u = T(2) * (a3[l] - a1[l]);
    r0[l] = T(4) * a0[l] - T(5) * a2[l] + a4[l];
    r1[l] = p + q;
    r2[l] = p - q;
    r3[l] = s + u;
    r4[l] = s - u;
    r5[l] = T(4) * a1[l] - T(5) * a3[l] + a5[l];
  }
}

// Input transform of channels [c0, c1) of the panel at t0: v[xi vxs + c NR + l] = (B^T d B)[xi] of lane l
// (B^T: bt6). Returns whether every value read was finite (each sums 0 d into a lane of chk: NaN once a
// d is NaN or inf).
template <class T, int NR>
PE_WINO_INLINE bool input_impl(const T* x, const Geo& g, index_t t0, index_t c0, index_t c1, T* v) {
  index_t n[NR], oh[NR], ow[NR];
  lanes<NR>(g, t0, n, oh, ow);
  alignas(64) T d[kAA * NR];
  alignas(64) T t[kAA * NR];
  alignas(64) T chk[NR] = {};
  const index_t HW = g.H * g.W, vs = g.vxs;
  for (index_t c = c0; c < c1; ++c) {
    for (int l = 0; l < NR; ++l) {
      if (n[l] < 0) {
        for (int k = 0; k < kAA; ++k) d[k * NR + l] = T(0);
        continue;
      }
      const T* xc = x + (n[l] * g.C + c) * HW;
      const index_t h0 = oh[l] - g.ph, w0 = ow[l] - g.pw;
      if (h0 >= 0 && h0 + 6 <= g.H && w0 >= 0 && w0 + 6 <= g.W) {
        const T* src = xc + h0 * g.W + w0;
        for (int i = 0; i < 6; ++i)
          for (int j = 0; j < 6; ++j) d[(i * 6 + j) * NR + l] = src[i * g.W + j];
      } else {
        for (int i = 0; i < 6; ++i) {
          const index_t ih = h0 + i;
          const bool row = ih >= 0 && ih < g.H;
          for (int j = 0; j < 6; ++j) {
            const index_t iw = w0 + j;
            d[(i * 6 + j) * NR + l] = row && iw >= 0 && iw < g.W ? xc[ih * g.W + iw] : T(0);
          }
        }
      }
    }
    for (int k = 0; k < kAA; ++k)
      for (int l = 0; l < NR; ++l) chk[l] += T(0) * d[k * NR + l];
    // t = B^T d (over the first index), then v = t B (over the second)
    for (int j = 0; j < 6; ++j) bt6<T, NR>(d + j * NR, 6 * NR, t + j * NR, 6 * NR);
    T* vc = v + c * NR;
    for (int i = 0; i < 6; ++i) bt6<T, NR>(t + i * 6 * NR, NR, vc + i * 6 * vs, vs);
  }
  T sum = T(0);
  for (int l = 0; l < NR; ++l) sum += chk[l];
  return sum == sum;
}

// Output transform of output channels [o0, o1) of the panel at t0: y tile = A^T m A (+ bias), where
// m[xi] of lane l is mp[(xi O + o) NR + l].   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
template <class T, int NR>
PE_WINO_INLINE void output_impl(const T* mp, const T* bias, T* y, const Geo& g, index_t t0, index_t o0,
                                index_t o1) {
  index_t n[NR], oh[NR], ow[NR];
  lanes<NR>(g, t0, n, oh, ow);
  alignas(64) T t[4 * 6 * NR];
  alignas(64) T r[16 * NR];
  const index_t ms = g.mxs, L = g.Ho * g.Wo;
  for (index_t o = o0; o < o1; ++o) {
    const T* m = mp + o * NR;
    for (int j = 0; j < 6; ++j) {  // t (4 x 6) = A^T m
      const T *a0 = m + j * ms, *a1 = a0 + 6 * ms, *a2 = a1 + 6 * ms, *a3 = a2 + 6 * ms, *a4 = a3 + 6 * ms,
              *a5 = a4 + 6 * ms;
      T *r0 = t + j * NR, *r1 = r0 + 6 * NR, *r2 = r1 + 6 * NR, *r3 = r2 + 6 * NR;
      for (int l = 0; l < NR; ++l) {
        const T p = a1[l] + a2[l], q = a1[l] - a2[l], s = a3[l] + a4[l], u = a3[l] - a4[l];
        r0[l] = a0[l] + p + s;
        r1[l] = q + T(2) * u;
        r2[l] = p + T(4) * s;
        r3[l] = q + T(8) * u + a5[l];
      }
    }
    for (int i = 0; i < 4; ++i) {  // r (4 x 4) = t A
      const T* a = t + i * 6 * NR;
      T* o4 = r + i * 4 * NR;
      for (int l = 0; l < NR; ++l) {
        const T a0 = a[l], a1 = a[NR + l], a2 = a[2 * NR + l], a3 = a[3 * NR + l], a4 = a[4 * NR + l],
                a5 = a[5 * NR + l];
        const T p = a1 + a2, q = a1 - a2, s = a3 + a4, u = a3 - a4;
        o4[l] = a0 + p + s;
        o4[NR + l] = q + T(2) * u;
        o4[2 * NR + l] = p + T(4) * s;
        o4[3 * NR + l] = q + T(8) * u + a5;
      }
    }
    const T bv = bias ? bias[o] : T(0);
    for (int l = 0; l < NR; ++l) {
      if (n[l] < 0) break;
      T* yo = y + (n[l] * g.O + o) * L + oh[l] * g.Wo + ow[l];
      const int mi = static_cast<int>(std::min<index_t>(4, g.Ho - oh[l]));
      const int mj = static_cast<int>(std::min<index_t>(4, g.Wo - ow[l]));
      for (int i = 0; i < mi; ++i)
        for (int j = 0; j < mj; ++j) yo[i * g.Wo + j] = r[(i * 4 + j) * NR + l] + bv;
    }
  }
}

// The filter transform (filter_generic / filter_avx2 / filter_avx512): conv_winograd_filter.h, once per level.
#define PE_WF_ISA Isa::generic
#define PE_WF_TARGET
#define PE_WF_NAME filter_generic
#include "cpu/conv_winograd_filter.h"
#if PE_X86
#define PE_WF_ISA Isa::avx2
#define PE_WF_TARGET PE_TARGET_AVX2
#define PE_WF_NAME filter_avx2
#include "cpu/conv_winograd_filter.h"
#define PE_WF_ISA Isa::avx512
#define PE_WF_TARGET PE_TARGET_AVX512
#define PE_WF_NAME filter_avx512
#include "cpu/conv_winograd_filter.h"
#endif

// ---- weight gradient. The forward tile is Y = A^T M A with M[xi] = sum_c U[xi](o, c) V[xi](c, tile), so
// by the chain rule (everything is linear): dM = A dY A^T (the 4x4 output-gradient tile lifted to 6x6;
// zero past Ho, Wo), dU[xi](o, c) = sum_tiles dM[xi](o, tile) V[xi](c, tile), and, U = G g G^T,
// dg = G^T dU G. The tile sums are 36 GEMMs with K = the tiles of the batch. Here the lanes of the
// transforms are channels (the GEMMs' M and N), one tile at a time: the packed panels hold W channels
// side by side per tile (k step).

// Input transform of tiles [t0, t1) (chunk slots from s0), channels [c0, c0 + W) (zero past C), into the
// B panels: v[xi xs + s W + l] = (B^T d B)[xi] of channel c0 + l in the tile of slot s.
template <class T, int W>
PE_WINO_INLINE void winput_impl(const T* x, const Geo& g, index_t t0, index_t t1, index_t s0, index_t c0, T* v,
                                index_t xs) {
  constexpr int VL = (W + 7) / 8 * 8;
  alignas(64) T d[kAA * VL];
  alignas(64) T t[kAA * VL];
  std::fill(d, d + kAA * VL, T(0));
  const int valid = static_cast<int>(std::min<index_t>(W, g.C - c0));
  const index_t HW = g.H * g.W, per = g.TH * g.TW;
  for (index_t tt = t0; tt < t1; ++tt) {
    const index_t n = tt / per, r = tt % per;
    const index_t h0 = (r / g.TW) * 4 - g.ph, w0 = (r % g.TW) * 4 - g.pw;
    const T* xn = x + (n * g.C + c0) * HW;
    if (h0 >= 0 && h0 + 6 <= g.H && w0 >= 0 && w0 + 6 <= g.W) {
      for (int l = 0; l < valid; ++l) {
        const T* src = xn + l * HW + h0 * g.W + w0;
        for (int i = 0; i < 6; ++i)
          for (int j = 0; j < 6; ++j) d[(i * 6 + j) * VL + l] = src[i * g.W + j];
      }
    } else {
      for (int l = 0; l < valid; ++l) {
        const T* xc = xn + l * HW;
        for (int i = 0; i < 6; ++i) {
          const index_t ih = h0 + i;
          const bool row = ih >= 0 && ih < g.H;
          for (int j = 0; j < 6; ++j) {
            const index_t iw = w0 + j;
            d[(i * 6 + j) * VL + l] = row && iw >= 0 && iw < g.W ? xc[ih * g.W + iw] : T(0);
          }
        }
      }
    }
    for (int j = 0; j < 6; ++j) bt6<T, VL>(d + j * VL, 6 * VL, t + j * VL, 6 * VL);  // t = B^T d
    T* vs = v + (s0 + tt - t0) * W;
    for (int i = 0; i < 6; ++i) {  // v = t B
      const T* a = t + i * 6 * VL;
      T* o = vs + i * 6 * xs;
      alignas(64) T row[6][VL];
      bt6<T, VL>(a, VL, &row[0][0], VL);
      for (int k = 0; k < 6; ++k)
        for (int l = 0; l < W; ++l) o[k * xs + l] = row[k][l];
    }
  }
}

// Output-gradient transform of tiles [t0, t1) (slots from s0), output channels [o0, o0 + W) (zero past O),
// into the A panels: m[xi xs + s W + l] = (A dy A^T)[xi] of channel o0 + l, dy's 4x4 tile zero past Ho, Wo.
//   A dy A^T with A^T as in output_impl: z = A y is (y0, y0+y1+y2+y3, y0-y1+y2-y3, y0+2y1+4y2+8y3,
//   y0-2y1+4y2-8y3, y3) along each direction.
template <class T, int W>
PE_WINO_INLINE void wgrad_impl(const T* dy, const Geo& g, index_t t0, index_t t1, index_t s0, index_t o0, T* m,
                               index_t xs) {
  constexpr int VL = (W + 7) / 8 * 8;
  alignas(64) T d[16 * VL];
  alignas(64) T t[24 * VL];
  std::fill(d, d + 16 * VL, T(0));
  const int valid = static_cast<int>(std::min<index_t>(W, g.O - o0));
  const index_t L = g.Ho * g.Wo, per = g.TH * g.TW;
  for (index_t tt = t0; tt < t1; ++tt) {
    const index_t n = tt / per, r = tt % per, oh = (r / g.TW) * 4, ow = (r % g.TW) * 4;
    const int mi = static_cast<int>(std::min<index_t>(4, g.Ho - oh));
    const int mj = static_cast<int>(std::min<index_t>(4, g.Wo - ow));
    const T* src = dy + (n * g.O + o0) * L + oh * g.Wo + ow;
    if (mi == 4 && mj == 4) {
      for (int l = 0; l < valid; ++l)
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) d[(i * 4 + j) * VL + l] = src[l * L + i * g.Wo + j];
    } else {
      for (int l = 0; l < valid; ++l)
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) d[(i * 4 + j) * VL + l] = i < mi && j < mj ? src[l * L + i * g.Wo + j] : T(0);
    }
    for (int j = 0; j < 4; ++j) {  // t (6 x 4) = A d (down the columns)
      const T *y0 = d + j * VL, *y1 = y0 + 4 * VL, *y2 = y1 + 4 * VL, *y3 = y2 + 4 * VL;
      T* r0 = t + j * VL;
      for (int l = 0; l < VL; ++l) {
        const T p = y0[l] + y2[l], q = y1[l] + y3[l], s = y0[l] + T(4) * y2[l], u = T(2) * y1[l] + T(8) * y3[l];
        r0[l] = y0[l];
        r0[4 * VL + l] = p + q;
        r0[8 * VL + l] = p - q;
        r0[12 * VL + l] = s + u;
        r0[16 * VL + l] = s - u;
        r0[20 * VL + l] = y3[l];
      }
    }
    T* ms = m + (s0 + tt - t0) * W;
    for (int i = 0; i < 6; ++i) {  // m = t A^T (along the rows)
      const T* a = t + i * 4 * VL;
      alignas(64) T row[6][VL];
      for (int l = 0; l < VL; ++l) {
        const T y0 = a[l], y1 = a[VL + l], y2 = a[2 * VL + l], y3 = a[3 * VL + l];
        const T p = y0 + y2, q = y1 + y3, s = y0 + T(4) * y2, u = T(2) * y1 + T(8) * y3;
        row[0][l] = y0;
        row[1][l] = p + q;
        row[2][l] = p - q;
        row[3][l] = s + u;
        row[4][l] = s - u;
        row[5][l] = y3;
      }
      T* o = ms + i * 6 * xs;
      for (int k = 0; k < 6; ++k)
        for (int l = 0; l < W; ++l) o[k * xs + l] = row[k][l];
    }
  }
}

// dw[o, c] (3 x 3) = G^T dU(o, c) G for a block of m output channels from o0 and n input channels from c0,
// with dU[xi](o0 + i, c0 + j) = u[xi xst + i ldc + j]; dw is (O, C, 3, 3):
//   G^T y = (y0/4 - (y1+y2)/6 + (y3+y4)/24, (y2-y1)/6 + (y3-y4)/12, (y3+y4-y1-y2)/6 + y5) in each direction.
template <class T>
PE_WINO_INLINE void wfilter_impl(const T* u, index_t xst, index_t ldc, int m, int n, index_t o0, index_t c0,
                                 index_t C, T* dw) {
  constexpr int VL = 16;
  alignas(64) T a[kAA * VL];
  alignas(64) T t[18 * VL];
  alignas(64) T r[9 * VL];
  const T sixth = T(1.0 / 6.0), twelfth = T(1.0 / 12.0), tw4 = T(1.0 / 24.0);
  for (int i = 0; i < m; ++i) {
    for (int j0 = 0; j0 < n; j0 += VL) {
      const int cl = std::min(VL, n - j0);
      for (int xi = 0; xi < kAA; ++xi) {
        const T* src = u + xi * xst + i * ldc + j0;
        for (int l = 0; l < VL; ++l) a[xi * VL + l] = l < cl ? src[l] : T(0);
      }
      for (int j = 0; j < 6; ++j) {  // t (3 x 6) = G^T a (down the columns)
        const T *y0 = a + j * VL, *y1 = y0 + 6 * VL, *y2 = y1 + 6 * VL, *y3 = y2 + 6 * VL, *y4 = y3 + 6 * VL,
                *y5 = y4 + 6 * VL;
        for (int l = 0; l < VL; ++l) {
          const T p = y1[l] + y2[l], q = y3[l] + y4[l];
          t[j * VL + l] = T(0.25) * y0[l] - sixth * p + tw4 * q;
          t[(6 + j) * VL + l] = sixth * (y2[l] - y1[l]) + twelfth * (y3[l] - y4[l]);
          t[(12 + j) * VL + l] = sixth * (q - p) + y5[l];
        }
      }
      for (int k = 0; k < 3; ++k) {  // r (3 x 3) = t G (along the rows)
        const T* y = t + k * 6 * VL;
        for (int l = 0; l < VL; ++l) {
          const T y0 = y[l], y1 = y[VL + l], y2 = y[2 * VL + l], y3 = y[3 * VL + l], y4 = y[4 * VL + l],
                  y5 = y[5 * VL + l];
          const T p = y1 + y2, q = y3 + y4;
          r[(k * 3) * VL + l] = T(0.25) * y0 - sixth * p + tw4 * q;
          r[(k * 3 + 1) * VL + l] = sixth * (y2 - y1) + twelfth * (y3 - y4);
          r[(k * 3 + 2) * VL + l] = sixth * (q - p) + y5;
        }
      }
      T* dst = dw + ((o0 + i) * C + c0 + j0) * 9;
      for (int l = 0; l < cl; ++l)
        for (int k = 0; k < 9; ++k) dst[l * 9 + k] = r[k * VL + l];
    }
  }
}

template <class T>
using InputFn = bool (*)(const T*, const Geo&, index_t, index_t, index_t, T*);
template <class T>
using OutputFn = void (*)(const T*, const T*, T*, const Geo&, index_t, index_t, index_t);
template <class T>
using FilterFn = bool (*)(const T*, index_t, index_t, bool, index_t, index_t, index_t, T*, index_t);

// The loops above compiled once per ISA (vectorised along the NR tiles / MR rows by the compiler).
#define PE_WINO_OPS(SUFFIX, ATTR)                                                                             \
  template <class T, int NR>                                                                                  \
  ATTR bool input_##SUFFIX(const T* x, const Geo& g, index_t t0, index_t c0, index_t c1, T* v) {              \
    return input_impl<T, NR>(x, g, t0, c0, c1, v);                                                            \
  }                                                                                                           \
  template <class T, int NR>                                                                                  \
  ATTR void output_##SUFFIX(const T* m, const T* b, T* y, const Geo& g, index_t t0, index_t o0, index_t o1) { \
    output_impl<T, NR>(m, b, y, g, t0, o0, o1);                                                               \
  }                                                                                                           \
  template <class T, int W>                                                                                   \
  ATTR void winput_##SUFFIX(const T* x, const Geo& g, index_t t0, index_t t1, index_t s0, index_t c0, T* v,   \
                            index_t xs) {                                                                     \
    winput_impl<T, W>(x, g, t0, t1, s0, c0, v, xs);                                                           \
  }                                                                                                           \
  template <class T, int W>                                                                                   \
  ATTR void wgrad_##SUFFIX(const T* dy, const Geo& g, index_t t0, index_t t1, index_t s0, index_t o0, T* m,   \
                           index_t xs) {                                                                      \
    wgrad_impl<T, W>(dy, g, t0, t1, s0, o0, m, xs);                                                           \
  }                                                                                                           \
  template <class T>                                                                                          \
  ATTR void wfilter_##SUFFIX(const T* u, index_t xst, index_t ldc, int m, int n, index_t o0, index_t c0,       \
                             index_t C, T* dw) {                                                              \
    wfilter_impl<T>(u, xst, ldc, m, n, o0, c0, C, dw);                                                        \
  }
PE_WINO_OPS(generic, )
#if PE_X86
PE_WINO_OPS(avx2, PE_TARGET_AVX2)
PE_WINO_OPS(avx512, PE_TARGET_AVX512)
#endif
#undef PE_WINO_OPS

template <class T>
using WTransformFn = void (*)(const T*, const Geo&, index_t, index_t, index_t, index_t, T*, index_t);
template <class T>
using WFilterFn = void (*)(const T*, index_t, index_t, int, int, index_t, index_t, index_t, T*);

template <class T>
struct Ops {
  int MR, NR;
  gemm_detail::MicroKernel<T> micro;
  InputFn<T> input;
  OutputFn<T> output;
  FilterFn<T> filter;
  WTransformFn<T> winput;  // weight gradient: x into B panels (NR channels), dy into A panels (MR channels)
  WTransformFn<T> wgrad;
  WFilterFn<T> wfilter;
};


template <class T>
Ops<T> ops() {
  using namespace gemm_detail;
#if PE_X86
  switch (isa()) {
    case Isa::avx512: {
      using Tl = TileAvx512<T>;
      static const Kernels<T> ks = kernels_avx512<T>();
      return {Tl::MR, Tl::NR, ks.micro, input_avx512<T, Tl::NR>, output_avx512<T, Tl::NR>, filter_avx512<T, Tl::MR>,
              winput_avx512<T, Tl::NR>, wgrad_avx512<T, Tl::MR>, wfilter_avx512<T>};
    }
    case Isa::avx2: {
      using Tl = TileAvx2<T>;
      static const Kernels<T> ks = kernels_avx2<T>();
      return {Tl::MR, Tl::NR, ks.micro, input_avx2<T, Tl::NR>, output_avx2<T, Tl::NR>, filter_avx2<T, Tl::MR>,
              winput_avx2<T, Tl::NR>, wgrad_avx2<T, Tl::MR>, wfilter_avx2<T>};
    }
    default: break;
  }
#endif
  using Tl = TileGeneric<T>;
  return {Tl::MR, Tl::NR, panels::micro_plain<T, Tl::MR, Tl::NR>, input_generic<T, Tl::NR>,
          output_generic<T, Tl::NR>, filter_generic<T, Tl::MR>, winput_generic<T, Tl::NR>,
          wgrad_generic<T, Tl::MR>, wfilter_generic<T>};
}

Geo geometry(index_t N, index_t C, index_t H, index_t W, index_t O, index_t Ho, index_t Wo, index_t ph,
             index_t pw) {
  Geo g{N, C, H, W, O, Ho, Wo, ph, pw, (Ho + 3) / 4, (Wo + 3) / 4, 0};
  g.tiles = N * g.TH * g.TW;
  return g;
}

// How a call runs. With at least two panels per thread (or one thread), each thread takes whole panels
// (input transform, 36 GEMMs, output transform) into its own V and M: one parallel loop, no barrier
// between the steps, V and M of a panel stay in the thread's cache. With fewer panels, chunks of panels
// (V and M of about conv_tile() values, at least one panel per thread) go through three parallel loops
// (input transform, GEMMs over (panel, xi), output transform). U is transformed once per call and shared
// by all threads. values: the extra memory (U, then V and M), in values.
// When the whole batch's V and M take no more than U (few tiles, many channels: ResNet's 7x7 and 14x14
// layers at batch 8), U is never formed: V of every panel is transformed first, then a unit (one A panel
// of MR output channels) transforms its rows of U into a buffer of its thread (36 C MR values, kept in
// cache) and runs them against every panel, then the output transform. A U of 36 x 512 x 512 values was
// written and read once per call (and its fresh pages faulted in): at 7x7 x 512 that took twice the
// GEMMs. With one panel (the 7x7 layers) a unit is a group of up to kGroup A panels and the GEMMs go in K
// blocks of kKBlock channels: per block the group's rows of U and V's block stay in L2, and V is read from
// L3 once per group, not once per A panel (37 times 2.4 MB a call at 512 channels, which two threads then
// shared: dev/conv_winograd_notes.md). The unit count is a multiple of the threads (sizes differ by at
// most one A panel). A shape's plan gives the same bits on any number of threads: by_op is chosen by the
// shape alone and sums each output's products in the same order however the A panels are grouped (K
// blocks of kKBlock with one panel, else all of K); by_panel and chunks run the same GEMMs over all of K.
struct Plan {
  bool by_panel, by_op;
  index_t cp, values;
  index_t uxs, vsz, msz;  // xi stride of U (or of a thread's rows of it); one panel's V and M
  index_t groups, kb;     // by_op: the units (groups of A panels), input channels per GEMM step
};

template <class T>
Plan plan(Geo& g, int MR, int NR, int nt) {
  const index_t panels = (g.tiles + NR - 1) / NR, OP = (g.O + MR - 1) / MR;
  g.vxs = xstride<T>(g.C * NR), g.mxs = xstride<T>(g.O * NR);
  Plan p;
  p.vsz = kAA * g.vxs, p.msz = kAA * g.mxs;
  const index_t per = p.vsz + p.msz, usz = kAA * xstride<T>(OP * MR * g.C);
  p.by_op = panels * per <= usz;
  if (p.by_op) {
    p.by_panel = false, p.cp = panels;
    const bool blocked = panels == 1;
    p.kb = blocked ? std::min(g.C, kKBlock) : g.C;
    p.uxs = xstride<T>(p.kb * MR);
    p.groups = blocked ? std::min(OP, nt * ((OP + nt * kGroup - 1) / (nt * kGroup))) : OP;
    const index_t gmax = (OP + p.groups - 1) / p.groups;
    p.values = nt * gmax * kAA * p.uxs + panels * per;
    return p;
  }
  p.uxs = xstride<T>(OP * MR * g.C);
  p.by_panel = nt <= 1 || panels >= 2 * nt;
  p.cp = p.by_panel ? nt
                    : std::max<index_t>(1, std::min<index_t>(panels, std::max<index_t>(nt, conv_tile() / per)));
  p.values = kAA * p.uxs + p.cp * per;
  return p;
}

// y (N, O, Ho, Wo) = the 3x3 correlation of x (N, C, H, W), zero-padded by (ph, pw), with the filter
// w[o so + c sc + (i, j)] (rotated when flip), + bias.
template <class T>
bool run(const T* x, const T* w, index_t so, index_t sc, bool flip, const T* bias, T* y, Geo g,
         const char* pass) {
  const Ops<T> k = ops<T>();
  const int MR = k.MR, NR = k.NR;
  const int nt = threads_for(g.N * g.O * g.Ho * g.Wo * g.C * 9, index_t(1) << 20);
  const index_t OP = (g.O + MR - 1) / MR, panels = (g.tiles + NR - 1) / NR;
  const index_t cblocks = (g.C + kChanBlock - 1) / kChanBlock, oblocks = (g.O + kChanBlock - 1) / kChanBlock;
  const Plan pl = plan<T>(g, MR, NR, nt);
  const index_t vsz = pl.vsz, msz = pl.msz, uxs = pl.uxs;
  // not zeroed: the filter transform writes every value (zero rows past O), the input transform every lane
  // (zero past the last tile), the GEMMs every row below O of M
  std::unique_ptr<trace::Call> tc(trace::path() ? new trace::Call(pass, pl.by_op ? "by_op" : pl.by_panel ? "by_panel" : "chunks",
                                                                  g.N, g.C, g.H, g.W, g.O, nt)
                                                : nullptr);
  std::unique_ptr<T[]> buf(new T[static_cast<size_t>(pl.values)]);
  std::atomic<bool> finite{true};  // no transform has met a NaN or inf so far
  auto check = [&](bool ok) {
    if (!ok) finite.store(false, std::memory_order_relaxed);
  };
  if (pl.by_op) {
    T* vb = buf.get();  // V, M of every panel, then the threads' rows of U
    T* mb = vb + panels * vsz;
    T* ub = mb + panels * msz;
    par_for(panels * cblocks, nt, [&](index_t u, int tid) {
      trace::Span ts(tc.get(), tid, trace::kInput);
      const index_t p = u / cblocks, c0 = (u % cblocks) * kChanBlock;
      check(k.input(x, g, p * NR, c0, std::min(g.C, c0 + kChanBlock), vb + p * vsz));
    });
    if (!finite) return false;
    const index_t G = pl.groups, gmax = (OP + G - 1) / G;
    par_for(G, nt, [&](index_t gi, int tid) {
      // ops [op0, op1); u[(q kAA + xi) uxs + (c - c0) MR + i]: rows (op0 + q) MR + i of U[xi], channels [c0, c1)
      const index_t op0 = gi * OP / G, op1 = (gi + 1) * OP / G;
      T* u = ub + tid * gmax * kAA * uxs;
      for (index_t c0 = 0; c0 < g.C; c0 += pl.kb) {
        const index_t c1 = std::min(g.C, c0 + pl.kb);
        {
          trace::Span ts(tc.get(), tid, trace::kFilter);
          for (index_t op = op0; op < op1; ++op)
            check(k.filter(w + op * MR * so, so, sc, flip, g.O - op * MR, c0, c1, u + (op - op0) * kAA * uxs, uxs));
        }
        trace::Span ts(tc.get(), tid, trace::kGemm);
        for (index_t p = 0; p < panels; ++p)
          for (index_t op = op0; op < op1; ++op) {
            const int m = static_cast<int>(std::min<index_t>(MR, g.O - op * MR));
            const T* uo = u + (op - op0) * kAA * uxs;
            for (index_t xi = 0; xi < kAA; ++xi)
              k.micro(c1 - c0, uo + xi * uxs, vb + p * vsz + xi * g.vxs + c0 * NR,
                      mb + p * msz + xi * g.mxs + op * MR * NR, NR, m, NR, T(1), c0 ? T(1) : T(0), nullptr);
          }
      }
    });
    par_for(panels * oblocks, nt, [&](index_t u, int tid) {
      trace::Span ts(tc.get(), tid, trace::kOutput);
      const index_t p = u / oblocks, o0 = (u % oblocks) * kChanBlock;
      k.output(mb + p * msz, bias, y, g, p * NR, o0, std::min(g.O, o0 + kChanBlock));
    });
    return finite;
  }
  T* ub = buf.get();  // U: OP micro-panels per xi
  T* vb = ub + kAA * uxs;
  T* mb = vb + pl.cp * vsz;
  par_for(OP * cblocks, nt, [&](index_t u, int tid) {
    trace::Span ts(tc.get(), tid, trace::kFilter);
    const index_t op = u / cblocks, c0 = (u % cblocks) * kChanBlock;
    check(k.filter(w + op * MR * so, so, sc, flip, g.O - op * MR, c0, std::min(g.C, c0 + kChanBlock),
             ub + (op * g.C + c0) * MR, uxs));
  });
  if (!finite) return false;
  auto gemms = [&](const T* v, T* m, index_t xi) {  // M[xi] (O, NR) = U[xi] (O, C) @ V[xi] (C, NR)
    const T* a = ub + xi * uxs;
    const T* b = v + xi * g.vxs;
    T* c = m + xi * g.mxs;
    for (index_t op = 0; op < OP; ++op)
      k.micro(g.C, a + op * MR * g.C, b, c + op * MR * NR, NR, static_cast<int>(std::min<index_t>(MR, g.O - op * MR)),
              NR, T(1), T(0), nullptr);
  };
  if (pl.by_panel) {
    par_for(panels, nt, [&](index_t p, int tid) {
      T* v = vb + tid * (vsz + msz);
      T* m = v + vsz;
      {
        trace::Span ts(tc.get(), tid, trace::kInput);
        check(k.input(x, g, p * NR, 0, g.C, v));
      }
      {
        trace::Span ts(tc.get(), tid, trace::kGemm);
        for (index_t xi = 0; xi < kAA; ++xi) gemms(v, m, xi);
      }
      trace::Span ts(tc.get(), tid, trace::kOutput);
      k.output(m, bias, y, g, p * NR, 0, g.O);
    });
    return finite;
  }
  for (index_t p0 = 0; p0 < panels; p0 += pl.cp) {
    const index_t np = std::min(pl.cp, panels - p0);
    par_for(np * cblocks, nt, [&](index_t u, int tid) {
      trace::Span ts(tc.get(), tid, trace::kInput);
      const index_t p = u / cblocks, c0 = (u % cblocks) * kChanBlock;
      check(k.input(x, g, (p0 + p) * NR, c0, std::min(g.C, c0 + kChanBlock), vb + p * vsz));
    });
    par_for(np * kAA, nt, [&](index_t u, int tid) {
      trace::Span ts(tc.get(), tid, trace::kGemm);
      gemms(vb + (u / kAA) * vsz, mb + (u / kAA) * msz, u % kAA);
    });
    par_for(np * oblocks, nt, [&](index_t u, int tid) {
      trace::Span ts(tc.get(), tid, trace::kOutput);
      const index_t p = u / oblocks, o0 = (u % oblocks) * kChanBlock;
      k.output(mb + p * msz, bias, y, g, (p0 + p) * NR, o0, std::min(g.O, o0 + kChanBlock));
    });
  }
  return finite;
}

// The weight gradient's chunks: KT tiles of the batch at a time (fixed by the shape, never by the threads,
// so the sums run in the same order on any number of threads). A chunk's panels hold 36 (C + O) KT
// values: at most about one column tile, or twice dU (the 36 O C accumulators) where dU is larger, and at
// least 32 tiles so that the GEMMs are deep enough. With one chunk (ResNet's 7x7 and 14x14 layers at batch
// 8) dU is never formed: a unit's 36 blocks go to a buffer of its thread (36 MR NR) and straight to dw.
//
// With several chunks and a dU of at most 1 MiB the tiles are split into `parts` (at most kWgradParts, a rule
// of the shape alone; 4 shares evenly on 2 and 4 threads): each part is one thread's from start to end (its
// chunks' transforms, GEMMs and its own dU), and the parts' dU are added in part order before the filter
// transform. A thread then reads only what it wrote itself:
// sharing the transformed panels and dU between threads (each chunk's transforms and GEMMs split into units
// over all threads, a unit on whichever thread came first) took 2 threads 5.9-7.0 ms where the parts took
// 4.9-5.5 (64->64 56x56 at batch 8, a 2-vCPU AMD EPYC VM), and for runs of calls it made 2 threads slower than
// 1 (16-18 ms; at batch 32 55-64 ms shared where the parts took 24.7-26.6 in the same rounds)
// (dev/conv_winograd_notes.md).
constexpr index_t kWgradParts = 4;

struct WPlan {
  index_t KT, CP, OP, values;
  index_t parts, vxs, mxs, chunk;  // parts > 1: each thread's panels (chunk values), xi strides in them
  bool one;                        // a single chunk
};

WPlan wplan(const Geo& g, int MR, int NR, int nt, int itemsize) {
  WPlan p;
  p.CP = (g.C + NR - 1) / NR, p.OP = (g.O + MR - 1) / MR;
  const index_t per = kAA * (p.CP * NR + p.OP * MR), OC = g.O * g.C;
  p.KT = std::min(g.tiles, std::max<index_t>(32, std::min<index_t>(1024, std::max(conv_tile(), 2 * kAA * OC) / per)));
  p.one = p.KT >= g.tiles;
  const index_t chunks = (g.tiles + p.KT - 1) / p.KT;
  // parts where a dU stays in a core's L2 (64 channels: 590 KB of float); at 128 channels (2.4 MB) the
  // parts' dU streamed from L3 and cost more than the sharing (8x128x28x28, 2 threads: 5.3-6.0 ms, 4.5 ms
  // shared); a part at least one chunk deep
  p.parts = p.one || kAA * OC * itemsize > (index_t(1) << 20) ? 1 : std::min<index_t>(kWgradParts, chunks);
  if (p.parts > 1) {
    const index_t pt = (g.tiles + p.parts - 1) / p.parts;          // tiles in the largest part
    p.KT = (pt + (pt + p.KT - 1) / p.KT - 1) / ((pt + p.KT - 1) / p.KT);  // its chunks of even depth
    const index_t line = 64 / itemsize;
    p.vxs = ((p.CP * p.KT * NR + line - 1) / line | 1) * line;     // off the 4 KiB alias (see xstride)
    p.mxs = ((p.OP * p.KT * MR + line - 1) / line | 1) * line;
    p.chunk = kAA * (p.vxs + p.mxs);
    p.values = p.parts * kAA * OC + std::min<index_t>(nt, p.parts) * p.chunk;
    return p;
  }
  p.parts = 1, p.vxs = p.CP * p.KT * NR, p.mxs = p.OP * p.KT * MR, p.chunk = p.KT * per;
  p.values = (p.one ? nt * kAA * MR * NR : kAA * OC) + p.chunk;
  return p;
}

// dw (O, C, 3, 3) = the weight gradient of the 3x3 correlation y = x * w (geometry g) for the output gradient
// dy. Per chunk: the transforms (units: 16 tiles x one channel panel), then the GEMMs
//   dU[xi] (O, C) (+)= dM[xi] (O, KT) @ V[xi] (KT, C)
// on the micro-kernel, a unit being one A panel (MR output channels) x one B panel (NR input channels) for
// the 36 xi (the first chunk writes dU, the others add to it: every value of dU is summed by one thread,
// chunk after chunk, the same whatever the split into units); after its last chunk's GEMMs a unit
// transforms its block, dw = G^T dU G, while it is in cache. With parts (wplan) a part runs the same steps
// on one thread into its own dU; then per unit the parts' blocks are summed in order and transformed.
template <class T>
void run_wgrad(const T* dy, const T* x, T* dw, const Geo& g) {
  const Ops<T> k = ops<T>();
  const int MR = k.MR, NR = k.NR;
  const int nt = threads_for(g.N * g.O * g.Ho * g.Wo * g.C * 9, index_t(1) << 20);
  const WPlan pl = wplan(g, MR, NR, nt, sizeof(T));
  const index_t KT = pl.KT, CP = pl.CP, OP = pl.OP, OC = g.O * g.C, vxs = pl.vxs, mxs = pl.mxs;
  std::unique_ptr<T[]> buf(new T[static_cast<size_t>(pl.values)]);
  constexpr index_t kTileGroup = 16;
  // The transforms and GEMMs of tiles [t0, t0 + cnt) (a chunk) into panels vb / mb and dU at u (xi stride
  // OC, row stride C; with one chunk, per thread), as units over the threads (threaded) or on this thread.
  const auto chunk = [&](index_t t0, index_t cnt, T* vb, T* mb, T* u, T beta, bool threaded, bool last) {
    const index_t groups = (cnt + kTileGroup - 1) / kTileGroup;
    const auto transform = [&](index_t i, int) {
      const index_t s0 = (i / (CP + OP)) * kTileGroup, b = i % (CP + OP);
      const index_t a0 = t0 + s0, a1 = t0 + std::min(cnt, s0 + kTileGroup);
      if (b < CP)
        k.winput(x, g, a0, a1, s0, b * NR, vb + b * KT * NR, vxs);
      else
        k.wgrad(dy, g, a0, a1, s0, (b - CP) * MR, mb + (b - CP) * KT * MR, mxs);
    };
    const auto gemms = [&](index_t i, int tid) {
      const index_t op = i / CP, cp = i % CP;
      const int m = static_cast<int>(std::min<index_t>(MR, g.O - op * MR));
      const int n = static_cast<int>(std::min<index_t>(NR, g.C - cp * NR));
      T* c = pl.one ? u + tid * kAA * MR * NR : u + op * MR * g.C + cp * NR;
      const index_t xst = pl.one ? MR * NR : OC, ldc = pl.one ? NR : g.C;
      for (index_t xi = 0; xi < kAA; ++xi)
        k.micro(cnt, mb + xi * mxs + op * KT * MR, vb + xi * vxs + cp * KT * NR, c + xi * xst, ldc, m, n, T(1),
                beta, nullptr);
      if (last) k.wfilter(c, xst, ldc, m, n, op * MR, cp * NR, g.C, dw);
    };
    if (threaded) {
      par_for(groups * (CP + OP), nt, transform);
      par_for(OP * CP, nt, gemms);
    } else {
      for (index_t i = 0; i < groups * (CP + OP); ++i) transform(i, 0);
      for (index_t i = 0; i < OP * CP; ++i) gemms(i, 0);
    }
  };
  if (pl.parts == 1) {
    T* ub = buf.get();  // dU[xi](o, c) = ub[xi OC + o C + c], or per thread
    T* vb = ub + (pl.one ? nt * kAA * MR * NR : kAA * OC);  // V: vb[((xi CP + cp) KT + slot) NR + l]
    for (index_t t0 = 0; t0 < g.tiles; t0 += KT)
      chunk(t0, std::min(KT, g.tiles - t0), vb, vb + kAA * vxs, ub, t0 ? T(1) : T(0), true, t0 + KT >= g.tiles);
    return;
  }
  const index_t P = pl.parts;
  T* ub = buf.get();  // part q's dU: ub + q 36 OC
  par_for(P, static_cast<int>(std::min<index_t>(nt, P)), [&](index_t q, int tid) {
    T* vb = ub + P * kAA * OC + tid * pl.chunk;
    const index_t a0 = q * g.tiles / P, a1 = (q + 1) * g.tiles / P;
    for (index_t t0 = a0; t0 < a1; t0 += KT)
      chunk(t0, std::min(KT, a1 - t0), vb, vb + kAA * vxs, ub + q * kAA * OC, t0 > a0 ? T(1) : T(0), false, false);
  });
  par_for(OP * CP, nt, [&](index_t i, int) {  // dU = part 0 + part 1 + ..., then dw = G^T dU G, per block
    const index_t op = i / CP, cp = i % CP;
    const int m = static_cast<int>(std::min<index_t>(MR, g.O - op * MR));
    const int n = static_cast<int>(std::min<index_t>(NR, g.C - cp * NR));
    T* c = ub + op * MR * g.C + cp * NR;
    for (index_t q = 1; q < P; ++q)
      for (index_t xi = 0; xi < kAA; ++xi)
        for (int r = 0; r < m; ++r) {
          T* to = c + xi * OC + r * g.C;
          const T* from = to + q * kAA * OC;
          for (int j = 0; j < n; ++j) to[j] += from[j];
        }
    k.wfilter(c, OC, g.C, m, n, op * MR, cp * NR, g.C, dw);
  });
}

}  // namespace wino

void set_winograd_min(index_t channels, index_t tiles) {
  wino::g_min_channels = std::max<index_t>(channels, 1);
  wino::g_min_tiles = std::max<index_t>(tiles, 1);
}
index_t winograd_min_channels() { return wino::g_min_channels; }
index_t winograd_min_tiles() { return wino::g_min_tiles; }

bool winograd_applies(const ConvShape& s) {
  return s.KH == 3 && s.KW == 3 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.G == 1 && s.ph <= 2 &&
         s.pw <= 2 && s.Ho == s.H + 2 * s.ph - 2 && s.Wo == s.W + 2 * s.pw - 2 && s.Ho > 0 && s.Wo > 0 &&
         s.N > 0 && std::min(s.C, s.O) >= wino::g_min_channels &&
         s.N * std::min((s.Ho + 3) / 4 * ((s.Wo + 3) / 4), (s.H + 3) / 4 * ((s.W + 3) / 4)) >= wino::g_min_tiles;
}

template <class T>
bool winograd_forward(const T* x, const T* w, const T* b, T* y, const ConvShape& s) {
  return wino::run<T>(x, w, s.C * 9, 9, false, b, y, wino::geometry(s.N, s.C, s.H, s.W, s.O, s.Ho, s.Wo, s.ph, s.pw), "fwd");
}

template <class T>
bool winograd_backward_input(const T* dy, const T* w, T* dx, const ConvShape& s) {
  // dx[n, c] = sum_o corr(dy[n, o] padded by 2 - p, w[o, c] rotated): a convolution O -> C whose
  // filter (c, o) is w[o C 9 + c 9] flipped.
  return wino::run<T>(dy, w, 9, s.C * 9, true, nullptr, dx,
               wino::geometry(s.N, s.O, s.Ho, s.Wo, s.C, s.H, s.W, 2 - s.ph, 2 - s.pw), "dgrad");
}

template <class T>
void winograd_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s) {
  wino::run_wgrad<T>(dy, x, dw, wino::geometry(s.N, s.C, s.H, s.W, s.O, s.Ho, s.Wo, s.ph, s.pw));
}

index_t winograd_workspace_bytes(const ConvShape& s, int itemsize) {
  int MR = gemm_detail::TileGeneric<float>::MR, NR = itemsize == 4 ? 8 : 4;
#if PE_X86
  if (isa() == Isa::avx512) MR = gemm_detail::TileAvx512<float>::MR, NR = itemsize == 4 ? 32 : 16;
  else if (isa() == Isa::avx2) MR = gemm_detail::TileAvx2<float>::MR, NR = itemsize == 4 ? 16 : 8;
#endif
  const int nt = num_threads();
  wino::Geo gf = wino::geometry(s.N, s.C, s.H, s.W, s.O, s.Ho, s.Wo, s.ph, s.pw);
  wino::Geo gd = wino::geometry(s.N, s.O, s.Ho, s.Wo, s.C, s.H, s.W, 2 - s.ph, 2 - s.pw);
  const wino::Plan f = itemsize == 4 ? wino::plan<float>(gf, MR, NR, nt) : wino::plan<double>(gf, MR, NR, nt);
  const wino::Plan d = itemsize == 4 ? wino::plan<float>(gd, MR, NR, nt) : wino::plan<double>(gd, MR, NR, nt);
  const wino::WPlan w = wino::wplan(wino::geometry(s.N, s.C, s.H, s.W, s.O, s.Ho, s.Wo, s.ph, s.pw), MR, NR, nt, itemsize);
  return std::max({f.values, d.values, w.values}) * itemsize;
}

template bool winograd_forward<float>(const float*, const float*, const float*, float*, const ConvShape&);
template bool winograd_forward<double>(const double*, const double*, const double*, double*, const ConvShape&);
template bool winograd_backward_input<float>(const float*, const float*, float*, const ConvShape&);
template bool winograd_backward_input<double>(const double*, const double*, double*, const ConvShape&);
template void winograd_backward_weight<float>(const float*, const float*, float*, const ConvShape&);
template void winograd_backward_weight<double>(const double*, const double*, double*, const ConvShape&);

}  // namespace cpu
}  // namespace pe
