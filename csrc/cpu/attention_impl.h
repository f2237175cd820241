// Attention kernels for one SIMD level; the algorithm and its notation are
// described at the top of attention.cpp. No include guard: attention.cpp
// includes this file once per level, after defining
//   PE_ATTN_NS      the namespace to fill (attn_generic, attn_avx2, attn_avx512)
//   PE_ATTN_ISA     Isa::generic, Isa::avx2 or Isa::avx512: selects simd::Vec<T, Isa>
//   PE_ATTN_TARGET  that level's function attribute (empty, PE_TARGET_AVX2, PE_TARGET_AVX512)
// so each function below exists once per level, in its own namespace, marked
// with its level's target attribute (and so able to inline the matching Vec
// members). Only functions run inside an OpenMP region's tasks live here; the
// OpenMP regions themselves are in attention.cpp, compiled for the baseline ISA.

namespace pe {
namespace attn {
namespace PE_ATTN_NS {

template <class T>
using V = simd::Vec<T, PE_ATTN_ISA>;

// The block GEMM's register block: MR rows x NV vectors of C. AVX-512 (32 zmm): 6 x 4 = 24 accumulators
// + 4 B + 1 A; AVX2 (16 ymm): 6 x 2 = 12 + 2 + 1; generic: 4 x 4 scalars.
constexpr int kMR = PE_ATTN_ISA == Isa::generic ? 4 : 6;
constexpr int kNV = PE_ATTN_ISA == Isa::avx2 ? 2 : 4;

// ====================================================================== block GEMM
// C (M x N, row stride ldc) = [C +] A B, where A(i, k) = A[i*ars + k*acs] (so A
// may be read transposed for free: P^T is A = P with ars = 1, acs = lds) and B is
// K x N with row stride ldb. The micro-kernel keeps an MR x (NV vectors) block
// of C in registers and, per k, broadcasts MR values of A against NV vectors of
// B (an outer-product update). The last vector of a row is masked, so N need
// not be a multiple of the vector width and nothing past column N is touched.

template <class T, int MR, int NV>
PE_ATTN_TARGET void micro_kernel(index_t K, const T* A, index_t ars, index_t acs, const T* B, index_t ldb, T* C,
                                 index_t ldc, typename V<T>::mask last, bool accumulate) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  reg c[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int u = 0; u < NV; ++u)
      c[i][u] = !accumulate ? VT::zero()
                : (u + 1 < NV) ? VT::load(C + i * ldc + u * W)
                               : VT::load_part(C + i * ldc + u * W, last);
  for (index_t kk = 0; kk < K; ++kk) {
    const T* b = B + kk * ldb;
    reg bv[NV];
#pragma GCC unroll 8
    for (int u = 0; u < NV; ++u) bv[u] = (u + 1 < NV) ? VT::load(b + u * W) : VT::load_part(b + u * W, last);
    const T* a = A + kk * acs;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const reg ai = VT::set1(a[i * ars]);
#pragma GCC unroll 8
      for (int u = 0; u < NV; ++u) c[i][u] = VT::fmadd(ai, bv[u], c[i][u]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int u = 0; u < NV; ++u) {
      if (u + 1 < NV) VT::store(C + i * ldc + u * W, c[i][u]);
      else VT::store_part(C + i * ldc + u * W, last, c[i][u]);
    }
}

template <class T>
using MicroFn = void (*)(index_t, const T*, index_t, index_t, const T*, index_t, T*, index_t,
                         typename V<T>::mask, bool);

// table[(mr - 1) * NV + (nv - 1)] = micro_kernel<T, mr, nv>: every edge-tile shape.
template <class T, std::size_t... I>
constexpr std::array<MicroFn<T>, sizeof...(I)> make_micro_table(std::index_sequence<I...>) {
  return {{&micro_kernel<T, int(I / kNV) + 1, int(I % kNV) + 1>...}};
}

// What one MR-row tile of C (rows [i, i + mr)) needs: columns [0, n_hi) and
// depth terms [k_lo, k_hi). On a block that straddles the causal diagonal the
// rest is zero (keys a row cannot see, queries that cannot see a key), so the
// tile skips it; without a limit it is {N, 0, K}. Columns at or past n_hi are
// not written: the callers overwrite them (with 0) themselves.
struct Reach {
  index_t n_hi, k_lo, k_hi;
};

template <class T, class ReachFn>
PE_ATTN_TARGET void gemm(index_t M, index_t N, index_t K, const T* A, index_t ars, index_t acs, const T* B,
                         index_t ldb, T* C, index_t ldc, bool accumulate, ReachFn reach) {
  using VT = V<T>;
  constexpr int W = VT::W, MR = kMR, NV = kNV;
  static constexpr auto table = make_micro_table<T>(std::make_index_sequence<MR * NV>{});
  for (index_t j = 0; j < N; j += NV * W) {  // one panel of B (K x NV*W) stays in L1 ...
    for (index_t i = 0; i < M; i += MR) {    // ... while the rows of A stream past it
      const int mr = static_cast<int>(std::min<index_t>(M - i, MR));
      const Reach r = reach(i, mr);
      const index_t n = std::min<index_t>(std::min(N, r.n_hi) - j, NV * W);
      const index_t k_lo = std::max<index_t>(r.k_lo, 0), k = std::min(r.k_hi, K) - k_lo;
      if (n <= 0 || (k <= 0 && accumulate)) continue;  // nothing to write / nothing to add
      const int nv = static_cast<int>((n + W - 1) / W);
      const auto last = VT::mask_for(static_cast<int>(n - (nv - 1) * W));
      table[(mr - 1) * NV + (nv - 1)](std::max<index_t>(k, 0), A + i * ars + k_lo * acs, ars, acs,
                                      B + k_lo * ldb + j, ldb, C + i * ldc + j, ldc, last, accumulate);
    }
  }
}

// dst[d*ld + c] = src[c*lds + d]: K_j (nc rows of D, row stride lds) -> K_j^T
// (D x nc), likewise V_j^T. W x W blocks go through an in-register transpose;
// a partial block reads only its nc - c0 rows and D - d0 columns (masked) and
// fills the rest of its W columns with zeros, so ld must be at least nc
// rounded up to W (the workspace pads rows to 64 bytes).
template <class T>
PE_ATTN_TARGET void pack_transposed(const T* src, index_t lds, index_t nc, index_t D, T* dst, index_t ld) {
  using VT = V<T>;
  constexpr int W = VT::W;
  typename VT::reg r[W];
  for (index_t d0 = 0; d0 < D; d0 += W) {
    const int dn = static_cast<int>(std::min<index_t>(W, D - d0));
    const auto dmask = VT::mask_for(dn);
    for (index_t c0 = 0; c0 < nc; c0 += W) {
      const int cn = static_cast<int>(std::min<index_t>(W, nc - c0));
      for (int i = 0; i < W; ++i) r[i] = i < cn ? VT::load_part(src + (c0 + i) * lds + d0, dmask) : VT::zero();
      VT::transpose(r);
      for (int i = 0; i < dn; ++i) VT::store(dst + (d0 + i) * ld + c0, r[i]);
    }
  }
}

// ====================================================================== row helpers
// p[0:n) = 0 with vector stores. The rows zeroed here are short (the hidden tail of a
// score row, a Dv-wide accumulator row): a libc memset call per row (what std::fill_n
// becomes) cost more than the stores, ~10% of the backward pass at T = 128, D = 32.
template <class T>
PE_ATTN_TARGET void zero_span(T* p, index_t n) {
  using VT = V<T>;
  constexpr int W = VT::W;
  index_t c = 0;
  for (; c + W <= n; c += W) VT::store(p + c, VT::zero());
  if (c < n) VT::store_part(p + c, VT::mask_for(static_cast<int>(n - c)), VT::zero());
}

// zero_span on `rows` rows of n values, row stride ld.
template <class T>
PE_ATTN_TARGET void zero_block(T* p, index_t rows, index_t n, index_t ld) {
  for (index_t r = 0; r < rows; ++r) zero_span(p + r * ld, n);
}

// s[0:n) = scale * s[0:n), then the mask of query row (bh, i) over keys [j0, j0+n):
// bool: -inf where False; float: added.
template <class T>
PE_ATTN_TARGET void scale_mask_row(T* s, index_t n, T scale, const AttnMask& mk, index_t H, index_t bh, index_t i,
                                   index_t j0) {
  using VT = V<T>;
  constexpr int W = VT::W;
  if (n <= 0) return;
  const auto vs = VT::set1(scale);
  index_t c = 0;
  for (; c + W <= n; c += W) VT::store(s + c, VT::mul(VT::load(s + c), vs));
  if (c < n) {
    const auto m = VT::mask_for(static_cast<int>(n - c));
    VT::store_part(s + c, m, VT::mul(VT::load_part(s + c, m), vs));
  }
  if (mk.kind == AttnMask::none) return;
  const index_t base = (bh / H) * mk.sb + (bh % H) * mk.sh + i * mk.sq + j0 * mk.sk, sk = mk.sk;
  if (mk.kind == AttnMask::boolean) {
    const unsigned char* mb = static_cast<const unsigned char*>(mk.data) + base;
    const T ninf = -std::numeric_limits<T>::infinity();
    if (sk == 1) {
      for (c = 0; c < n; ++c) s[c] = mb[c] ? s[c] : ninf;
    } else {
      for (c = 0; c < n; ++c) s[c] = mb[c * sk] ? s[c] : ninf;
    }
  } else {
    const T* mf = static_cast<const T*>(mk.data) + base;
    if (sk == 1) {
      for (c = 0; c < n; ++c) s[c] += mf[c];
    } else {
      for (c = 0; c < n; ++c) s[c] += mf[c * sk];
    }
  }
}

// max(scale * s[0:n)), -inf for n = 0. The scale is applied here, in registers,
// rather than by a pass that writes s back: re-reading a row's masked tail right
// after a masked store of it stalls (no store-to-load forwarding); perf showed
// that load's first use as the hottest instruction of forward_block at T = 64.
template <class T>
PE_ATTN_TARGET T row_max(const T* s, index_t n, T scale) {
  using VT = V<T>;
  constexpr int W = VT::W;
  const auto ninf = VT::set1(-std::numeric_limits<T>::infinity()), vs = VT::set1(scale);
  auto acc = ninf;
  index_t c = 0;
  for (; c + W <= n; c += W) acc = VT::max(acc, VT::mul(VT::load(s + c), vs));
  if (c < n) {  // lanes past n are -inf after the scaling (a negative scale would flip a -inf fill)
    const auto mk = VT::mask_for(static_cast<int>(n - c));
    acc = VT::max(acc, VT::keep_part(VT::mul(VT::load_part(s + c, mk), vs), mk, ninf));
  }
  return VT::hmax(acc);
}

// Whether s[0:n) holds a NaN (only asked on the rare path where row_max returned -inf).
template <class T>
PE_ATTN_TARGET bool has_nan(const T* s, index_t n) {
  for (index_t c = 0; c < n; ++c)
    if (s[c] != s[c]) return true;
  return false;
}

// s[0:n) = exp(scale * s[0:n) - m) for a finite m (returns their sum) and s[n:nc) = 0, in
// one pass of whole-vector stores. The hidden tail of the row must be 0 for the block
// GEMMs that read it next; zeroing it in a pass of its own cost more than the exps at
// D = 32 (a memset call per row; or masked stores, which do not forward to the GEMM's
// scalar loads that follow). Lanes past n are computed from whatever s holds there
// and dropped by a select.
template <class T>
PE_ATTN_TARGET T exp_row_padded(T* s, index_t n, index_t nc, T scale, T m) {
  using VT = V<T>;
  constexpr int W = VT::W;
  const auto vm = VT::set1(m), vs = VT::set1(scale);
  auto sum = VT::zero();
  index_t c = 0;
  for (; c + W <= n; c += W) {
    const auto e = VT::exp(VT::sub(VT::mul(VT::load(s + c), vs), vm));
    VT::store(s + c, e);
    sum = VT::add(sum, e);
  }
  if (c < n) {  // the vector that holds column n
    const auto keep = VT::mask_for(static_cast<int>(n - c));
    if (c + W <= nc) {
      const auto e = VT::keep_part(VT::exp(VT::sub(VT::mul(VT::load(s + c), vs), vm)), keep, VT::zero());
      VT::store(s + c, e);
      sum = VT::add(sum, e);
    } else {
      const auto mk = VT::mask_for(static_cast<int>(nc - c));
      const auto e = VT::keep_part(VT::exp(VT::sub(VT::mul(VT::load_part(s + c, mk), vs), vm)), keep, VT::zero());
      VT::store_part(s + c, mk, e);
      sum = VT::add(sum, e);
    }
    c += W;
  }
  for (; c + W <= nc; c += W) VT::store(s + c, VT::zero());
  if (c < nc) VT::store_part(s + c, VT::mask_for(static_cast<int>(nc - c)), VT::zero());
  return VT::hsum(sum);
}

// dst[0:n) = alpha * src[0:n) (dst == src allowed)
template <class T>
PE_ATTN_TARGET void scale_row_into(T* dst, const T* src, index_t n, T alpha) {
  using VT = V<T>;
  constexpr int W = VT::W;
  const auto va = VT::set1(alpha);
  index_t c = 0;
  for (; c + W <= n; c += W) VT::store(dst + c, VT::mul(VT::load(src + c), va));
  if (c < n) {
    const auto mk = VT::mask_for(static_cast<int>(n - c));
    VT::store_part(dst + c, mk, VT::mul(VT::load_part(src + c, mk), va));
  }
}

// x[0:n) *= alpha
template <class T>
PE_ATTN_TARGET void scale_row(T* x, index_t n, T alpha) {
  scale_row_into(x, x, n, alpha);
}

// sum(x[0:n) * y[0:n))
template <class T>
PE_ATTN_TARGET T dot_row(const T* x, const T* y, index_t n) {
  using VT = V<T>;
  constexpr int W = VT::W;
  auto acc = VT::zero();
  index_t c = 0;
  for (; c + W <= n; c += W) acc = VT::fmadd(VT::load(x + c), VT::load(y + c), acc);
  if (c < n) {
    const auto mk = VT::mask_for(static_cast<int>(n - c));
    acc = VT::fmadd(VT::load_part(x + c, mk), VT::load_part(y + c, mk), acc);
  }
  return VT::hsum(acc);
}

// The backward's row pass: p[0:n) = exp(scale * p[0:n) - lse) (as exp_row_padded, without the sum), then
// dS in place in dp: dp[0:n) = ds_scale * p * (dp - delta) (dS = P o (dP - D_i), scale folded in), both
// rows 0 on [n, nc), in one pass of whole-vector stores (see exp_row_padded). One pass, P kept in
// registers: the backward had run exp_row_padded and a dS pass that read P back.
template <class T>
PE_ATTN_TARGET void p_ds_row_padded(T* p, T* dp, index_t n, index_t nc, T scale, T lse, T delta, T ds_scale) {
  using VT = V<T>;
  constexpr int W = VT::W;
  const auto vm = VT::set1(lse), vs = VT::set1(scale), vd = VT::set1(delta), vds = VT::set1(ds_scale);
  index_t c = 0;
  for (; c + W <= n; c += W) {
    const auto e = VT::exp(VT::sub(VT::mul(VT::load(p + c), vs), vm));
    VT::store(p + c, e);
    VT::store(dp + c, VT::mul(VT::mul(e, VT::sub(VT::load(dp + c), vd)), vds));
  }
  if (c < n) {  // the vector that holds column n
    const auto keep = VT::mask_for(static_cast<int>(n - c));
    if (c + W <= nc) {
      const auto e = VT::keep_part(VT::exp(VT::sub(VT::mul(VT::load(p + c), vs), vm)), keep, VT::zero());
      VT::store(p + c, e);
      VT::store(dp + c, VT::keep_part(VT::mul(VT::mul(e, VT::sub(VT::load(dp + c), vd)), vds), keep, VT::zero()));
    } else {
      const auto mk = VT::mask_for(static_cast<int>(nc - c));
      const auto e = VT::keep_part(VT::exp(VT::sub(VT::mul(VT::load_part(p + c, mk), vs), vm)), keep, VT::zero());
      VT::store_part(p + c, mk, e);
      VT::store_part(dp + c, mk,
                     VT::keep_part(VT::mul(VT::mul(e, VT::sub(VT::load_part(dp + c, mk), vd)), vds), keep,
                                   VT::zero()));
    }
    c += W;
  }
  for (; c + W <= nc; c += W) {
    VT::store(p + c, VT::zero());
    VT::store(dp + c, VT::zero());
  }
  if (c < nc) {
    const auto mk = VT::mask_for(static_cast<int>(nc - c));
    VT::store_part(p + c, mk, VT::zero());
    VT::store_part(dp + c, mk, VT::zero());
  }
}

// ====================================================================== causal reach
// For the block of query rows [i0, i0 + mr) and keys [j0, j0 + nc): the keys
// [j0, j0 + n) that rows [i0 + r, i0 + r + rows) can see (n for the last row, the
// one that sees most), and the first query row (relative to i0) that sees any of
// the keys [j0 + c, j0 + c + cols) (the first key's, seen earliest). Feed Reach:
// on the diagonal block the tiles skip the hidden triangle, about half its work.
template <class T>
PE_ATTN_TARGET auto visible_keys(const AttnArgs<T>& a, index_t i0, index_t j0, index_t nc) {
  return [&a, i0, j0, nc](index_t r, int rows) {
    return std::min(nc, std::max<index_t>(0, a.key_end(i0 + r + rows - 1) - j0));
  };
}
template <class T>
PE_ATTN_TARGET auto seeing_queries(const AttnArgs<T>& a, index_t i0, index_t j0, index_t mr) {
  return [&a, i0, j0, mr](index_t c, int) { return std::min(mr, std::max<index_t>(0, a.first_query(j0 + c) - i0)); };
}

// ====================================================================== forward
// One query block: rows [i0, i0 + mr) of head bh. Dao et al. 2022, Algorithm 1
// (inner loop over key blocks j), with the online softmax of Milakov &
// Gimelshein 2018:
//   S = scale Q_i K_j^T (+ mask)          m' = max(m, rowmax(S))
//   P = exp(S - m')                       l' = e^(m - m') l + rowsum(P)
//   O = e^(m - m') O + P V_j
// and at the end out_i = O / l, lse_i = m + log l.
template <class T>
PE_ATTN_TARGET void forward_block(const AttnArgs<T>& a, const Workspace<T>& ws, index_t bh, index_t i0) {
  const T ninf = -std::numeric_limits<T>::infinity();
  const index_t D = a.D, Dv = a.Dv, lds = ws.lds, ldo = ws.ldo;
  const index_t mr = std::min(a.br, a.Tq - i0);
  const index_t ldq = a.q_rows.st, ldk = a.k_rows.st, ldv = a.v_rows.st;
  const T* q_i = a.q + a.at(a.q_rows, bh, i0);
  const T* k_bh = a.k + a.at(a.k_rows, bh, 0);
  const T* v_bh = a.v + a.at(a.v_rows, bh, 0);
  T* S = ws.s;
  T* O = ws.o;
  T* m = ws.m;
  T* l = ws.l;
  for (index_t r = 0; r < mr; ++r) {
    m[r] = ninf;
    l[r] = T(0);
    zero_span(O + r * ldo, Dv);
  }

  // Key blocks wholly above the causal diagonal are never visited: the last row
  // of the block sees keys [0, kend), the others fewer.
  const index_t kend = a.key_end(i0 + mr - 1);
  for (index_t j0 = 0; j0 < kend; j0 += a.bc) {
    const index_t nc = std::min(a.bc, kend - j0);
    const auto keys = visible_keys(a, i0, j0, nc);
    pack_transposed(k_bh + j0 * ldk, ldk, nc, D, ws.kt, lds);
    gemm<T>(mr, nc, D, q_i, ldq, 1, ws.kt, lds, S, lds, false,
            [&](index_t r, int rows) { return Reach{keys(r, rows), 0, D}; });  // S = Q_i K_j^T
    // The rows' maxima first, then their exps: a row's max -> exp -> sum is a chain of dependent
    // horizontal reductions, and in two passes the rows of each pass are independent of each other, so
    // their chains overlap (one pass per row left the core waiting on each row's reductions).
    // Keys [j0, j0 + n) of this block are causally visible to row i0 + r.
    const auto visible = [&](index_t r) { return std::max<index_t>(0, std::min(nc, a.key_end(i0 + r) - j0)); };
    const T scale = a.mask.kind == AttnMask::none ? a.scale : T(1);  // else the mask pass applies it
    for (index_t r = 0; r < mr; ++r) {
      T* s = S + r * lds;
      const index_t n = visible(r);
      if (a.mask.kind != AttnMask::none) scale_mask_row(s, n, a.scale, a.mask, a.H, bh, i0 + r, j0);
      ws.mb[r] = row_max(s, n, scale);
    }
    for (index_t r = 0; r < mr; ++r) {
      T* s = S + r * lds;
      const index_t n = visible(r);
      T m_new = std::max(m[r], ws.mb[r]);
      if (m_new == ninf) {
        // Nothing visible yet: P = 0, O and l stay 0. Unless the scores hold a NaN that the max let go (a
        // vector max returns its second operand when either is NaN; std::max its first): then the row is
        // NaN from here on, as the formula says; m = NaN makes every later P, and so O and l, NaN.
        if (!has_nan(s, n)) {
          zero_span(s, nc);
          continue;
        }
        m_new = std::numeric_limits<T>::quiet_NaN();
      }
      if (ws.next) ws.next->touch();
      const T rowsum = exp_row_padded(s, n, nc, scale, m_new);  // P = exp(S - m'), 0 past n
      const T alpha = m[r] == ninf ? T(0) : std::exp(m[r] - m_new);  // e^(m - m'); 0 when m = -inf (no libm call)
      if (alpha != T(1) && m[r] != ninf) scale_row(O + r * ldo, Dv, alpha);  // (m = -inf: O holds 0 * V_j, kept)
      l[r] = alpha * l[r] + rowsum;
      m[r] = m_new;
    }
    gemm<T>(mr, Dv, nc, S, lds, 1, v_bh + j0 * ldv, ldv, O, ldo, true,
            [&](index_t r, int rows) { return Reach{Dv, 0, keys(r, rows)}; });  // O += P V_j
  }

  for (index_t r = 0; r < mr; ++r) {
    const index_t i = i0 + r;
    T* out_i = a.out + a.at(a.out_rows, bh, i);
    if (m[r] != ninf) {  // NaN and inf in the inputs reach out and lse through O, l and m
      // out = O / l in one pass from O (a copy followed by an in-place scale read each out row back right
      // after memmove wrote it, and that load waited on the stores: half of this function's own time at
      // T = 128, D = 32 in perf)
      scale_row_into(out_i, O + r * ldo, Dv, T(1) / l[r]);
      a.lse[bh * a.Tq + i] = m[r] + std::log(l[r]);
    } else {  // the row sees no key (every score masked): 0 by design, not the formula's 0 / 0
      zero_span(out_i, Dv);
      a.lse[bh * a.Tq + i] = ninf;
    }
  }
}

// ====================================================================== backward
// Dao et al. 2022, Algorithm 2 / appendix B.2, with P recomputed from the saved
// lse instead of (m, l): P = exp(S - lse).

// delta[bh, i] = D_i = rowsum(dO_i o O_i)  (so that dS = P o (dP - D_i)).
template <class T>
PE_ATTN_TARGET void backward_delta(const AttnArgs<T>& a, index_t bh, T* delta) {
  for (index_t i = 0; i < a.Tq; ++i) {
    delta[bh * a.Tq + i] = dot_row(a.dout + a.at(a.dout_rows, bh, i), a.out + a.at(a.out_rows, bh, i), a.Dv);
  }
}

// For query rows [i0, i0+mr) and keys [j0, j0+nc) of head bh, with K_j^T and
// V_j^T packed in ws.kt / ws.vt: leaves P in ws.s and scale * dS in ws.dp.
//   S = scale Q_i K_j^T (+ mask)   P = exp(S - lse)   dP = dO_i V_j^T
//   dS = P o (dP - D_i)
// A row with lse = -inf (it saw no key) gets P = dS = 0.
template <class T>
PE_ATTN_TARGET void backward_scores(const AttnArgs<T>& a, const Workspace<T>& ws, index_t bh, index_t i0,
                                    index_t mr, index_t j0, index_t nc) {
  const T ninf = -std::numeric_limits<T>::infinity();
  const index_t lds = ws.lds;
  const index_t row0 = bh * a.Tq + i0;  // of lse and delta
  T* P = ws.s;
  T* dS = ws.dp;
  const auto keys = visible_keys(a, i0, j0, nc);
  gemm<T>(mr, nc, a.D, a.q + a.at(a.q_rows, bh, i0), a.q_rows.st, 1, ws.kt, lds, P, lds, false,
          [&](index_t r, int rows) { return Reach{keys(r, rows), 0, a.D}; });  // S = Q_i K_j^T
  gemm<T>(mr, nc, a.Dv, a.dout + a.at(a.dout_rows, bh, i0), a.dout_rows.st, 1, ws.vt, lds, dS, lds, false,
          [&](index_t r, int rows) { return Reach{keys(r, rows), 0, a.Dv}; });  // dP = dO_i V_j^T
  for (index_t r = 0; r < mr; ++r) {
    const index_t i = i0 + r;
    T* p = P + r * lds;
    T* ds = dS + r * lds;
    const T lse = a.lse[row0 + r];
    // Keys [j0, j0 + n) are causally visible to row i; the rest of the row is 0.
    const index_t n = lse == ninf ? 0 : std::max<index_t>(0, std::min(nc, a.key_end(i) - j0));
    T scale = a.scale;  // applied by exp_row, unless the mask pass applies it first
    if (a.mask.kind != AttnMask::none) {
      scale_mask_row(p, n, a.scale, a.mask, a.H, bh, i, j0);
      scale = T(1);
    }
    if (ws.next) ws.next->touch();
    p_ds_row_padded(p, ds, n, nc, scale, lse, a.delta[row0 + r], a.scale);  // (n = 0: only the zeros)
  }
}

// One key block j = keys [j0, j0 + nc) of head bh: writes dK_j and dV_j (only this
// call touches those rows), looping over the query blocks that can see the block:
//   dV_j += P^T dO_i      dK_j += dS^T Q_i      (and dQ_i += dS K_j if with_dq)
// The first query block writes dK_j and dV_j instead of adding (no zeroing pass). With
// with_dq, the block j0 = 0 likewise writes the dq rows of the query blocks it visits
// (every block from first_query(0) on: each later key block visits a subset of them);
// the caller zeroes the rows before that first block.
// (The block GEMMs write 0 for a tile with nothing to add when not accumulating, so
// every row of a written block is set.)
template <class T>
PE_ATTN_TARGET void backward_key_block(const AttnArgs<T>& a, const Workspace<T>& ws, index_t bh, index_t j0,
                                       bool with_dq) {
  const index_t D = a.D, Dv = a.Dv, lds = ws.lds;
  const index_t nc = std::min(a.bc, a.Tk - j0);
  const index_t ldk = a.k_rows.st, lddk = a.dk_rows.st, lddv = a.dv_rows.st;
  const T* k_j = a.k + a.at(a.k_rows, bh, j0);
  T* dk_j = a.dk + a.at(a.dk_rows, bh, j0);
  T* dv_j = a.dv + a.at(a.dv_rows, bh, j0);
  // Query blocks wholly above the causal diagonal see none of these keys.
  const index_t first = a.first_query(j0) / a.br * a.br;
  if (first >= a.Tq) {  // no query sees these keys
    zero_block(dk_j, nc, D, lddk);
    zero_block(dv_j, nc, Dv, lddv);
    return;
  }
  pack_transposed(k_j, ldk, nc, D, ws.kt, lds);
  pack_transposed(a.v + a.at(a.v_rows, bh, j0), a.v_rows.st, nc, Dv, ws.vt, lds);
  for (index_t i0 = first; i0 < a.Tq; i0 += a.br) {
    const index_t mr = std::min(a.br, a.Tq - i0);
    const bool acc = i0 != first;
    backward_scores(a, ws, bh, i0, mr, j0, nc);
    const auto queries = seeing_queries(a, i0, j0, mr);
    gemm<T>(nc, Dv, mr, ws.s, 1, lds, a.dout + a.at(a.dout_rows, bh, i0), a.dout_rows.st, dv_j, lddv, acc,
            [&](index_t c, int cols) { return Reach{Dv, queries(c, cols), mr}; });  // dV_j += P^T dO_i
    gemm<T>(nc, D, mr, ws.dp, 1, lds, a.q + a.at(a.q_rows, bh, i0), a.q_rows.st, dk_j, lddk, acc,
            [&](index_t c, int cols) { return Reach{D, queries(c, cols), mr}; });  // dK_j += dS^T Q_i
    if (with_dq) {
      const auto keys = visible_keys(a, i0, j0, nc);
      gemm<T>(mr, D, nc, ws.dp, lds, 1, k_j, ldk, a.dq + a.at(a.dq_rows, bh, i0), a.dq_rows.st, j0 != 0,
              [&](index_t r, int rows) { return Reach{D, 0, keys(r, rows)}; });  // dQ_i += dS K_j
    }
  }
}

// One query block i = rows [i0, i0 + mr) of head bh: writes dQ_i (only this call
// touches those rows), looping over the key blocks the rows can see:
//   dQ_i += dS K_j
template <class T>
PE_ATTN_TARGET void backward_query_block(const AttnArgs<T>& a, const Workspace<T>& ws, index_t bh, index_t i0) {
  const index_t D = a.D, lds = ws.lds;
  const index_t mr = std::min(a.br, a.Tq - i0);
  T* dq_i = a.dq + a.at(a.dq_rows, bh, i0);
  const index_t kend = a.key_end(i0 + mr - 1);
  if (kend <= 0) zero_block(dq_i, mr, D, a.dq_rows.st);  // else the block j0 = 0 writes every row
  for (index_t j0 = 0; j0 < kend; j0 += a.bc) {
    const index_t nc = std::min(a.bc, kend - j0);
    const T* k_j = a.k + a.at(a.k_rows, bh, j0);
    pack_transposed(k_j, a.k_rows.st, nc, D, ws.kt, lds);
    pack_transposed(a.v + a.at(a.v_rows, bh, j0), a.v_rows.st, nc, a.Dv, ws.vt, lds);
    backward_scores(a, ws, bh, i0, mr, j0, nc);
    const auto keys = visible_keys(a, i0, j0, nc);
    gemm<T>(mr, D, nc, ws.dp, lds, 1, k_j, a.k_rows.st, dq_i, a.dq_rows.st, j0 != 0,
            [&](index_t r, int rows) { return Reach{D, 0, keys(r, rows)}; });  // dQ_i += dS K_j
  }
}

}  // namespace PE_ATTN_NS
}  // namespace attn
}  // namespace pe
