// The weight gradient of a dense convolution (see conv_wgrad.h; specification: reference/conv.py).
//
//   dW (O, K) = sum_n dy[n] (O, L) @ cols(x[n])^T (L, K),   K = C KH KW, L = Ho Wo
//
// as one GEMM whose depth runs over the positions of all images, on the GEMM family's micro-kernel
// (gemm_kernel.h) without its driver. The implicit-GEMM path in conv.cpp formed a column tile and then
// the GEMM packed it again (transposed) into B panels, a tile of megabytes at a time; here NR columns
// (c, i, j) at a time are gathered from x and packed while in L1, into the B micro-panel layout.
//
// Work: units of kPos positions of the batch (images one after the other, so that small images still
// give the micro-kernel a deep product). A unit packs dy's block into A panels (all O rows, MR at a
// time), then for each B panel of NR columns gathers its rows from x (contiguous runs copied), packs
// them with the GEMM family's B packer (an in-register transpose on AVX-512) and runs the micro-kernel
// on every A panel, accumulating into dW. Threads take units and accumulate into their own dW (the
// first thread into dw itself); the copies are summed at the end. Extra memory: per thread
// kPos (O + 2 NR) values of panels, and (threads - 1) O K values of accumulators.
#include "cpu/conv_wgrad.h"

#include <algorithm>
#include <memory>

#include "cpu/conv_panels.h"
#include "cpu/gemm_kernel.h"

