// bfloat16 GEMM with float32 accumulation: AMX tiles, AVX512-BF16 dot products, or plain C++.
//
// Structure (shapes of op(A): (M, K), op(B): (K, N), C: (M, N), row-major):
//
//   pack all of op(B), block by block (KC x NC), by all threads -> shared Bp  <- OpenMP (when B is one
//                                                                               matrix and fits 8 MiB)
//   for each work unit (batch b, rows [i0, i1), columns [j0, j1))            <- OpenMP
//     for pc in [0, K) step KC:                                              depth block
//       for jc in [j0, j1) on the NC grid of the matrix:                     column block
//         (its shared block, or: pack op(B)[pc:pc+kc, jc:jc+nc] -> Bp  (VNNI panels, below))  L2
//         for ic in [i0, i1) step MC:                                        row block
//           pack op(A)[ic:ic+mc, pc:pc+kc] -> Ap  (row-major, zero-padded)   L2
//           (or read A's rows in place; on AMX, a strip whose rows do not start on 64-byte lines is copied
//           to a tile-ordered buffer first: block_amx_tiled)
//           for each 32 x 32 block of C in it: the path's block kernel       L1 / tiles / registers
//
// Packed layouts, shared by every path:
//   Ap  mcp x kcp bfloat16, row-major (row stride kcp), mcp = mc rounded up to 32, kcp = kc rounded up to
//       32; the padding is zeros, so every block kernel runs full 32-row, 32-deep steps.
//   Bp  panels of 16 columns (ncp / 16 of them, ncp = nc rounded up to 32), each kcp / 2 rows of 16 pairs:
//       Bp[panel][k2][j][t] = op(B)[pc + 2*k2 + t][jc + 16*panel + j]  ("VNNI" order: the two values that
//       one 32-bit lane multiplies are adjacent). One 64-byte row of a panel is what an AMX B tile row and an
//       AVX-512 register hold, so the same buffer feeds _tile_dpbf16ps and _mm512_dpbf16_ps.
// A transposed operand only changes which packer loop runs.
//
// Block kernels (32 x 32 of C, k over the packed depth):
//   amx         C tiles 0-3 (2 x 2 of 16x16 float32), A tiles 4-5 (16 rows x 32 bf16), B tiles 6-7
//               (16 k-pairs x 16 columns). Per 32 deep: 4 tile loads, 4 _tile_dpbf16ps (16x16x32 each).
//   avx512bf16  8 rows at a time: 8 x 2 zmm accumulators; per k pair, one 32-bit broadcast of A's pair per
//               row times B's 32 pairs (two zmm rows of the panels).
//   generic     the same loop in plain C++ on float32 values.
// The first depth pass starts from zero (or from C with `accumulate`), later passes from C. A block that
// sticks out of C (edges) runs through a 32 x 32 float scratch tile, then its valid part is copied out; so
// does every block of the last pass when a bias is added or the result is bfloat16 (the epilogue: + bias,
// rounding with vcvtne2ps2bf16, masked stores), run one block late so it overlaps the next block's tile work.
//
// Threads: units are (batch, row range, column range) with their own C region and thread-private A packing
// buffers; ranges are split (in multiples of 32) until every thread has a unit. op(B) is packed once into a
// buffer all units read (the calling thread's, kept between calls), or, for a batched B or a large one, by
// each unit into its own buffer. Each C element is summed in the same order for any thread count.
#include "cpu/gemm_bf16.h"

#include "cpu/simd.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#if PE_X86
#include <cpuid.h>
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if PE_X86
#define PE_TARGET_AVX512BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma")))
#define PE_TARGET_AMX \
  __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma,amx-tile,amx-bf16")))
#else
#define PE_TARGET_AVX512BF16
#define PE_TARGET_AMX
#endif

namespace pe {

// ------------------------------------------------------------------ detection

bool cpu_has_avx512_bf16() {
#if PE_X86
  static const bool ok = [] {
    if (isa_supported() != Isa::avx512) return false;  // also says the OS saves the zmm state
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return (a & (1u << 5)) != 0;  // CPUID.(7,1):EAX[5] AVX512_BF16
  }();
  return ok;
#else
  return false;
#endif
}

bool cpu_has_amx_bf16() {
#if PE_X86 && defined(__linux__) && defined(__x86_64__)
  static const bool ok = [] {
    if (!cpu_has_avx512_bf16()) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = (d & (1u << 24)) != 0, bf16 = (d & (1u << 22)) != 0;  // CPUID.(7,0):EDX AMX-TILE, AMX-BF16
    if (!tile || !bf16) return false;
    // The OS must enable the tile state in XCR0 (bits 17 XTILECFG, 18 XTILEDATA) ...
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return false;
    // ... and, on Linux, grant this process the (large) tile data state on request.
    constexpr long kArchReqXcompPerm = 0x1023, kArchGetXcompPerm = 0x1022, kXfeatureXtiledata = 18;
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
    unsigned long bitmask = 0;
    if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0) return false;
    return (bitmask & (1ul << kXfeatureXtiledata)) != 0;
  }();
  return ok;
#else
  return false;
#endif
}

Bf16Path bf16_path_supported() {
  if (cpu_has_amx_bf16()) return Bf16Path::amx;
  if (cpu_has_avx512_bf16()) return Bf16Path::avx512bf16;
  return Bf16Path::generic;
}

static Bf16Path initial_bf16_path() {
  Bf16Path p = Bf16Path::amx;
  if (const char* env = std::getenv("PYENGINE_BF16_PATH")) {
    if (!std::strcmp(env, "generic")) p = Bf16Path::generic;
    else if (!std::strcmp(env, "avx512bf16")) p = Bf16Path::avx512bf16;
  }
  return p;
}

static Bf16Path g_bf16_cap = initial_bf16_path();

