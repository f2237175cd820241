// Embedding lookup (row gather) and its scatter-add backward, float and double.
// Raw pointers, contiguous memory; the bindings (csrc/bind_embedding.cpp) check
// shapes, dtypes and index ranges (before any kernel writes anything).
// Specification: pyengine/backend/reference/embedding.py.
#pragma once
#include <cstdint>

#include "common.h"

namespace pe {
namespace cpu {

// indices: (N,)   -> position of the first index outside [0, V), or -1 if none.
index_t embedding_first_bad_index(const std::int64_t* indices, index_t N, index_t V);

// weight: (V, C)   indices: (N,), all in [0, V)   out: (N, C)
// out[n] = weight[indices[n]]
template <class T>
void embedding_forward(const T* weight, const std::int64_t* indices, T* out, index_t N, index_t C);

// dout: (N, C)   indices: (N,), all in [0, V)   dweight: (V, C), fully written
// dweight[v] = sum over n with indices[n] == v of dout[n] (in increasing n);
// dweight[padding_idx] = 0 when padding_idx >= 0 (pass -1 for none).
template <class T>
void embedding_backward(const T* dout, const std::int64_t* indices, T* dweight, index_t N, index_t C, index_t V,
                        index_t padding_idx);

}  // namespace cpu
}  // namespace pe
