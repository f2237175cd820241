// Internal to the GEMM family: the micro-kernel contract shared by gemm.cpp
// (blocking, packing, threading) and the per-ISA micro-kernel files.
#pragma once
#include "common.h"

namespace pe {
namespace gemm_detail {

// Micro-tile shapes, MR x NR, per ISA and dtype. NR runs along a row of C (the
// SIMD direction: NR / lanes vector registers per row), MR along its columns
// (one broadcast of A per row). The register budget decides them:
//   AVX-512 (32 zmm): 14 x 2 accumulators + 2 B vectors + broadcasts folded into
//                     the FMA's memory operand = 30 registers.
//   AVX2    (16 ymm):  6 x 2 accumulators + 2 B vectors + 1 broadcast = 15.
//   generic (plain C++, 16 xmm on SSE2/NEON): 4 x 2 accumulators after the
//                     compiler vectorises the NR loop.
// 28 (or 12) independent FMA chains cover the FMA latency (4 cycles) times the
// FMA ports (2), so the kernel can run at peak if its loads keep up.
template <class T> struct TileAvx512;
template <> struct TileAvx512<float> { static constexpr int MR = 14, NR = 32; };
template <> struct TileAvx512<double> { static constexpr int MR = 14, NR = 16; };
template <class T> struct TileAvx2;
template <> struct TileAvx2<float> { static constexpr int MR = 6, NR = 16; };
template <> struct TileAvx2<double> { static constexpr int MR = 6, NR = 8; };
template <class T> struct TileGeneric;
template <> struct TileGeneric<float> { static constexpr int MR = 4, NR = 8; };
template <> struct TileGeneric<double> { static constexpr int MR = 4, NR = 4; };

// The micro-kernel contract. a: packed A micro-panel, k steps of MR values
// (op(A) column p of the tile's rows at a[p*MR .. p*MR+MR)); b: packed B
// micro-panel, k steps of NR values. Both are zero-padded to the full tile, so
// the kernel always computes a full MR x NR product in registers; only the
// store is bounded by m <= MR, n <= NR:
//   C[i][j] = alpha * sum_p a[p*MR+i] * b[p*NR+j] + bias[j] + beta * C[i][j]
// for i < m, j < n. beta == 0 never reads C; bias may be null (no bias). k may
// be 0 (the tile is then alpha*0 + bias + beta*C).
template <class T>
using MicroKernel = void (*)(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n, T alpha,
                             T beta, const T* bias);

template <class T> void micro_generic(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n,
                                      T alpha, T beta, const T* bias);
#if PE_X86
// The target attribute must be on the first declaration of a template.
template <class T> PE_TARGET_AVX2 void micro_avx2(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n,
                                                  T alpha, T beta, const T* bias);
template <class T> PE_TARGET_AVX512 void micro_avx512(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n,
                                                      T alpha, T beta, const T* bias);
#endif

}  // namespace gemm_detail
}  // namespace pe