Bf16Path bf16_path() {
  if (isa() != Isa::avx512) return Bf16Path::generic;
  return std::min(g_bf16_cap, bf16_path_supported());
}

void set_bf16_path(Bf16Path p) { g_bf16_cap = std::min(p, bf16_path_supported()); }

const char* bf16_path_name(Bf16Path p) {
  switch (p) {
    case Bf16Path::amx: return "amx";
    case Bf16Path::avx512bf16: return "avx512bf16";
    default: return "generic";
  }
}

namespace gemm_bf16_detail {

constexpr index_t KC = gemm_bf16_kc_max;  // the buffers' depth (multiple of 32); a pass is gemm_bf16_kc() deep
constexpr index_t NC = 512;  // column block (multiple of 32)
constexpr index_t MC = 256;  // row block (multiple of 32)


void to_bf16_generic(const float* x, bf16_t* y, index_t n);
#if PE_X86
PE_TARGET_AVX512BF16 void to_bf16_avx512bf16(const float* x, bf16_t* y, index_t n);
#endif

#if PE_X86
// Whether any of the 32 floats lo, hi is a float32 denormal (exponent bits 0, mantissa not 0): vcvtne2ps2bf16
// flushes those, so such a group is rounded by the bit arithmetic instead (to_bf16_generic).
PE_TARGET_AVX512BF16 inline bool any_denormal(__m512 lo, __m512 hi) {
  const __m512i exp_mask = _mm512_set1_epi32(0x7f800000), man_mask = _mm512_set1_epi32(0x007fffff);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i ulo = _mm512_castps_si512(lo), uhi = _mm512_castps_si512(hi);
  const __mmask16 dlo = _mm512_mask_cmpeq_epi32_mask(_mm512_test_epi32_mask(ulo, man_mask),
                                                     _mm512_and_si512(ulo, exp_mask), zero);
  const __mmask16 dhi = _mm512_mask_cmpeq_epi32_mask(_mm512_test_epi32_mask(uhi, man_mask),
                                                     _mm512_and_si512(uhi, exp_mask), zero);
  return (dlo | dhi) != 0;
}
#endif

// The end of a block: rows of `src` (stride ss floats, m x n) plus the bias (n values, or null) rounded to
// bfloat16 into c16 (stride ldc16), or written as float32 into c (stride ldc) when c16 is null.
#if PE_X86
// finish_block's bfloat16 case in registers: each row's 32 values (+ bias) rounded by vcvtne2ps2bf16 and
// stored under a mask of the n valid columns; a row holding a float32 denormal (which that instruction
// flushes) goes through the bit arithmetic instead, so every value is the exact rounding.
PE_TARGET_AVX512BF16
void finish_rows_bf16_avx512(const float* src, index_t ss, index_t m, index_t n, const float* bias, bf16_t* c16,
                             index_t ldc16) {
  const std::uint32_t keep = n >= 32 ? 0xffffffffu : (1u << n) - 1u;
  const __mmask16 k0 = static_cast<__mmask16>(keep), k1 = static_cast<__mmask16>(keep >> 16);
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(k0, bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(k1, bias + 16) : _mm512_setzero_ps();
  for (index_t r = 0; r < m; ++r) {
    __m512 lo = _mm512_maskz_loadu_ps(k0, src + r * ss), hi = _mm512_maskz_loadu_ps(k1, src + r * ss + 16);
    if (bias) {
      lo = _mm512_add_ps(lo, b0);
      hi = _mm512_add_ps(hi, b1);
    }
    if (any_denormal(lo, hi)) {
      alignas(64) float row[32];
      _mm512_store_ps(row, lo);
      _mm512_store_ps(row + 16, hi);
      to_bf16_generic(row, c16 + r * ldc16, n);
      continue;
    }
    _mm512_mask_storeu_epi16(c16 + r * ldc16, keep, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
}
#endif

void finish_block(const float* src, index_t ss, index_t m, index_t n, const float* bias, bf16_t* c16,
                  index_t ldc16, float* c, index_t ldc, bool simd) {
#if PE_X86
  if (simd && c16) {
    finish_rows_bf16_avx512(src, ss, m, n, bias, c16, ldc16);
    return;
  }
#endif
  alignas(64) float row[32];
  for (index_t r = 0; r < m; ++r) {
    const float* v = src + r * ss;
    if (bias) {
      for (index_t j = 0; j < n; ++j) row[j] = v[j] + bias[j];
      v = row;
    }
    if (c16) {
#if PE_X86
      if (simd) {
        to_bf16_avx512bf16(v, c16 + r * ldc16, n);
        continue;
      }
#endif
      to_bf16_generic(v, c16 + r * ldc16, n);
    } else if (v != c + r * ldc) {
      std::memcpy(c + r * ldc, v, n * sizeof(float));
    }
  }
  (void)simd;
}

inline float bf16_value(bf16_t v) {
  std::uint32_t u = static_cast<std::uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline bf16_t bf16_round(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_t>((u >> 16) | 0x40u);  // NaN: quiet it
  u += 0x7fffu + ((u >> 16) & 1u);                                                      // nearest, ties to even
  return static_cast<bf16_t>(u >> 16);
}

// ------------------------------------------------------------------ packing

#if PE_X86
// The 16-bit interleave of two rows x, y (32 values each): lo = x0 y0 x1 y1 ... x15 y15, hi = x16 y16 ... x31 y31:
// the (k, k+1) pairs of 32 columns, as one 64-byte row of two VNNI panels.
PE_TARGET_AVX512BF16 inline void interleave_pairs(__m512i x, __m512i y, __m512i& lo, __m512i& hi) {
  alignas(64) static const std::uint16_t idx_lo[32] = {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
                                                       8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  alignas(64) static const std::uint16_t idx_hi[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54,
                                                       23, 55, 24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61,
                                                       30, 62, 31, 63};
  lo = _mm512_permutex2var_epi16(x, _mm512_load_si512(idx_lo), y);
  hi = _mm512_permutex2var_epi16(x, _mm512_load_si512(idx_hi), y);
}

// Bp rows for columns [0, n32) (a multiple of 32) of a B stored (K, N): rows k, k+1 interleaved, 32 columns
// (two panels) per step.
PE_TARGET_AVX512BF16
void pack_b_rows_avx512(const bf16_t* b, index_t ldb, index_t p0, index_t kc, index_t j0, index_t n32,
                        index_t kcp, bf16_t* bp) {
  const index_t panel_size = kcp * 16;
  for (index_t k = 0; k + 1 < kc; k += 2) {
    const bf16_t* r0 = b + (p0 + k) * ldb + j0;
    const bf16_t* r1 = r0 + ldb;
    for (index_t j = 0; j < n32; j += 32) {
      __m512i lo, hi;
      interleave_pairs(_mm512_loadu_si512(r0 + j), _mm512_loadu_si512(r1 + j), lo, hi);
      _mm512_storeu_si512(bp + (j >> 4) * panel_size + (k >> 1) * 32, lo);
      _mm512_storeu_si512(bp + ((j >> 4) + 1) * panel_size + (k >> 1) * 32, hi);
    }
  }
}

// Ap[r][k] for a transposed A (op(A)[i][k] = a[k * lda + i]), 32 rows x 32 deep at a time: rows k, k+1 of the
// stored A interleaved give the (k, k+1) pairs of 32 values of i as 32-bit units; a 16 x 16 transpose of those
// units puts each i's 16 pairs (32 values of k) in one register, a row of Ap. Full blocks only: r32, k32 are
// multiples of 32.
PE_TARGET_AVX512BF16
void pack_a_trans_avx512(const bf16_t* a, index_t lda, index_t i0, index_t r32, index_t p0, index_t k32,
                         index_t kcp, bf16_t* ap) {
  for (index_t r = 0; r < r32; r += 32) {
    for (index_t k = 0; k < k32; k += 32) {
      __m512 lo[16], hi[16];
      for (int k2 = 0; k2 < 16; ++k2) {
        const bf16_t* s0 = a + (p0 + k + 2 * k2) * lda + i0 + r;
        __m512i l, h;
        interleave_pairs(_mm512_loadu_si512(s0), _mm512_loadu_si512(s0 + lda), l, h);
        lo[k2] = _mm512_castsi512_ps(l);
        hi[k2] = _mm512_castsi512_ps(h);
      }
      simd::Vec<float, Isa::avx512>::transpose(lo);  // lo[i] = the 16 pairs of row r + i
      simd::Vec<float, Isa::avx512>::transpose(hi);  // hi[i]: row r + 16 + i
      for (int i = 0; i < 16; ++i) {
        _mm512_storeu_ps(reinterpret_cast<float*>(ap + (r + i) * kcp + k), lo[i]);
        _mm512_storeu_ps(reinterpret_cast<float*>(ap + (r + 16 + i) * kcp + k), hi[i]);
      }
    }
  }
}
// Bp rows for a transposed B (op(B)[k][j] = b[j * ldb + k]), columns [0, n16) (a multiple of 16), depth
// [0, k32) (a multiple of 32), 16 columns x 32 deep at a time: row j of the stored B holds column j's (k, k+1)
// pairs as 32-bit units, so 16 rows loaded as 16 registers and transposed as 16 x 16 units give the 16 panel
// rows k2 (each: one pair of every column), stored as they are.
PE_TARGET_AVX512BF16
void pack_b_trans_avx512(const bf16_t* b, index_t ldb, index_t p0, index_t k32, index_t j0, index_t n16,
                         index_t kcp, bf16_t* bp) {
  const index_t panel_size = kcp * 16;
  for (index_t j = 0; j < n16; j += 16) {
    bf16_t* panel = bp + (j >> 4) * panel_size;
    for (index_t k = 0; k < k32; k += 32) {
      __m512 r[16];
      for (int t = 0; t < 16; ++t) r[t] = _mm512_castsi512_ps(_mm512_loadu_si512(b + (j0 + j + t) * ldb + p0 + k));
      simd::Vec<float, Isa::avx512>::transpose(r);  // r[k2] = pair k2 of the 16 columns
      for (int k2 = 0; k2 < 16; ++k2) _mm512_storeu_ps(reinterpret_cast<float*>(panel + ((k >> 1) + k2) * 32), r[k2]);
    }
  }
}

// y[i] = x[i] widened to float32 (exact: the 16 bits become the upper half), 16 values per step.
PE_TARGET_AVX512BF16
void to_f32_avx512(const bf16_t* x, float* y, index_t n) {
  index_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
    const __m512i hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 16)));
    _mm512_storeu_si512(y + i, _mm512_slli_epi32(lo, 16));
    _mm512_storeu_si512(y + i + 16, _mm512_slli_epi32(hi, 16));
  }
  if (i < n) {
    const __mmask16 m0 = static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
    const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m0, x + i));
    _mm512_mask_storeu_epi32(y + i, m0, _mm512_slli_epi32(lo, 16));
    if (n - i > 16) {
      const __mmask16 m1 = static_cast<__mmask16>((1u << (n - i - 16)) - 1);
      const __m512i hi = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m1, x + i + 16));
      _mm512_mask_storeu_epi32(y + i + 16, m1, _mm512_slli_epi32(hi, 16));
    }
  }
}
#endif

