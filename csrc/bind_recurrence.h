// What the bindings of the whole-sequence recurrences (bind_lstm.cpp, bind_rnn.cpp) check alike: the
// sizes of a call and the packed steps' batch sizes (layout: cpu/recurrence.h).
#pragma once
#include "binding_utils.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pe {

struct SequenceSizes {
  index_t T = 0, N = 0, B = 0, H = 0;
  std::vector<std::int64_t> batch_sizes;  // a private copy (see copy_indices): the kernels read only this
};

// A batch-major gate layout (row b T + t) needs every row to run every step.
inline void check_dense(const char* op, const SequenceSizes& s) {
  for (index_t t = 0; t < s.T; ++t)
    if (s.batch_sizes[t] != s.B)
      throw py::value_error(std::string(op) + ": batch_major needs a dense batch (every batch size " +
                            std::to_string(s.B) + "), got batch_sizes[" + std::to_string(t) + "] = " +
                            std::to_string(s.batch_sizes[t]));
}

// H from w_hh (gates H, H); N from the rows of `rows` (N, .); B from the rows of `batch`: (B + N, .) when
// it is a state array (states_with_n), else (B, .); T and a checked copy of batch_sizes (1-D int64 with
// B >= bs[0] >= bs[1] >= ... >= 0 summing to N). Shapes beyond these are left to check_arrays.
inline SequenceSizes sequence_sizes(const char* op, index_t gates, const py::array& w_hh, const py::array& rows,
                                    const py::array& batch, bool states_with_n, const py::array& batch_sizes) {
  const std::string o(op);
  if (w_hh.ndim() != 2 || w_hh.shape(0) != gates * w_hh.shape(1))
    throw py::value_error(o + ": w_hh must be (" + std::to_string(gates) + "H, H), got " + shape_str(w_hh));
  if (rows.ndim() != 2 || batch.ndim() != 2)
    throw py::value_error(o + ": expected 2-D packed rows, got " + shape_str(rows) + " and " + shape_str(batch));
  SequenceSizes s;
  s.H = w_hh.shape(1);
  s.N = rows.shape(0);
  s.B = batch.shape(0) - (states_with_n ? s.N : 0);
  if (s.B < 0)
    throw py::value_error(o + ": the state array " + shape_str(batch) + " has fewer than N = " + std::to_string(s.N) +
                          " rows");
  check_dtype<std::int64_t>(batch_sizes, op, "batch_sizes");
  check_ndim(batch_sizes, 1, op, "batch_sizes");
  check_contiguous(batch_sizes, op, "batch_sizes");
  s.T = batch_sizes.shape(0);
  const auto* p = static_cast<const std::int64_t*>(batch_sizes.data());
  s.batch_sizes.assign(p, p + s.T);
  index_t sum = 0, prev = s.B;
  for (index_t t = 0; t < s.T; ++t) {
    const index_t b = s.batch_sizes[t];
    if (b < 0 || b > prev)
      throw py::value_error(o + ": batch_sizes must not grow and lie in [0, B] with B = " + std::to_string(s.B) +
                            "; got batch_sizes[" + std::to_string(t) + "] = " + std::to_string(b));
    sum += b;  // <= (t + 1) B: no overflow before the check below stops it
    if (sum > s.N) break;
    prev = b;
  }
  if (sum != s.N)
    throw py::value_error(o + ": batch_sizes must sum to the number of packed rows N = " + std::to_string(s.N) +
                          (sum > s.N ? std::string(", got more") : ", got " + std::to_string(sum)));
  return s;
}

// A backward's dH, the gradient from the layer's output (N, H), or None when none reached it (a classifier
// that reads only the final state): the kernels then add nothing (null). Checked as check_arrays checks:
// the dtype of `like` (an array of the call, already checked), the shape, C-contiguous.
template <class T>
const T* output_grad(const char* op, const std::optional<py::array>& dH, const char* like_name, const py::array& like,
                     index_t N, index_t H) {
  if (!dH) return nullptr;
  std::vector<py::ssize_t> shape(like.shape(), like.shape() + like.ndim());
  check_arrays(op, {{like_name, &like, shape, false}, {"dH", &*dH, {N, H}, false}});
  return static_cast<const T*>(dH->data());
}

}  // namespace pe
