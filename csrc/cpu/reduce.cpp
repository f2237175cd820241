// Column sums and in-place array sums (see reduce.h).
//
// Memory-bound: x is read once. Each thread adds a block of rows into its own
// C-long double buffer, one row at a time (the row and the buffer stream
// through L1; the add is vectorised per ISA). Double, also for float input: a
// float running sum over thousands of rows drifts by ~sqrt(N) ulps, a double
// one is exact to the final rounding for any practical N, and the conversion
// costs nothing next to the memory traffic. The partial sums are then added in
// thread order: no atomics, and for a given thread count the result is
// deterministic. When there are too few rows to share, threads take column
// ranges instead (each column then summed in row order, as on one thread).
#include "cpu/reduce.h"

#include <algorithm>
#include <vector>

#include "cpu/simd.h"

namespace pe {
namespace cpu {
namespace {

// acc[0:C) += row[0:C), in double.
template <class T>
PE_INLINE void accumulate_row_body(double* acc, const T* row, index_t C) {
  for (index_t j = 0; j < C; ++j) acc[j] += static_cast<double>(row[j]);
}
PE_ISA_VARIANTS(accumulate_row, (double* acc, const T* row, index_t C), (acc, row, C))

// dst[0:n) += src[0:n), in T.
template <class T>
PE_INLINE void add_span_body(T* dst, const T* src, index_t n) {
  for (index_t i = 0; i < n; ++i) dst[i] += src[i];
}
PE_ISA_VARIANTS(add_span, (T * dst, const T* src, index_t n), (dst, src, n))

}  // namespace

template <class T>
void sum_rows(const T* x, index_t N, index_t C, index_t ldx, T* out) {
  if (C <= 0) return;
  auto add = accumulate_row_for_isa<T>();
  const int nt = threads_for(N * C);
  const size_t Cs = static_cast<size_t>(C);

  if (nt > 1 && N < 4 * static_cast<index_t>(nt)) {
    // Few rows: split the columns; each thread sums its range over all rows.
    std::vector<double> acc(Cs, 0.0);  // allocated here: nothing may throw inside the region
#pragma omp parallel num_threads(nt)
    {
      const index_t t = vm::thread_id(), team = vm::team_size();
      const index_t j0 = C * t / team, j1 = C * (t + 1) / team;
      for (index_t n = 0; n < N; ++n) add(acc.data() + j0, x + n * ldx + j0, j1 - j0);
      for (index_t j = j0; j < j1; ++j) out[j] = static_cast<T>(acc[static_cast<size_t>(j)]);
    }
    return;
  }

  std::vector<double> part(static_cast<size_t>(std::max(nt, 1)) * Cs, 0.0);  // [thread][C]
  auto run_block = [&](int t, int team) {
    const index_t r0 = N * t / team, r1 = N * (t + 1) / team;
    double* acc = part.data() + static_cast<size_t>(t) * Cs;
    for (index_t n = r0; n < r1; ++n) add(acc, x + n * ldx, C);
  };
  if (nt <= 1) {
    run_block(0, 1);
  } else {
#pragma omp parallel num_threads(nt)
    run_block(vm::thread_id(), vm::team_size());  // a smaller team leaves its extra buffers at 0
  }
  for (size_t j = 0; j < Cs; ++j) {
    double s = 0.0;
    for (int t = 0; t < std::max(nt, 1); ++t) s += part[static_cast<size_t>(t) * Cs + j];
    out[j] = static_cast<T>(s);
  }
}

// Memory-bound (two reads, one write per element): on 2 threads it runs at up to
// twice the bandwidth NumPy's single-threaded `+=` gets. Chunks of 64 KiB.
template <class T>
void add_into(T* dst, const T* src, index_t n) {
  auto add = add_span_for_isa<T>();
  const index_t chunk = (index_t(64) << 10) / static_cast<index_t>(sizeof(T));
  const index_t nchunks = (n + chunk - 1) / chunk;
  const int nt = static_cast<int>(std::min<index_t>(threads_for(n, index_t(1) << 17), nchunks));
  parallel_for(nchunks, nt, 1, [&](index_t c) {
    const index_t i0 = c * chunk;
    add(dst + i0, src + i0, std::min(chunk, n - i0));
  });
}

template void sum_rows<float>(const float*, index_t, index_t, index_t, float*);
template void sum_rows<double>(const double*, index_t, index_t, index_t, double*);
template void add_into<float>(float*, const float*, index_t);
template void add_into<double>(double*, const double*, index_t);

}  // namespace cpu
}  // namespace pe