// Ap[r][k] = op(A)[i0 + r][p0 + k] for r < mc, k < kc; zeros up to mcp x kcp. simd: AVX-512 may be used.
void pack_a(const bf16_t* a, index_t lda, bool trans, index_t i0, index_t mc, index_t p0, index_t kc, index_t mcp,
            index_t kcp, bf16_t* ap, bool simd) {
  if (!trans) {
    for (index_t r = 0; r < mc; ++r) {
      std::memcpy(ap + r * kcp, a + (i0 + r) * lda + p0, kc * sizeof(bf16_t));
      std::memset(ap + r * kcp + kc, 0, (kcp - kc) * sizeof(bf16_t));
    }
  } else {  // op(A)[i][k] = a[k * lda + i]
    for (index_t r = 0; r < mc; ++r) std::memset(ap + r * kcp + kc, 0, (kcp - kc) * sizeof(bf16_t));
    index_t r32 = 0, k32 = 0;
#if PE_X86
    if (simd) {
      r32 = mc / 32 * 32, k32 = kc / 32 * 32;
      pack_a_trans_avx512(a, lda, i0, r32, p0, k32, kcp, ap);
    }
#endif
    (void)simd;
    for (index_t k = 0; k < kc; ++k) {  // what the vector blocks left: rows past r32, depth past k32
      const bf16_t* src = a + (p0 + k) * lda + i0;
      for (index_t r = k < k32 ? r32 : 0; r < mc; ++r) ap[r * kcp + k] = src[r];
    }
  }
  for (index_t r = mc; r < mcp; ++r) std::memset(ap + r * kcp, 0, kcp * sizeof(bf16_t));
}

