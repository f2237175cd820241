// The per-ISA part of conv_depthwise.cpp, included there once per SIMD level with
//   PE_DW_NS      the namespace to fill (dw_generic, dw_avx2, dw_avx512)
//   PE_DW_ISA     Isa::generic, Isa::avx2 or Isa::avx512: selects simd::Vec<T, Isa>
//   PE_DW_TARGET  that level's function attribute (empty, PE_TARGET_AVX2, PE_TARGET_AVX512)
// planes() runs the correlation of planes [lo, hi) (forward, input gradient), channels() the weight gradient
// of (input channel, batch block) units [lo, hi); the OpenMP regions that call them are in conv_depthwise.cpp.

namespace pe {
namespace cpu {
namespace dwconv {
namespace PE_DW_NS {

// out (Ho, Wo) = bias + correlation of B with taps. K3: the taps are 3 x 3 (held in registers).
template <class T, bool K3>
PE_DW_TARGET PE_INLINE void correlate(const T* buf, const T* taps, T bias, T* out, const Args<T>& a) {
  using V = simd::Vec<T, PE_DW_ISA>;
  using reg = typename V::reg;
  constexpr index_t W = V::W;
  const Layout& L = a.L;
  const index_t rs = L.rs(), KH = K3 ? 3 : a.KH, KW = K3 ? 3 : a.KW;
  index_t coff[kMaxKW];  // column offset of tap j in a row of B
  for (index_t j = 0; j < KW; ++j) coff[j] = ((j * a.dw) % L.sw) * L.pw + (j * a.dw) / L.sw;
  reg wk[9];
  if (K3)
    for (int t = 0; t < 9; ++t) wk[t] = V::set1(taps[t]);
  const reg vb = V::set1(bias);
  for (index_t oh = 0; oh < a.Ho; ++oh) {
    const T* r0 = buf + oh * a.sh * rs;
    T* o = out + oh * a.Wo;
    // four vectors a step (independent FMA chains), the row's last step too: its loads may run past Wo
    // into the buffer's slack (make_layout leaves 4 W lanes), its stores stop at Wo
    for (index_t ow = 0; ow < a.Wo; ow += 4 * W) {
      reg c0 = vb, c1 = vb, c2 = vb, c3 = vb;
      if (K3) {
        for (int i = 0; i < 3; ++i) {
          const T* ri = r0 + i * a.dh * rs + ow;
          for (int j = 0; j < 3; ++j) {
            const T* p = ri + coff[j];
            const reg wv = wk[i * 3 + j];
            c0 = V::fmadd(wv, V::load(p), c0);
            c1 = V::fmadd(wv, V::load(p + W), c1);
            c2 = V::fmadd(wv, V::load(p + 2 * W), c2);
            c3 = V::fmadd(wv, V::load(p + 3 * W), c3);
          }
        }
      } else {
        for (index_t i = 0; i < KH; ++i) {
          const T* ri = r0 + i * a.dh * rs + ow;
          for (index_t j = 0; j < KW; ++j) {
            const T* p = ri + coff[j];
            const reg wv = V::set1(taps[i * KW + j]);
            c0 = V::fmadd(wv, V::load(p), c0);
            c1 = V::fmadd(wv, V::load(p + W), c1);
            c2 = V::fmadd(wv, V::load(p + 2 * W), c2);
            c3 = V::fmadd(wv, V::load(p + 3 * W), c3);
          }
        }
      }
      if (ow + 4 * W <= a.Wo) {
        V::store(o + ow, c0);
        V::store(o + ow + W, c1);
        V::store(o + ow + 2 * W, c2);
        V::store(o + ow + 3 * W, c3);
        continue;
      }
      const reg cs[4] = {c0, c1, c2, c3};
      for (int k = 0; k < 4 && ow + k * W < a.Wo; ++k) {
        const index_t q = ow + k * W;
        if (a.Wo - q >= W)
          V::store(o + q, cs[k]);
        else
          V::store_part(o + q, V::mask_for(static_cast<int>(a.Wo - q)), cs[k]);
      }
    }
  }
}

// Planes [lo, hi): out plane = correlation of the built source plane (forward and input gradient).
template <class T>
PE_DW_TARGET void planes(const Args<T>& a, index_t lo, index_t hi) {
  T* buf = a.bufs + static_cast<index_t>(a.tid) * a.L.size();
  const bool k3 = a.KH == 3 && a.KW == 3;
  for (index_t p = lo; p < hi; ++p) {
    const index_t c = p % a.C;
    build(a.src + p * a.src_plane, buf, a.L);
    const T* taps = a.taps + c * a.KH * a.KW;
    const T bias = a.bias ? a.bias[c] : T(0);
    T* out = a.out + p * a.Ho * a.Wo;
    if (k3)
      correlate<T, true>(buf, taps, bias, out, a);
    else
      correlate<T, false>(buf, taps, bias, out, a);
  }
}

// acc[t] += sum over the plane of dy * B at tap t (K3: t < 9, registers; else KK <= 25 accumulators).
template <class T, bool K3>
PE_DW_TARGET PE_INLINE void wplane(const T* buf, const T* g, const Args<T>& a,
                                   typename simd::Vec<T, PE_DW_ISA>::reg* acc) {
  using V = simd::Vec<T, PE_DW_ISA>;
  using reg = typename V::reg;
  constexpr index_t W = V::W;
  const Layout& L = a.L;
  const index_t rs = L.rs(), KH = K3 ? 3 : a.KH, KW = K3 ? 3 : a.KW;
  index_t coff[kMaxKW];  // column offset of tap j in a row of B
  for (index_t j = 0; j < KW; ++j) coff[j] = ((j * a.dw) % L.sw) * L.pw + (j * a.dw) / L.sw;
  const index_t full = a.Wo - a.Wo % W;
  const auto m = V::mask_for(static_cast<int>(a.Wo - full));
  for (index_t oh = 0; oh < a.Ho; ++oh) {
    const T* r0 = buf + oh * a.sh * rs;
    const T* gr = g + oh * a.Wo;
    for (index_t ow = 0; ow < full; ow += W) {
      const reg gv = V::load(gr + ow);
      for (index_t i = 0; i < KH; ++i) {
        const T* ri = r0 + i * a.dh * rs + ow;
        for (index_t j = 0; j < KW; ++j) acc[i * KW + j] = V::fmadd(gv, V::load(ri + coff[j]), acc[i * KW + j]);
      }
    }
    if (full < a.Wo) {  // the row's last partial vector: both operands masked (lanes past Wo read as 0)
      const reg gv = V::load_part(gr + full, m);
      for (index_t i = 0; i < KH; ++i) {
        const T* ri = r0 + i * a.dh * rs + full;
        for (index_t j = 0; j < KW; ++j)
          acc[i * KW + j] = V::fmadd(gv, V::load_part(ri + coff[j], m), acc[i * KW + j]);
      }
    }
  }
}

// Units [lo, hi) of the weight gradient: unit u = (input channel c, block of the batch); it writes the KH KW
// taps of c's Og output channels, into dw (one block) or its slot of a.part (summed by the caller).
template <class T>
PE_DW_TARGET void channels(const Args<T>& a, index_t lo, index_t hi) {
  using V = simd::Vec<T, PE_DW_ISA>;
  using reg = typename V::reg;
  T* buf = a.bufs + static_cast<index_t>(a.tid) * a.L.size();
  const index_t KK = a.KH * a.KW, plane_out = a.Ho * a.Wo, O = a.C * a.Og;
  const bool k3 = a.KH == 3 && a.KW == 3;
  for (index_t u = lo; u < hi; ++u) {
    const index_t c = u / a.nb, blk = u % a.nb;
    const index_t n0 = blk * a.N / a.nb, n1 = (blk + 1) * a.N / a.nb;
    T* dst = a.nb == 1 ? a.out + c * a.Og * KK : a.part + u * a.Og * KK;
    for (index_t t = 0; t < a.Og * KK; ++t) dst[t] = T(0);
    if (k3 && a.Og == 1) {  // depthwise 3 x 3: nine accumulators in registers over the whole block
      reg acc[9];
      for (int t = 0; t < 9; ++t) acc[t] = V::zero();
      for (index_t n = n0; n < n1; ++n) {
        build(a.src + (n * a.C + c) * a.src_plane, buf, a.L);
        wplane<T, true>(buf, a.dy + (n * O + c) * plane_out, a, acc);
      }
      for (int t = 0; t < 9; ++t) dst[t] = V::hsum(acc[t]);
      continue;
    }
    for (index_t n = n0; n < n1; ++n) {  // per plane: accumulators per tap, summed into dst
      build(a.src + (n * a.C + c) * a.src_plane, buf, a.L);
      for (index_t oo = 0; oo < a.Og; ++oo) {
        const T* g = a.dy + (n * O + c * a.Og + oo) * plane_out;
        if (k3) {  // fixed size: the nine accumulators stay in registers
          reg acc[9];
          for (int t = 0; t < 9; ++t) acc[t] = V::zero();
          wplane<T, true>(buf, g, a, acc);
          for (int t = 0; t < 9; ++t) dst[oo * 9 + t] += V::hsum(acc[t]);
          continue;
        }
        reg acc[25];  // KK <= 25 (depthwise_backward_weight leaves larger kernels to the fallback)
        for (index_t t = 0; t < KK; ++t) acc[t] = V::zero();
        wplane<T, false>(buf, g, a, acc);
        for (index_t t = 0; t < KK; ++t) dst[oo * KK + t] += V::hsum(acc[t]);
      }
    }
  }
}

// Channels [lo, hi) of the whole backward of a depthwise convolution in one sweep over dy (any of dx, dw, db
// may be null): per image n, the spread dy plane is built (ad) and correlated with the reversed taps into dx's
// plane, then the same dy plane, now in cache, meets B of x's plane for the weight gradient (aw: the
// accumulators and order of channels()) and is summed for the bias gradient (one vector accumulator over the
// batch). dy is read from memory once instead of three times.
template <class T>
PE_DW_TARGET void fused_backward(const Args<T>& ad, const Args<T>& aw, T* db, index_t lo, index_t hi) {
  using V = simd::Vec<T, PE_DW_ISA>;
  using reg = typename V::reg;
  constexpr index_t W = V::W;
  T* bufd = ad.out ? ad.bufs + static_cast<index_t>(ad.tid) * ad.L.size() : nullptr;
  T* bufx = aw.out ? aw.bufs + static_cast<index_t>(aw.tid) * aw.L.size() : nullptr;
  const index_t KK = aw.KH * aw.KW, plane_out = aw.Ho * aw.Wo, plane_in = ad.Ho * ad.Wo;
  const bool k3 = aw.KH == 3 && aw.KW == 3;
  const index_t full = plane_out - plane_out % W;
  const auto m = V::mask_for(static_cast<int>(plane_out - full));
  for (index_t c = lo; c < hi; ++c) {
    reg acc[9];  // 3 x 3: the nine accumulators over the whole batch (registers while a plane runs)
    for (int t = 0; t < 9; ++t) acc[t] = V::zero();
    T* dst = aw.out ? aw.out + c * KK : nullptr;
    if (dst)
      for (index_t t = 0; t < KK; ++t) dst[t] = T(0);
    reg bs = V::zero();
    for (index_t n = 0; n < aw.N; ++n) {
      const index_t p = n * aw.C + c;
      const T* g = aw.dy + p * plane_out;
      if (bufd) {
        build(g, bufd, ad.L);
        const T* taps = ad.taps + c * KK;
        if (k3)
          correlate<T, true>(bufd, taps, T(0), ad.out + p * plane_in, ad);
        else
          correlate<T, false>(bufd, taps, T(0), ad.out + p * plane_in, ad);
      }
      if (bufx) {
        build(aw.src + p * aw.src_plane, bufx, aw.L);
        if (k3) {
          wplane<T, true>(bufx, g, aw, acc);
        } else {  // as channels(): per plane accumulators (KK <= 25), summed into dst
          reg pa[25];
          for (index_t t = 0; t < KK; ++t) pa[t] = V::zero();
          wplane<T, false>(bufx, g, aw, pa);
          for (index_t t = 0; t < KK; ++t) dst[t] += V::hsum(pa[t]);
        }
      }
      if (db) {
        index_t i = 0;
        for (; i < full; i += W) bs = V::add(bs, V::load(g + i));
        if (full < plane_out) bs = V::add(bs, V::load_part(g + full, m));
      }
    }
    if (dst && k3)
      for (int t = 0; t < 9; ++t) dst[t] = V::hsum(acc[t]);
    if (db) db[c] = V::hsum(bs);
  }
}

// Dense (ungrouped) convolution of few input channels, images [lo, hi): the C padded planes of image n are
// built once, then each tile of OB output channels x 2 output rows x one vector of columns keeps its 2 OB
// accumulators in registers over all C KH KW taps: one load of each input row per tap feeds OB FMAs, the
// weights broadcast from a.taps laid out (c, i, j, o) with Opad (a multiple of OB) columns, zeros past O.
// KWc: the kernel's width when it is 3 or 5 with unit column stride and dilation (the tap loop then has a
// constant trip count and offsets j, and unrolls), 0 for any other.
template <class T, int KWc>
PE_DW_TARGET void dense_images(const Args<T>& a, index_t lo, index_t hi) {
  using V = simd::Vec<T, PE_DW_ISA>;
  using reg = typename V::reg;
  constexpr index_t W = V::W;
  constexpr int OB = kDenseOB<PE_DW_ISA>;
  const Layout& L = a.L;
  const index_t rs = L.rs(), ps = L.size(), Op = a.Opad, KH = a.KH, KW = a.KW;
  T* buf = a.bufs + static_cast<index_t>(a.tid) * a.C * ps;
  index_t coff[kMaxKW];
  for (index_t j = 0; j < KW; ++j) coff[j] = ((j * a.dw) % L.sw) * L.pw + (j * a.dw) / L.sw;
  for (index_t n = lo; n < hi; ++n) {
    for (index_t c = 0; c < a.C; ++c) build(a.src + (n * a.C + c) * a.src_plane, buf + c * ps, L);
    for (index_t ob = 0; ob < Op; ob += OB) {
      // the bias read per tile, not held in OB registers across the loops (that pressure made GCC spill a
      // row's input vector to the stack and reload it for every FMA)
      T bias[OB];
      for (int o = 0; o < OB; ++o) bias[o] = a.bias && ob + o < a.O ? a.bias[ob + o] : T(0);
      for (index_t oh = 0; oh < a.Ho; oh += 2) {
        for (index_t ow = 0; ow < a.Wo; ow += W) {
          reg acc0[OB], acc1[OB];
          for (int o = 0; o < OB; ++o) acc0[o] = acc1[o] = V::set1(bias[o]);
          for (index_t c = 0; c < a.C; ++c) {
            for (index_t i = 0; i < KH; ++i) {
              const T* r0 = buf + c * ps + (oh * a.sh + i * a.dh) * rs + ow;
              const T* r1 = r0 + a.sh * rs;
              const T* wp = a.taps + (c * KH + i) * KW * Op + ob;
#pragma GCC unroll 5
              for (index_t j = 0; j < (KWc ? KWc : KW); ++j) {
                const index_t cj = KWc ? j : coff[j];
                const reg x0 = V::load(r0 + cj), x1 = V::load(r1 + cj);
                for (int o = 0; o < OB; ++o) {
                  const reg wv = V::set1(wp[j * Op + o]);
                  acc0[o] = V::fmadd(wv, x0, acc0[o]);
                  acc1[o] = V::fmadd(wv, x1, acc1[o]);
                }
              }
            }
          }
          const index_t nv = std::min<index_t>(W, a.Wo - ow);
          const auto m = V::mask_for(static_cast<int>(nv));
          const bool two = oh + 1 < a.Ho;
          for (int o = 0; o < OB; ++o) {
            if (ob + o >= a.O) break;
            T* yo = a.out + ((n * a.O + ob + o) * a.Ho + oh) * a.Wo + ow;
            if (nv == W) {
              V::store(yo, acc0[o]);
              if (two) V::store(yo + a.Wo, acc1[o]);
            } else {
              V::store_part(yo, m, acc0[o]);
              if (two) V::store_part(yo + a.Wo, m, acc1[o]);
            }
          }
        }
      }
    }
  }
}

// The dense weight gradient of a K x K, stride-S (1 or 2), undilated convolution (dense_direct_backward_weight)
// for output channels [o0, o0 + on) (on <= OB) and input channel c over the chunk's images:
//   dw[o, c, K i + j] = sum_n sum_(oh, ow) dy[n, o, oh, ow] xp[n, c, S oh + i, S ow + j]
// where xp is x padded by (ph, pw) zeros, built by the caller (a.xp) as K copies per plane, one per tap
// column j: copy j's row r holds xp[r, S u + j] at u, in rows of a.Pw values (whole 64-byte lines). So tap
// (i, j) of the output columns [ow, ow + W) is an aligned vector: copy j, row S oh + i, from u = ow (loads
// at +1 or +2 values split a cache line: that cost the kernel 40% of its time). dy is copied likewise (a.dyp:
// rows of a.Pw values, zeros past Wo), so every load is a whole aligned vector and lanes past Wo add 0 x (a
// finite x: the caller checks). Vectors run along ow. The on x K K sums stay in registers, lane by lane, over
// all the images and rows, then each is summed across its lanes. Each dy vector feeds K K FMAs, each x
// vector OB.
template <class T, int K, int S>
PE_DW_TARGET void wgrad_tile(const Wgrad<T>& a, index_t cnt, index_t o0, index_t c, T* dw) {
  using V = simd::Vec<T, PE_DW_ISA>;
  using reg = typename V::reg;
  constexpr index_t W = V::W;
  constexpr int OB = kWgradOB<PE_DW_ISA, K>, KK = K * K;
  static_assert(OB == 1 || OB == 2, "wgrad_tile: one or two output channels per tile");
  const index_t Ho = a.Ho, Wo = a.Wo, Pw = a.Pw, copy = a.Hp * Pw, plane = K * copy;
  const bool two = OB == 2 && o0 + 1 < a.O;
  // two arrays of K K, not one of OB x K K, and every loop over them unrolled: GCC then keeps them in
  // registers (otherwise the sums go through the stack on every FMA)
  reg a0[KK], a1[KK];
#pragma GCC unroll 25
  for (int t = 0; t < KK; ++t) a0[t] = a1[t] = V::zero();
  const index_t Lp = Ho * Pw;  // a padded dy plane
  for (index_t n = 0; n < cnt; ++n) {
    const T* xc = a.xp + (n * a.C + c) * plane;
    const T* d0r = a.dyp + (n * a.O + o0) * Lp;
    const T* d1r = two ? d0r + Lp : d0r;  // one channel: a1 sums a copy of a0's, never stored
    for (index_t oh = 0; oh < Ho; ++oh, d0r += Pw, d1r += Pw) {
      const T* x0 = xc + S * oh * Pw;
      for (index_t ow = 0; ow < Wo; ow += W) {
        const reg d0 = V::load(d0r + ow), d1 = OB == 2 ? V::load(d1r + ow) : d0;
#pragma GCC unroll 5
        for (int i = 0; i < K; ++i)
#pragma GCC unroll 5
          for (int j = 0; j < K; ++j) {
            reg xv = V::load(x0 + j * copy + i * Pw + ow);
#if defined(__GNUC__)
            if (OB > 1) __asm__("" : "+v"(xv));  // one load feeding OB FMAs (GCC would fold it into each)
#endif
            a0[i * K + j] = V::fmadd(d0, xv, a0[i * K + j]);
            if (OB == 2) a1[i * K + j] = V::fmadd(d1, xv, a1[i * K + j]);
          }
      }
    }
  }
  T* out = dw + (o0 * a.C + c) * KK;
#pragma GCC unroll 25
  for (int t = 0; t < KK; ++t) out[t] = V::hsum(a0[t]);
  if (two)
#pragma GCC unroll 25
    for (int t = 0; t < KK; ++t) out[a.C * KK + t] = V::hsum(a1[t]);
}

}  // namespace PE_DW_NS
}  // namespace dwconv
}  // namespace cpu
}  // namespace pe
