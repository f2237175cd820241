// Internal to the conv family: for the paths that run on the GEMM micro-kernel without its driver
// (conv_winograd.cpp): a parallel loop that passes the thread, and a plain micro-kernel for the generic
// level (gemm.cpp keeps its generic kernels to itself: kernels_generic is not instantiated for other files).
#pragma once
#include "common.h"

namespace pe {
namespace cpu {
namespace panels {

// f(i, thread) for i < n on nt threads (dynamic schedule, one index at a time).
template <class F>
void par_for(index_t n, int nt, const F& f) {
  if (nt <= 1 || n <= 1) {
    for (index_t i = 0; i < n; ++i) f(i, 0);
    return;
  }
#if defined(PYENGINE_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (index_t i = 0; i < n; ++i) f(i, omp_get_thread_num());
#else
  for (index_t i = 0; i < n; ++i) f(i, 0);
#endif
}

// The micro-kernel contract (gemm_kernel.h) as a plain loop.
template <class T, int MR, int NR>
void micro_plain(index_t k, const T* a, const T* b, T* c, index_t ldc, int m, int n, T alpha, T beta,
                 const T* bias) {
  T acc[MR][NR] = {};
  for (index_t p = 0; p < k; ++p)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += a[p * MR + i] * b[p * NR + j];
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      T v = alpha * acc[i][j] + (bias ? bias[j] : T(0));
      if (beta != T(0)) v += beta * c[i * ldc + j];
      c[i * ldc + j] = v;
    }
}

}  // namespace panels
}  // namespace cpu
}  // namespace pe