// Bp[panel][k2][j][t] = op(B)[p0 + 2 k2 + t][j0 + 16 panel + j], zeros outside kc x nc, ncp / 16 panels.
void pack_b(const bf16_t* b, index_t ldb, bool trans, index_t p0, index_t kc, index_t j0, index_t nc, index_t kcp,
            index_t ncp, bf16_t* bp, bool simd) {
  if (kc % 32 != 0 || nc % 32 != 0) std::memset(bp, 0, kcp * ncp * sizeof(bf16_t));  // else all written below
  const index_t panel_size = kcp * 16;  // (kcp / 2) rows of 32 values
  if (!trans) {  // op(B)[k][j] = b[k * ldb + j]: rows of B are contiguous along j
    index_t n32 = 0;
#if PE_X86
    if (simd) {
      n32 = nc / 32 * 32;
      pack_b_rows_avx512(b, ldb, p0, kc, j0, n32, kcp, bp);
    }
#endif
    (void)simd;
    for (index_t k = 0; k < kc; ++k) {  // what the vector path left: columns past n32, an odd last row
      const bf16_t* src = b + (p0 + k) * ldb + j0;
      const index_t k2 = k >> 1, t = k & 1;
      for (index_t j = (k + 1 < kc || (kc & 1) == 0) ? n32 : 0; j < nc; ++j)
        bp[(j >> 4) * panel_size + k2 * 32 + (j & 15) * 2 + t] = src[j];
    }
  } else {  // op(B)[k][j] = b[j * ldb + k]: each column of op(B) is contiguous along k, pairs adjacent
    index_t n16 = 0, k32 = 0;
#if PE_X86
    if (simd) {
      n16 = nc / 16 * 16;
      k32 = kc / 32 * 32;
      pack_b_trans_avx512(b, ldb, p0, k32, j0, n16, kcp, bp);
    }
#endif
    for (index_t j = 0; j < nc; ++j) {  // what the vector path left: columns past n16, depth past k32
      const bf16_t* src = b + (j0 + j) * ldb + p0;
      bf16_t* dst = bp + (j >> 4) * panel_size + (j & 15) * 2;
      index_t k = j < n16 ? k32 : 0;
      for (; k + 1 < kc; k += 2) std::memcpy(dst + (k >> 1) * 32, src + k, 2 * sizeof(bf16_t));
      if (k < kc) dst[(k >> 1) * 32] = src[k];
    }
  }
}

// ------------------------------------------------------------------ block kernels
// c (ldc floats per row) is the 32 x 32 block; ap its 32 rows of A (row stride sa: the packed block's kcp, or
// A's own lda when its rows are read in place), kcp deep; bp0/bp1 its two 16-column panels (panel row k2 at
// bp + 32 k2). load_c: start from c, else from zero.

void block_generic(const bf16_t* ap, index_t sa, index_t kcp, const bf16_t* bp0, const bf16_t* bp1, float* c,
                   index_t ldc, bool load_c) {
  for (int r0 = 0; r0 < 32; r0 += 8) {
    float acc[8][32];
    for (int r = 0; r < 8; ++r)
      for (int j = 0; j < 32; ++j) acc[r][j] = load_c ? c[(r0 + r) * ldc + j] : 0.f;
    for (index_t k = 0; k < kcp; k += 2) {
      float b0[32], b1[32];  // op(B) rows k and k+1, 32 columns
      for (int j = 0; j < 16; ++j) {
        b0[j] = bf16_value(bp0[k * 16 + 2 * j]);
        b1[j] = bf16_value(bp0[k * 16 + 2 * j + 1]);
        b0[16 + j] = bf16_value(bp1[k * 16 + 2 * j]);
        b1[16 + j] = bf16_value(bp1[k * 16 + 2 * j + 1]);
      }
      for (int r = 0; r < 8; ++r) {
        const float a0 = bf16_value(ap[(r0 + r) * sa + k]), a1 = bf16_value(ap[(r0 + r) * sa + k + 1]);
        for (int j = 0; j < 32; ++j) acc[r][j] += a0 * b0[j] + a1 * b1[j];
      }
    }
    for (int r = 0; r < 8; ++r)
      for (int j = 0; j < 32; ++j) c[(r0 + r) * ldc + j] = acc[r][j];
  }
}

