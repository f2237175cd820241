// Public interface of the GEMM kernel family (implementation: gemm.cpp, the
// per-ISA micro-kernels in gemm_avx2.cpp / gemm_avx512.cpp).
//
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]  (+ bias, broadcast over rows)
//
// for b in [0, batch). All matrices are row-major with a unit column stride;
// `ld*` is the row stride and `stride_*` the batch stride, both in elements.
// A batch stride of 0 broadcasts that operand over the batch. Batches may
// come in two levels (`inner` > 0): batch b is (b / inner, b % inner), at
// b / inner * stride_x + b % inner * istride_x; the matmul op's 4-D operands,
// e.g. heads (B, H) of a (B, T, H, D) array, which no single stride describes.
#pragma once
#include "common.h"

namespace pe {

template <class T>
struct GemmArgs {
  index_t batch = 1;
  index_t M = 0, N = 0, K = 0;  // op(A): (M, K)   op(B): (K, N)   C: (M, N)
  T alpha = 1, beta = 0;        // beta == 0: C is write-only (never read, may hold NaN)

  const T* a = nullptr;  // stored (M, K), or (K, M) when trans_a
  index_t lda = 0, stride_a = 0;
  bool trans_a = false;

  const T* b = nullptr;  // stored (K, N), or (N, K) when trans_b
  index_t ldb = 0, stride_b = 0;
  bool trans_b = false;

  T* c = nullptr;  // (M, N); batches must not overlap
  index_t ldc = 0, stride_c = 0;

  index_t inner = 0;  // 0: one batch level (b * stride_x); else the inner level's size
  index_t istride_a = 0, istride_b = 0, istride_c = 0;

  // (N,) contiguous, added to every row of every C[b]; or null. It is added in
  // the micro-kernel's epilogue, with alpha and beta, while the C tile is in
  // registers: initialising C with the bias and running with beta = 1 would
  // cost one more write and read of all of C.
  const T* bias = nullptr;
};

// Runs on pe::isa()'s micro-kernel, on up to pe::num_threads() threads.
// The caller (the binding) has validated every pointer, size and stride.
template <class T>
void gemm(const GemmArgs<T>& args);

// Cache-blocking parameters (see gemm.cpp). Exposed so that a tuning script can
// try other values without rebuilding; mr/nr (the micro-tile) are fixed.
struct GemmBlocking {
  int mr, nr;             // micro-tile (compile-time, read only)
  index_t mc, kc, nc;     // blocks: mc multiple of mr, nc multiple of nr
};
GemmBlocking gemm_blocking(Isa level, char dtype);  // dtype 'f' or 'd'
void set_gemm_blocking(Isa level, char dtype, index_t mc, index_t kc, index_t nc);

// Tuning hook: the units per thread that several threads on few tall matrices
// aim at when they share one packed B (default kUnitsPerThread in gemm.cpp), or
// 0: each row block packs its own B (the plan for many matrices); returns the
// old value. For A/B timings in one process; not thread-safe.
int set_gemm_shared_b(int units_per_thread);

// Test hook: when on, the threads of run_shared_b (gemm.cpp) never use the shared packed B but pack every block
// they need privately, as they do when a peer holds a block they need (same bits); returns the old value.
bool set_gemm_own_b(bool on);

// Tuning hook: whether small C with a long depth (the weight gradients' shapes)
// runs as fixed depth chunks summed in order (run_depth_split in gemm.cpp; on
// by default) or by the plans above; returns the old value. Not thread-safe.
bool set_gemm_depth_split(bool on);

// Tuning hook: whether A with short rows (see kRowsAShortLdBytes in gemm.cpp; on
// by default) is read in place for any N up to one column block, or only for
// narrow C; returns the old value. Not thread-safe.
bool set_gemm_short_rows_a(bool on);

// Tuning hook: whether small one-thread problems take the unpacked one-pass path (run_small in gemm.cpp; on by
// default); returns the old value. Not thread-safe.
bool set_gemm_small(bool on);

}  // namespace pe
