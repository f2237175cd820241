// Embedding forward (gather) and backward (scatter-add), see embedding.h.
#include "cpu/embedding.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/simd.h"

namespace pe {
namespace cpu {
namespace {

// row += src, C elements (vectorised per ISA).
template <class T>
PE_INLINE void add_row_body(T* row, const T* src, index_t C) {
  for (index_t j = 0; j < C; ++j) row[j] += src[j];
}
PE_ISA_VARIANTS(add_row, (T * row, const T* src, index_t C), (row, src, C))

}  // namespace

index_t embedding_first_bad_index(const std::int64_t* indices, index_t N, index_t V) {
  for (index_t n = 0; n < N; ++n)
    if (indices[n] < 0 || indices[n] >= V) return n;
  return -1;
}

// ====================================================================== forward
// weight: (V, C)   indices: (N,)   out: (N, C)
// out[n] = weight[indices[n]]: one contiguous row copy per index (memcpy uses
// the widest moves the CPU has). Rows over threads.
template <class T>
void embedding_forward(const T* weight, const std::int64_t* indices, T* out, index_t N, index_t C) {
  const size_t row_bytes = static_cast<size_t>(C) * sizeof(T);
  const int nt = threads_for(N * C);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t n = 0; n < N; ++n) std::memcpy(out + n * C, weight + indices[n] * C, row_bytes);
}

// ====================================================================== backward
// dout: (N, C)   indices: (N,)   dweight: (V, C)
// dweight[v] = sum_{n : indices[n] == v} dout[n],  dweight[padding_idx] = 0.
//
// Repeated indices must accumulate, and two threads must never add into the
// same row. Instead of atomics (slow, and the sum order would vary run to run),
// the indices are bucketed by row first: a counting sort gives, for every row v,
// the list of n with indices[n] == v, in increasing n (O(N + V), serial, cheap
// next to the V x C output). Then rows are independent: each output row is
// written by exactly one thread, as a copy of its first dout row plus the others
// in order, or zeros if no index hits it (so dweight needs no separate zeroing
// pass and can come from np.empty). Dynamic scheduling balances rows hit
// thousands of times (frequent tokens, padding) against rows hit never. The
// result does not depend on the thread count, and matches np.add.at, which adds
// in the same order.
template <class T>
void embedding_backward(const T* dout, const std::int64_t* indices, T* dweight, index_t N, index_t C, index_t V,
                        index_t padding_idx) {
  // start[v] .. start[v + 1]: positions in `order` of the n with indices[n] == v.
  std::vector<index_t> start(static_cast<size_t>(V) + 1, 0);
  for (index_t n = 0; n < N; ++n) ++start[indices[n] + 1];
  for (index_t v = 0; v < V; ++v) start[v + 1] += start[v];
  std::vector<index_t> next(start.begin(), start.end() - 1);
  std::vector<index_t> order(static_cast<size_t>(N));
  for (index_t n = 0; n < N; ++n) order[next[indices[n]]++] = n;

  auto add = add_row_for_isa<T>();
  const size_t row_bytes = static_cast<size_t>(C) * sizeof(T);
  const int nt = threads_for(V * C + N * C);
  // Chunks of at most ~2 MiB of output rows: a fresh (V, C) gradient is mostly page faults
  // (the OS zeroes each page on first touch), and with transparent huge pages two
  // threads writing rows of the same 2 MiB page wait on each other's fault. Their number
  // is a multiple of the threads, so that each thread gets as many rows: 10000 rows of
  // 1 KiB in 2 MiB chunks were 5 chunks, 3 for one thread and 2 for the other (the
  // scatter then took 3/5 of its work on 2 threads, not 1/2).
  const index_t most = static_cast<index_t>(std::max<size_t>(64, (size_t(2) << 20) / std::max<size_t>(row_bytes, 1)));
  const index_t nchunks = ((V + most - 1) / most + nt - 1) / nt * nt;
  const int chunk = static_cast<int>(std::max<index_t>(1, (V + nchunks - 1) / nchunks));
#pragma omp parallel for num_threads(nt) schedule(dynamic, chunk) if (nt > 1)
  for (index_t v = 0; v < V; ++v) {
    T* row = dweight + v * C;
    const index_t k0 = start[v], k1 = start[v + 1];
    if (v == padding_idx || k0 == k1) {
      std::memset(row, 0, row_bytes);  // all-zero bits are +0.0
      continue;
    }
    std::memcpy(row, dout + order[k0] * C, row_bytes);
    for (index_t k = k0 + 1; k < k1; ++k) add(row, dout + order[k] * C, C);
  }
}

template void embedding_forward<float>(const float*, const std::int64_t*, float*, index_t, index_t);
template void embedding_forward<double>(const double*, const std::int64_t*, double*, index_t, index_t);
template void embedding_backward<float>(const float*, const std::int64_t*, float*, index_t, index_t, index_t,
                                        index_t);
template void embedding_backward<double>(const double*, const std::int64_t*, double*, index_t, index_t, index_t,
                                         index_t);

}  // namespace cpu
}  // namespace pe