#if PE_X86
PE_TARGET_AVX512BF16
void block_avx512bf16(const bf16_t* ap, index_t sa, index_t kcp, const bf16_t* bp0, const bf16_t* bp1, float* c,
                      index_t ldc, bool load_c) {
  constexpr int R = 8;
  for (int r0 = 0; r0 < 32; r0 += R) {
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r) {
      acc[r][0] = load_c ? _mm512_loadu_ps(c + (r0 + r) * ldc) : _mm512_setzero_ps();
      acc[r][1] = load_c ? _mm512_loadu_ps(c + (r0 + r) * ldc + 16) : _mm512_setzero_ps();
    }
    const bf16_t* arow = ap + r0 * sa;
    for (index_t k = 0; k < kcp; k += 2) {
      const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp0 + k * 16);
      const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp1 + k * 16);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        std::int32_t pair;
        std::memcpy(&pair, arow + r * sa + k, 4);
        const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
      }
    }
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_ps(c + (r0 + r) * ldc, acc[r][0]);
      _mm512_storeu_ps(c + (r0 + r) * ldc + 16, acc[r][1]);
    }
  }
}

// The tile shapes, loaded once per thread before its first block (palette 1: 8 tiles of up to 16 rows x
// 64 bytes). Every tile used here is full: 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  std::uint8_t palette_id;
  std::uint8_t start_row;
  std::uint8_t reserved[14];
  std::uint16_t colsb[16];
  std::uint8_t rows[16];
};

PE_TARGET_AMX
void amx_configure() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  // GCC 12 does not see that ldtilecfg reads the struct and drops the stores above without this barrier
  __asm__ volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

PE_TARGET_AMX
void amx_release() { _tile_release(); }

