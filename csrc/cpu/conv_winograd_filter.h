// Internal to conv_winograd.cpp, which includes it once per SIMD level after defining PE_WF_ISA (the
// simd::Vec level), PE_WF_TARGET (the function attribute of that level) and PE_WF_NAME (the function's
// name); no include guard. (The Vec members are always inlined and carry their level's target attribute,
// so the function that calls them must carry it too.)

// Filter transform of one A panel, rows [0, MR) (zero from `rows` on), input channels [c0, c1):
// up[xi xs + (c - c0) MR + i] = (G g G^T)[xi] of row i, channel c, where the filter of (row o, channel c)
// is w[o so + c sc + (i, j)] (or rotated by 180 degrees when flip); xs: the stride between the xi (xstride,
// so that the 36 do not fall on the same cache sets). Returns whether every filter value was finite (each
// adds 0 g to the lanes of chk: NaN once a g is NaN or inf).
//   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
// Vectorised along the rows (NV vectors of W lanes cover MR). The filters come in blocks of W channels:
// gk[(j 9 + k) VL + i] = element k of the filter of row i, channel cb + j. Gathering them one value at a time
// (14 rows x 9 strided loads and stores per channel) took half of a 512 -> 512 7x7 forward; now W x W
// blocks go through the in-register transpose (simd.h): in the forward layout (sc = 9) a row's W filters
// are 9 W consecutive values, 9 loads and one transpose per 9 blocks give 9 W columns; in the input
// gradient's (so = 9: a channel's rows are consecutive) each row's 9 values are one masked load and a
// transpose gives the 9 columns (W >= 9; below, the values one at a time).
template <class T, int MR>
PE_WF_TARGET bool PE_WF_NAME(const T* w, index_t so, index_t sc, bool flip, index_t rows, index_t c0,
                        index_t c1, T* up, index_t xs) {
  using VT = simd::Vec<T, PE_WF_ISA>;
  using reg = typename VT::reg;
  constexpr int W = VT::W, NV = (MR + W - 1) / W, VL = NV * W;
  alignas(64) T gk[W * 9 * VL];
  const int nrow = static_cast<int>(std::min<index_t>(MR, rows));
  const T* wr = w;
  const reg q4 = VT::set1(T(0.25)), h2 = VT::set1(T(0.5)), s6 = VT::set1(T(1.0 / 6.0)), n6 = VT::set1(T(-1.0 / 6.0));
  reg r[W];
  reg chk = VT::zero();
  for (index_t cb = c0; cb < c1; cb += W) {
    const int cn = static_cast<int>(std::min<index_t>(W, c1 - cb));
    if (sc == 9 && W > 1) {
      for (int gv = 0; gv < NV; ++gv)
        for (int b = 0; b * W < 9 * cn; ++b) {
          const int len = std::min(W, 9 * cn - b * W);
          const auto m = VT::mask_for(len);
          for (int i = 0; i < W; ++i) {
            const int row = gv * W + i;
            r[i] = row < nrow ? VT::load_part(wr + row * so + cb * 9 + b * W, m) : VT::zero();
          }
          VT::transpose(r);
          for (int q = 0; q < len; ++q) {
            const int pos = b * W + q, k = pos % 9;
            VT::store(gk + ((pos - k) + (flip ? 8 - k : k)) * VL + gv * W, r[q]);
          }
        }
    } else if (so == 9 && W >= 9) {
      const auto m = VT::mask_for(9);
      for (int j = 0; j < cn; ++j)
        for (int gv = 0; gv < NV; ++gv) {
          for (int i = 0; i < W; ++i) {
            const int row = gv * W + i;
            r[i] = row < nrow ? VT::load_part(wr + row * 9 + (cb + j) * sc, m) : VT::zero();
          }
          VT::transpose(r);
          for (int k = 0; k < 9; ++k) VT::store(gk + (j * 9 + (flip ? 8 - k : k)) * VL + gv * W, r[k]);
        }
    } else {
      for (int j = 0; j < cn; ++j)
        for (int i = 0; i < VL; ++i)
          for (int k = 0; k < 9; ++k)
            gk[(j * 9 + k) * VL + i] = i < nrow ? wr[i * so + (cb + j) * sc + (flip ? 8 - k : k)] : T(0);
    }
    // per channel: t (6 x 3) = G g, then u (6 x 6) = t G^T; rows 3 and 4 of G are (g0 / 4 +- g1 / 2 + g2) / 6
    for (int j = 0; j < cn; ++j) {
      T* dst = up + (cb + j - c0) * MR;
      for (int gv = 0; gv < NV; ++gv) {
        const T* g = gk + j * 9 * VL + gv * W;
        reg t[18];
        for (int c3 = 0; c3 < 3; ++c3) {
          const reg a0 = VT::load(g + c3 * VL), a1 = VT::load(g + (3 + c3) * VL), a2 = VT::load(g + (6 + c3) * VL);
          chk = VT::fmadd(VT::zero(), a0, VT::fmadd(VT::zero(), a1, VT::fmadd(VT::zero(), a2, chk)));
          const reg p = VT::add(a0, a2), q = VT::fmadd(q4, a0, a2), h = VT::mul(h2, a1);
          t[c3] = VT::mul(q4, a0);
          t[3 + c3] = VT::mul(n6, VT::add(p, a1));
          t[6 + c3] = VT::mul(n6, VT::sub(p, a1));
          t[9 + c3] = VT::mul(s6, VT::add(q, h));
          t[12 + c3] = VT::mul(s6, VT::sub(q, h));
          t[15 + c3] = a2;
        }
        const int left = MR - gv * W;
        const auto m = VT::mask_for(left);
        T* d = dst + gv * W;
        for (int r6 = 0; r6 < 6; ++r6) {
          const reg a0 = t[r6 * 3], a1 = t[r6 * 3 + 1], a2 = t[r6 * 3 + 2];
          const reg p = VT::add(a0, a2), q = VT::fmadd(q4, a0, a2), h = VT::mul(h2, a1);
          const reg u[6] = {VT::mul(q4, a0),          VT::mul(n6, VT::add(p, a1)), VT::mul(n6, VT::sub(p, a1)),
                            VT::mul(s6, VT::add(q, h)), VT::mul(s6, VT::sub(q, h)), a2};
          for (int e = 0; e < 6; ++e) {
            if (left >= W)
              VT::store(d + (r6 * 6 + e) * xs, u[e]);
            else
              VT::store_part(d + (r6 * 6 + e) * xs, m, u[e]);
          }
        }
      }
    }
  }
  const T sum = VT::hsum(chk);
  return sum == sum;
}

#undef PE_WF_ISA
#undef PE_WF_TARGET
#undef PE_WF_NAME
