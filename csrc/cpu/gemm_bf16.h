// Public interface of the bfloat16 GEMM family (implementation: gemm_bf16.cpp).
//
//   C[b] (float32)  =  op(A[b]) @ op(B[b])      (bfloat16 operands, float32 accumulation)
//   C[b]           +=  op(A[b]) @ op(B[b])      with `accumulate`
//
// for b in [0, batch). Matrices are row-major with a unit column stride; `ld*` is the row stride and
// `stride_*` the batch stride, in elements (a batch stride of 0 broadcasts that operand). A bfloat16 value
// is its 16 bits (the upper half of a float32), held in a uint16_t.
//
// Three paths, picked at run time (bf16_path()):
//   amx         Intel AMX tiles (_tile_dpbf16ps): 16x32 A tiles times 16x16 "VNNI" B tiles into 16x16
//               float32 tiles. Needs the CPU flags amx-tile/amx-bf16 and the OS's permission to use the
//               tile data state, requested once with arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
//   avx512bf16  AVX512-BF16 dot products (_mm512_dpbf16_ps): pairs of bfloat16 products summed into float32.
//   generic     plain C++ (any CPU): each value widened to float32 exactly, products summed in float32.
// All three read the same packed operands (see gemm_bf16.cpp) and sum over k in float32; they differ in
// the order of the additions only, and the hardware paths treat float32 denormals as zero (as Intel
// documents for both instructions), so results agree to float32 rounding, not bit for bit.
//
// The conversions: f32_to_bf16 rounds to nearest, ties to even (NaN stays NaN, quieted; infinities and
// denormals convert exactly as the bit arithmetic says, never flushed); bf16_to_f32 is exact.
#pragma once
#include <cstdint>

#include "common.h"

namespace pe {

using bf16_t = std::uint16_t;

enum class Bf16Path : int { generic = 0, avx512bf16 = 1, amx = 2 };

// CPU (and, for AMX, OS) support. cpu_has_amx_bf16() makes the arch_prctl request the first time it is
// called; false if the kernel refuses it (an old kernel, or a seccomp policy), and the AMX path is not used.
bool cpu_has_avx512_bf16();
bool cpu_has_amx_bf16();

Bf16Path bf16_path_supported();  // the best path this machine allows
Bf16Path bf16_path();            // the path kernels use now: PYENGINE_BF16_PATH or set_bf16_path() caps it,
                                 // and a forced ISA below avx512 (PYENGINE_ISA, set_isa) means generic
void set_bf16_path(Bf16Path p);  // clamped to bf16_path_supported()
const char* bf16_path_name(Bf16Path p);

struct GemmBf16Args {
  index_t batch = 1;
  index_t M = 0, N = 0, K = 0;  // op(A): (M, K)   op(B): (K, N)   C: (M, N)

  const bf16_t* a = nullptr;  // stored (M, K), or (K, M) when trans_a
  index_t lda = 0, stride_a = 0;
  bool trans_a = false;

  const bf16_t* b = nullptr;  // stored (K, N), or (N, K) when trans_b
  index_t ldb = 0, stride_b = 0;
  bool trans_b = false;

  float* c = nullptr;  // (M, N); batches must not overlap
  index_t ldc = 0, stride_c = 0;

  bool accumulate = false;  // false: C is write-only (never read, may hold NaN)

  // (N,) float32 added to every row of the result (after the sums, before any rounding), or null.
  const float* bias = nullptr;

  // A bfloat16 result: with c16 set, the final values (sums + bias) are rounded to nearest even into c16 as
  // each block finishes, and C holds float32 partial sums only: it is needed (read and written) when K >
  // gemm_bf16_kc() or with `accumulate` (then C's values are the ones added to), and may be null otherwise.
  bf16_t* c16 = nullptr;
  index_t ldc16 = 0, stride_c16 = 0;
};

// Depth of one pass of the kernel: a bfloat16 result of K <= this needs no float32 C. A multiple of 32, at
// most gemm_bf16_kc_max (PYENGINE_BF16_KC sets it, read once).
constexpr index_t gemm_bf16_kc_max = 512;
index_t gemm_bf16_kc();

// Runs on bf16_path()'s kernel, on up to pe::num_threads() threads. The caller (the binding) has
// validated every pointer, size and stride.
void gemm_bf16(const GemmBf16Args& args);

// out[j] = sum over rows r of x[r * cols + j] (x: (rows, cols) bfloat16, contiguous; out: (cols,) float32),
// summed in float64 in row order, then rounded to float32 (the bias gradient of a bfloat16 linear). Columns
// are spread over threads, each summed by one: the same bits for any thread count.
void sum_rows_bf16(const bf16_t* x, index_t rows, index_t cols, float* out);

// y[i] = x[i] rounded to bfloat16 (nearest, ties to even) / widened to float32 (exact). n elements,
// contiguous; threaded for large n.
void f32_to_bf16(const float* x, bf16_t* y, index_t n);
void bf16_to_f32(const bf16_t* x, float* y, index_t n);

}  // namespace pe