// The AMX block, A's two 16-row tiles at step k read at a0 + k ak and a1 + k ak with a row stride of sa
// elements: A's rows in place (a1 = a0 + 16 sa, ak = 1), or a strip in tile order (block_amx_tiled).
PE_TARGET_AMX
inline void block_amx_core(const bf16_t* a0, const bf16_t* a1, index_t ak, index_t sa_elems, index_t kcp,
                           const bf16_t* bp0, const bf16_t* bp1, float* c, index_t ldc, bool load_c) {
  const long sc = static_cast<long>(ldc * sizeof(float)), sa = static_cast<long>(sa_elems * sizeof(bf16_t));
  if (load_c) {
    _tile_loadd(0, c, sc);
    _tile_loadd(1, c + 16, sc);
    _tile_loadd(2, c + 16 * ldc, sc);
    _tile_loadd(3, c + 16 * ldc + 16, sc);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  // Each load is placed just before the first product that needs it, so it can overlap the products
  // already issued (the tile registers are not renamed).
  for (index_t k = 0; k < kcp; k += 32) {
    _tile_loadd(4, a0 + k * ak, sa);
    _tile_loadd(6, bp0 + k * 16, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_loadd(7, bp1 + k * 16, 64);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(5, a1 + k * ak, sa);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, sc);
  _tile_stored(1, c + 16, sc);
  _tile_stored(2, c + 16 * ldc, sc);
  _tile_stored(3, c + 16 * ldc + 16, sc);
}

PE_TARGET_AMX
void block_amx(const bf16_t* ap, index_t sa, index_t kcp, const bf16_t* bp0, const bf16_t* bp1, float* c, index_t ldc,
               bool load_c) {
  block_amx_core(ap, ap + 16 * sa, 1, sa, kcp, bp0, bp1, c, ldc, load_c);
}

// The same 32 x 32 block with A in tile order (`at`, see tile_a): at step k the two A tiles are the
// contiguous 1 KiB runs at at + 32 k and at + 32 k + 512 (16 rows of 64 bytes each).
PE_TARGET_AMX
void block_amx_tiled(const bf16_t* at, index_t kcp, const bf16_t* bp0, const bf16_t* bp1, float* c, index_t ldc,
                     bool load_c) {
  block_amx_core(at, at + 512, 32, 32, kcp, bp0, bp1, c, ldc, load_c);
}

// at[(k / 32) * 1024 + r * 32 + (k % 32)] = a[r * sa + k] for 32 rows r, k < kcp (a multiple of 32): a strip of
// A in the order its tiles are loaded, one 64-byte row copy at a time.
PE_TARGET_AVX512BF16
void tile_a(const bf16_t* a, index_t sa, index_t kcp, bf16_t* at) {
  for (index_t k = 0; k < kcp; k += 32)
    for (int r = 0; r < 32; ++r) _mm512_store_si512(at + 32 * k + 32 * r, _mm512_loadu_si512(a + r * sa + k));
}
#endif

using BlockFn = void (*)(const bf16_t*, index_t, index_t, const bf16_t*, const bf16_t*, float*, index_t, bool);

BlockFn block_for(Bf16Path p) {
#if PE_X86
  if (p == Bf16Path::amx) return block_amx;
  if (p == Bf16Path::avx512bf16) return block_avx512bf16;
#endif
  (void)p;
  return block_generic;
}

struct Unit {
  index_t b, i0, i1, j0, j1;
};

// Buffers of one thread, 64-byte aligned.
struct Buffers {
  bf16_t* ap = nullptr;
  bf16_t* bp = nullptr;
  bf16_t* at = nullptr;  // one 32-row strip of A in tile order (AMX)
  Buffers() {
    ap = static_cast<bf16_t*>(::operator new[](MC * KC * sizeof(bf16_t), std::align_val_t(64)));
    at = static_cast<bf16_t*>(::operator new[](32 * KC * sizeof(bf16_t), std::align_val_t(64)));
    bp = static_cast<bf16_t*>(::operator new[](KC * NC * sizeof(bf16_t), std::align_val_t(64)));
  }
  ~Buffers() {
    ::operator delete[](ap, std::align_val_t(64));
    ::operator delete[](bp, std::align_val_t(64));
    ::operator delete[](at, std::align_val_t(64));
  }
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;
};

// op(B) packed whole before the units start, by all the threads together, and then read by all of them
// (instead of each unit packing the blocks it uses: with two threads splitting M, both packed all of B).
// Block (p, q) -- depth [p KP, p KP + kc), columns [q NC, q NC + nc) -- is laid out as pack_b writes it, at
// offset[p * nq + q]. Used when B is one matrix for the whole batch and the packed copy is small enough;
// the buffer belongs to the calling thread and is kept for its next call.
struct SharedB {
  const bf16_t* data = nullptr;  // null: every unit packs its own blocks
  index_t KP = 0, nq = 0;
  std::vector<index_t> offset;
  const bf16_t* block(index_t p, index_t q) const { return data + offset[static_cast<size_t>(p * nq + q)]; }
};

constexpr index_t kSharedBMax = index_t(8) << 20;  // bytes of packed B shared at most

void run_unit(const GemmBf16Args& g, const Unit& u, BlockFn block, bool simd, bool amx, Buffers& buf,
              const SharedB& sb) {
  // A's rows read in place by AMX tile loads are whole cache lines only when every row starts on one; else
  // (NumPy aligns arrays to 16 bytes) each 64-byte tile row straddles two lines, and the strip is copied to
  // buf.at in tile order first: on the GPT's K = 384 shapes, 2.7-2.9 ms instead of 3.3-3.4 (1 thread)
  const bool a_lines = reinterpret_cast<std::uintptr_t>(g.a) % 64 == 0 && (g.lda * sizeof(bf16_t)) % 64 == 0 &&
                       (g.stride_a * sizeof(bf16_t)) % 64 == 0;
  const bf16_t* A = g.a + u.b * g.stride_a;
  const bf16_t* B = g.b + u.b * g.stride_b;
  float* C = g.c + u.b * g.stride_c;
  bf16_t* C16 = g.c16 ? g.c16 + u.b * g.stride_c16 : nullptr;
  alignas(64) float scratch[32 * 32];
  // The final blocks' epilogue runs one block late: block jr's tiles are stored into one of two tiles here
  // while block jr - 1's (the other) is finished, so the rounding does not wait on tile stores just issued.
  alignas(64) float ready[2][32 * 32];
  struct Pending {
    const float* src = nullptr;
    index_t m = 0, n = 0;
    const float* bias = nullptr;
    bf16_t* c16 = nullptr;
    float* c = nullptr;
  } pending;
  auto flush = [&] {
    if (pending.src)
      finish_block(pending.src, 32, pending.m, pending.n, pending.bias, pending.c16, g.ldc16, pending.c, g.ldc, simd);
    pending.src = nullptr;
  };
  int slot = 0;
  if (g.K == 0) {  // no products: C = bias (or 0), or C + bias with accumulate
    for (index_t i = u.i0; i < u.i1; ++i)
      for (index_t j = u.j0; j < u.j1; j += 32) {
        const index_t n = std::min<index_t>(32, u.j1 - j);
        for (index_t t = 0; t < n; ++t) scratch[t] = g.accumulate ? C[i * g.ldc + j + t] : 0.f;
        finish_block(scratch, 32, 1, n, g.bias ? g.bias + j : nullptr, C16 ? C16 + i * g.ldc16 + j : nullptr,
                     g.ldc16, C ? C + i * g.ldc + j : nullptr, g.ldc, simd);
      }
    return;
  }
  const index_t KP = gemm_bf16_kc();
  for (index_t pc = 0; pc < g.K; pc += KP) {
    const index_t kc = std::min(KP, g.K - pc), kcp = round_up(kc, 32);
    const bool load_c = pc > 0 || g.accumulate;
    const bool last = pc + KP >= g.K;
    for (index_t q = u.j0 / NC; q * NC < u.j1; ++q) {  // column blocks of NC on the matrix's grid
      const index_t jg = q * NC, jc = std::max(jg, u.j0);    // (u.j0 is a multiple of 32: so is jc - jg)
      const index_t nc = std::min(jg + NC, u.j1) - jc, ncp = round_up(nc, 32);
      const bf16_t* bpc = buf.bp;
      if (sb.data) bpc = sb.block(pc / KP, q) + ((jc - jg) / 16) * kcp * 16;
      else pack_b(B, g.ldb, g.trans_b, pc, kc, jc, nc, kcp, ncp, buf.bp, simd);
      for (index_t ic = u.i0; ic < u.i1; ic += MC) {
        const index_t mc = std::min(MC, u.i1 - ic), mcp = round_up(mc, 32);
        // A's rows are read in place (tile loads / broadcasts with stride lda) when it is not transposed and
        // the depth block is whole 32-steps; only a last block of fewer than 32 rows is packed (zero-padded)
        const bool direct = !g.trans_a && kc == kcp;
        const index_t full = direct ? mc / 32 * 32 : 0;
        if (!direct) pack_a(A, g.lda, g.trans_a, ic, mc, pc, kc, mcp, kcp, buf.ap, simd);
        else if (full < mc) pack_a(A, g.lda, false, ic + full, mc - full, pc, kc, 32, kcp, buf.ap, simd);
        for (index_t ir = 0; ir < mcp; ir += 32) {
          const index_t m = std::min<index_t>(32, mc - ir);
          const bool in_place = ir < full;
          const bf16_t* apr = in_place ? A + (ic + ir) * g.lda + pc : buf.ap + (direct ? 0 : ir * kcp);
          const index_t sa = in_place ? g.lda : kcp;
          const bool tiled = amx && in_place && !a_lines;
#if PE_X86
          if (tiled) tile_a(apr, sa, kcp, buf.at);
#endif
          auto run_block = [&](const bf16_t* bp0, const bf16_t* bp1, float* c, index_t ldc) {
#if PE_X86
            if (tiled) return block_amx_tiled(buf.at, kcp, bp0, bp1, c, ldc, load_c);
#endif
            block(apr, sa, kcp, bp0, bp1, c, ldc, load_c);
          };
          for (index_t jr = 0; jr < ncp; jr += 32) {
            const index_t n = std::min<index_t>(32, nc - jr);
            const bf16_t* bp0 = bpc + (jr / 16) * kcp * 16;
            const bf16_t* bp1 = bp0 + kcp * 16;
            float* cb = C ? C + (ic + ir) * g.ldc + jc + jr : nullptr;
            if (last && (C16 || g.bias)) {  // the final values: through a ready tile, + bias, rounded
              float* tile = ready[slot];
              slot ^= 1;
              if (load_c) {
                std::fill(tile, tile + 32 * 32, 0.f);
                for (index_t r = 0; r < m; ++r) std::memcpy(tile + r * 32, cb + r * g.ldc, n * sizeof(float));
              }
              run_block(bp0, bp1, tile, 32);
              flush();  // the previous block's (the other tile)
              pending = {tile, m, n, g.bias ? g.bias + jc + jr : nullptr,
                         C16 ? C16 + (ic + ir) * g.ldc16 + jc + jr : nullptr, cb};
            } else if (m == 32 && n == 32) {
              run_block(bp0, bp1, cb, g.ldc);
            } else {  // edge: through the scratch tile
              if (load_c) {
                std::fill(scratch, scratch + 32 * 32, 0.f);
                for (index_t r = 0; r < m; ++r) std::memcpy(scratch + r * 32, cb + r * g.ldc, n * sizeof(float));
              }
              run_block(bp0, bp1, scratch, 32);
              for (index_t r = 0; r < m; ++r) std::memcpy(cb + r * g.ldc, scratch + r * 32, n * sizeof(float));
            }
          }
        }
      }
    }
  }
  flush();
}

std::vector<Unit> plan_units(const GemmBf16Args& g, int threads) {
  index_t mu = round_up(g.M, 32), nu = round_up(g.N, 32);
  auto count = [&] { return g.batch * ((g.M + mu - 1) / mu) * ((g.N + nu - 1) / nu); };
  while (count() < threads && (mu > 32 || nu > 32)) {
    if (mu >= nu && mu > 32) mu = round_up(mu / 2, 32);
    else if (nu > 32) nu = round_up(nu / 2, 32);
    else mu = round_up(mu / 2, 32);
  }
  std::vector<Unit> units;
  units.reserve(static_cast<size_t>(count()));
  for (index_t b = 0; b < g.batch; ++b)
    for (index_t i = 0; i < g.M; i += mu)
      for (index_t j = 0; j < g.N; j += nu) units.push_back({b, i, std::min(g.M, i + mu), j, std::min(g.N, j + nu)});
  return units;
}

}  // namespace gemm_bf16_detail

index_t gemm_bf16_kc() {
  static const index_t kc = [] {
    index_t v = gemm_bf16_kc_max;
    if (const char* env = std::getenv("PYENGINE_BF16_KC")) v = std::atoi(env) / 32 * 32;
    return std::min(gemm_bf16_kc_max, std::max<index_t>(32, v));
  }();
  return kc;
}

void gemm_bf16(const GemmBf16Args& g) {
  using namespace gemm_bf16_detail;
  if (g.batch <= 0 || g.M <= 0 || g.N <= 0) return;
  const Bf16Path path = bf16_path();
  const BlockFn block = block_for(path);
  const index_t flops = g.batch * g.M * g.N * std::max<index_t>(g.K, 1);
  const int threads = threads_for(flops, index_t(1) << 21);
  const std::vector<Unit> units = plan_units(g, threads);
  const index_t n_units = static_cast<index_t>(units.size());
  const bool amx = path == Bf16Path::amx, simd = path != Bf16Path::generic;
  // The shared packed B: its blocks' offsets, and the calling thread's buffer grown to hold them.
  SharedB sb;
  struct Block {
    index_t pc, kc, kcp, jc, nc, ncp;
  };
  std::vector<Block> sblocks;
  if ((g.batch == 1 || g.stride_b == 0) && g.K > 0) {
    sb.KP = gemm_bf16_kc();
    sb.nq = (g.N + NC - 1) / NC;
    index_t total = 0;
    for (index_t pc = 0; pc < g.K; pc += sb.KP)
      for (index_t q = 0; q < sb.nq; ++q) {
        const index_t kc = std::min(sb.KP, g.K - pc), nc = std::min(NC, g.N - q * NC);
        const Block b{pc, kc, round_up(kc, 32), q * NC, nc, round_up(nc, 32)};
        sb.offset.push_back(total);
        sblocks.push_back(b);
        total += b.kcp * b.ncp;
      }
    if (total * static_cast<index_t>(sizeof(bf16_t)) <= kSharedBMax) {
      struct Free {
        void operator()(bf16_t* p) const { ::operator delete[](p, std::align_val_t(64)); }
      };
      thread_local std::unique_ptr<bf16_t[], Free> keep;
      thread_local index_t keep_size = 0;
      if (keep_size < total) {
        keep.reset(static_cast<bf16_t*>(::operator new[](total * sizeof(bf16_t), std::align_val_t(64))));
        keep_size = total;
      }
      sb.data = keep.get();
    }
  }
  bf16_t* const sdata = const_cast<bf16_t*>(sb.data);
  const index_t n_sblocks = sdata ? static_cast<index_t>(sblocks.size()) : 0;
#if defined(PYENGINE_OPENMP)
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
  {
    Buffers buf;
#if defined(PYENGINE_OPENMP)
#pragma omp for schedule(dynamic, 1)  // (its end waits for every block: the units read all of them)
#endif
    for (index_t t = 0; t < n_sblocks; ++t) {
      const Block& b = sblocks[static_cast<size_t>(t)];
      pack_b(g.b, g.ldb, g.trans_b, b.pc, b.kc, b.jc, b.nc, b.kcp, b.ncp, sdata + sb.offset[static_cast<size_t>(t)],
             simd);
    }
#if PE_X86
    if (amx) amx_configure();
#endif
#if defined(PYENGINE_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (index_t t = 0; t < n_units; ++t) run_unit(g, units[static_cast<size_t>(t)], block, simd, amx, buf, sb);
#if PE_X86
    if (amx) amx_release();
#endif
  }
}

// ------------------------------------------------------------------ conversions

namespace gemm_bf16_detail {

void to_bf16_generic(const float* x, bf16_t* y, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = bf16_round(x[i]);
}

#if PE_X86
// vcvtne2ps2bf16 rounds to nearest even but treats denormal inputs as zero; 32 values at a time, any block
// holding a float32 denormal goes through the bit arithmetic instead (rare), so the result is the exact
// rounding for every input.
PE_TARGET_AVX512BF16
void to_bf16_avx512bf16(const float* x, bf16_t* y, index_t n) {
  index_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 lo = _mm512_loadu_ps(x + i), hi = _mm512_loadu_ps(x + i + 16);
    if (any_denormal(lo, hi)) {
      to_bf16_generic(x + i, y + i, 32);
      continue;
    }
    const __m512bh r = _mm512_cvtne2ps_pbh(hi, lo);
    _mm512_storeu_si512(y + i, (__m512i)r);
  }
  to_bf16_generic(x + i, y + i, n - i);
}
#endif

void to_f32(const bf16_t* x, float* y, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = bf16_value(x[i]);
}

}  // namespace gemm_bf16_detail