namespace pe {
namespace cpu {
namespace wgrad {

constexpr index_t kPos = 256;  // positions per unit: the micro-kernel's depth

using panels::par_for;


// Rows k0 .. k0 + rows of the columns, positions [p0, p1): r[(k - k0) ld + p - p0] = x[n, c, ih, iw] of
// column k = (c, i, j) at position p = (oh, ow), zero in the padding. Contiguous runs are copied.
template <class T>
void gather_rows(const T* xn, const ConvShape& s, index_t k0, int rows, index_t p0, index_t p1, T* r, index_t ld) {
  const index_t KK = s.KH * s.KW, HW = s.H * s.W;
  for (int jj = 0; jj < rows; ++jj) {
    const index_t k = k0 + jj, c = k / KK, i = (k % KK) / s.KW, j = k % s.KW;
    const T* xc = xn + c * HW;
    const index_t off = j * s.dw - s.pw;
    // output columns [lo, hi) read inside the row
    index_t lo = off >= 0 ? 0 : (-off + s.sw - 1) / s.sw;
    index_t hi = (s.W - 1 - off) < 0 ? 0 : (s.W - 1 - off) / s.sw + 1;
    lo = std::min(lo, s.Wo);
    hi = std::max(lo, std::min(hi, s.Wo));
    T* d = r + jj * ld - p0;  // position p at d[p]
    for (index_t p = p0; p < p1;) {
      const index_t oh = p / s.Wo, ow0 = p % s.Wo, ow1 = std::min(s.Wo, ow0 + (p1 - p));
      const index_t ih = oh * s.sh - s.ph + i * s.dh;
      T* dr = d + p - ow0;  // position (oh, ow) at dr[ow]
      if (ih < 0 || ih >= s.H) {
        std::fill(dr + ow0, dr + ow1, T(0));
      } else {
        const T* src = xc + ih * s.W + off;
        const index_t a = std::max(ow0, lo), b = std::max(a, std::min(ow1, hi));
        std::fill(dr + ow0, dr + std::min(a, ow1), T(0));
        if (s.sw == 1) {
          std::copy(src + a, src + b, dr + a);
        } else {
          for (index_t ow = a; ow < b; ++ow) dr[ow] = src[ow * s.sw];
        }
        std::fill(dr + std::max(b, ow0), dr + ow1, T(0));
      }
      p += ow1 - ow0;
    }
  }
}

template <class T, int MR, int NR>
void run(gemm_detail::MicroKernel<T> micro, gemm_detail::PackFn<T> pack_a, gemm_detail::PackFn<T> pack_b,
         const T* dy, const T* x, T* dw, const ConvShape& s) {
  const index_t K = s.C * s.KH * s.KW, L = s.Ho * s.Wo, O = s.O, CHW = s.C * s.H * s.W;
  const index_t units = (s.N * L + kPos - 1) / kPos;  // blocks of kPos positions of the batch, images in order
  const index_t OP = (O + MR - 1) / MR, KP = (K + NR - 1) / NR;
  const int nt = static_cast<int>(std::min<index_t>(threads_for(s.N * O * L * K, index_t(1) << 20), units));
  const index_t apanel = OP * MR * kPos, bpanel = 2 * NR * kPos;  // B: the gathered rows, then the panel
  std::unique_ptr<T[]> buf(new T[static_cast<size_t>(nt * (apanel + bpanel) + (nt - 1) * O * K)]);
  T* accs = buf.get() + nt * (apanel + bpanel);
  std::fill(dw, dw + O * K, T(0));
  std::fill(accs, accs + (nt - 1) * O * K, T(0));
  // the images' runs [q, e) of the positions [q0, q1) of the batch: f(n, p, q - q0, e - q)
  auto segments = [&](index_t q0, index_t q1, const auto& f) {
    for (index_t q = q0; q < q1;) {
      const index_t n = q / L, p = q % L, e = std::min(q1, (n + 1) * L);
      f(n, p, q - q0, e - q);
      q = e;
    }
  };
  par_for(units, nt, [&](index_t u, int tid) {
    T* a = buf.get() + tid * (apanel + bpanel);
    T* b = a + apanel;
    T* rows = b + NR * kPos;
    T* acc = tid == 0 ? dw : accs + (tid - 1) * O * K;
    const index_t q0 = u * kPos, q1 = std::min(s.N * L, q0 + kPos), kc = q1 - q0;
    segments(q0, q1, [&](index_t n, index_t p, index_t at, index_t len) {
      for (index_t op = 0; op < OP; ++op)
        pack_a(a + op * MR * kc + at * MR, dy + (n * O + op * MR) * L + p, L,
               static_cast<int>(std::min<index_t>(MR, O - op * MR)), len);
    });
    for (index_t kp = 0; kp < KP; ++kp) {
      const int nv = static_cast<int>(std::min<index_t>(NR, K - kp * NR));
      segments(q0, q1, [&](index_t n, index_t p, index_t at, index_t len) {
        gather_rows(x + n * CHW, s, kp * NR, nv, p, p + len, rows + at, kc);
      });
      pack_b(b, rows, kc, nv, kc);
      for (index_t op = 0; op < OP; ++op)
        micro(kc, a + op * MR * kc, b, acc + op * MR * K + kp * NR, K,
              static_cast<int>(std::min<index_t>(MR, O - op * MR)), nv, T(1), T(1), nullptr);
    }
  });
  for (int t = 1; t < nt; ++t) {
    const T* src = accs + (t - 1) * O * K;
    for (index_t i = 0; i < O * K; ++i) dw[i] += src[i];
  }
}

}  // namespace wgrad

bool packed_wgrad_applies(const ConvShape& s) {
  const bool pointwise = s.KH == 1 && s.KW == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0 &&
                         s.Ho == s.H && s.Wo == s.W;
  return s.G == 1 && !pointwise && s.N > 0 && s.O > 0 && s.C > 0 && s.Ho > 0 && s.Wo > 0;
}

template <class T>
void packed_backward_weight(const T* dy, const T* x, T* dw, const ConvShape& s) {
  using namespace gemm_detail;
#if PE_X86
  switch (isa()) {
    case Isa::avx512: {
      static const Kernels<T> ks = kernels_avx512<T>();
      return wgrad::run<T, TileAvx512<T>::MR, TileAvx512<T>::NR>(ks.micro, ks.a_interleave, ks.b_interleave, dy,
                                                                  x, dw, s);
    }
    case Isa::avx2: {
      static const Kernels<T> ks = kernels_avx2<T>();
      return wgrad::run<T, TileAvx2<T>::MR, TileAvx2<T>::NR>(ks.micro, ks.a_interleave, ks.b_interleave, dy, x,
                                                              dw, s);
    }
    default: break;
  }
#endif
  constexpr int MR = TileGeneric<T>::MR, NR = TileGeneric<T>::NR;
  wgrad::run<T, MR, NR>(panels::micro_plain<T, MR, NR>, pack_interleave<T, MR>, pack_interleave<T, NR>, dy, x, dw, s);
}

index_t packed_wgrad_workspace_bytes(const ConvShape& s, int itemsize) {
  const index_t K = s.C * s.KH * s.KW, nt = num_threads();
  return (nt * (s.O + 14 + 2 * 32) * wgrad::kPos + (nt - 1) * s.O * K) * itemsize;
}

template void packed_backward_weight<float>(const float*, const float*, float*, const ConvShape&);
template void packed_backward_weight<double>(const double*, const double*, double*, const ConvShape&);

}  // namespace cpu
}  // namespace pe