namespace gemm_bf16_detail {

constexpr index_t kSumCols = 64;  // columns per unit of sum_rows_bf16: 64 float64 accumulators

// Columns [c0, c0 + w) (w <= kSumCols) of x summed over its rows, in row order, in float64.
template <class Tag>
PE_INLINE void sum_cols_body(const bf16_t* x, index_t rows, index_t cols, index_t c0, index_t w, float* out) {
  double acc[kSumCols] = {};
  for (index_t r = 0; r < rows; ++r) {
    const bf16_t* row = x + r * cols + c0;
#pragma omp simd
    for (index_t j = 0; j < w; ++j) acc[j] += static_cast<double>(bf16_value(row[j]));
  }
  for (index_t j = 0; j < w; ++j) out[c0 + j] = static_cast<float>(acc[j]);
}

struct GenericTag {};
struct Avx512Tag {};
void sum_cols_generic(const bf16_t* x, index_t rows, index_t cols, index_t c0, index_t w, float* out) {
  sum_cols_body<GenericTag>(x, rows, cols, c0, w, out);
}
#if PE_X86
// The same sums (each column in row order, in float64): 16 columns per step widened to float32 (exact) and
// then to two halves of 8 float64, into 8 accumulator registers for the 64 columns of a unit.
PE_TARGET_AVX512BF16
void sum_cols_avx512(const bf16_t* x, index_t rows, index_t cols, index_t c0, index_t w, float* out) {
  if (w < kSumCols) {
    sum_cols_body<Avx512Tag>(x, rows, cols, c0, w, out);
    return;
  }
  __m512d acc[8];
  for (int q = 0; q < 8; ++q) acc[q] = _mm512_setzero_pd();
  for (index_t r = 0; r < rows; ++r) {
    const bf16_t* row = x + r * cols + c0;
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 16 * q));
      const __m512 f = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      acc[2 * q] = _mm512_add_pd(acc[2 * q], _mm512_cvtps_pd(_mm512_castps512_ps256(f)));
      acc[2 * q + 1] = _mm512_add_pd(
          acc[2 * q + 1], _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1))));
    }
  }
  for (int q = 0; q < 8; ++q) _mm256_storeu_ps(out + c0 + 8 * q, _mm512_cvtpd_ps(acc[q]));
}
#endif

}  // namespace gemm_bf16_detail

void sum_rows_bf16(const bf16_t* x, index_t rows, index_t cols, float* out) {
  using namespace gemm_bf16_detail;
  auto body = sum_cols_generic;
#if PE_X86
  if (bf16_path() != Bf16Path::generic) body = sum_cols_avx512;
#endif
  const index_t units = (cols + kSumCols - 1) / kSumCols;
  parallel_for(units, threads_for(rows * cols), 1, [&](index_t u) {
    const index_t c0 = u * kSumCols;
    body(x, rows, cols, c0, std::min(kSumCols, cols - c0), out);
  });
}

namespace gemm_bf16_detail {

// y[0:n) = convert(x[0:n)) in equal 64-aligned spans on threads: `simd` (AVX-512 paths) where the bf16
// path in use allows it, `plain` otherwise; elementwise, so the split does not change a bit.
template <class From, class To>
void convert_threaded(const From* x, To* y, index_t n, void (*simd)(const From*, To*, index_t),
                      void (*plain)(const From*, To*, index_t)) {
  const bool use_simd = PE_X86 && bf16_path() != Bf16Path::generic;
  const int threads = threads_for(n, index_t(1) << 17);
  const index_t chunk = round_up((n + threads - 1) / std::max(threads, 1), 64);
#if defined(PYENGINE_OPENMP)
#pragma omp parallel for num_threads(threads) if (threads > 1)
#endif
  for (int t = 0; t < threads; ++t) {
    const index_t lo = std::min(n, t * chunk), hi = std::min(n, lo + chunk);
    (use_simd ? simd : plain)(x + lo, y + lo, hi - lo);
  }
}

}  // namespace gemm_bf16_detail

void f32_to_bf16(const float* x, bf16_t* y, index_t n) {
  using namespace gemm_bf16_detail;
#if PE_X86
  convert_threaded(x, y, n, to_bf16_avx512bf16, to_bf16_generic);
#else
  convert_threaded(x, y, n, to_bf16_generic, to_bf16_generic);
#endif
}

void bf16_to_f32(const bf16_t* x, float* y, index_t n) {
  using namespace gemm_bf16_detail;
#if PE_X86
  convert_threaded(x, y, n, to_f32_avx512, to_f32);
#else
  convert_threaded(x, y, n, to_f32, to_f32);
#endif
}

}  // namespace pe
