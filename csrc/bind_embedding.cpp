// Bindings of the embedding kernel family (csrc/cpu/embedding*.cpp).
//
// Outputs are allocated by the caller (pyengine/backend/cpu/embedding.py); the
// functions return None. Checks: weight / dout float32 or float64 and the
// output of the same dtype, indices int64 (N,), shapes, C-contiguous, writeable
// outputs (TypeError / ValueError naming the op and shapes). The indices are
// copied (binding_utils.h: copy_indices) and every index of the copy is
// range-checked before any kernel runs on it: an index outside [0, V) raises
// IndexError("embedding: index I is out of range for V embeddings"), as the
// reference. The GIL is released around the kernels.
#include "binding_utils.h"
#include "bindings.h"
#include "cpu/embedding.h"

namespace pe {
namespace {

// The indices as the kernel will read them: a private, range-checked copy.
std::vector<std::int64_t> checked_indices(const py::array& indices, py::ssize_t N, index_t V, const char* op) {
  std::vector<std::int64_t> idx = copy_indices(indices, N, op, "indices");
  const index_t bad = cpu::embedding_first_bad_index(idx.data(), N, V);
  if (bad >= 0)
    throw py::index_error("embedding: index " + std::to_string(idx[bad]) + " is out of range for " +
                          std::to_string(V) + " embeddings");
  return idx;
}

template <class T>
void forward(const py::array& weight, const py::array& indices, py::array& out) {
  const char* op = "embedding_forward";
  check_ndim(weight, 2, op, "weight");
  const py::ssize_t V = weight.shape(0), C = weight.shape(1);
  check_ndim(indices, 1, op, "indices");
  const py::ssize_t N = indices.shape(0);
  const T* pw = in_ptr<T>(weight, op, "weight");
  check_same_dtype(weight, out, op, "weight", "out");
  check_shape(out, {N, C}, op, "out");
  T* po = out_ptr<T>(out, op, "out");
  const std::vector<std::int64_t> idx = checked_indices(indices, N, V, op);
  py::gil_scoped_release nogil;
  cpu::embedding_forward<T>(pw, idx.data(), po, N, C);
}

template <class T>
void backward(const py::array& dout, const py::array& indices, const py::object& padding_idx, py::array& dweight) {
  const char* op = "embedding_backward";
  check_ndim(dout, 2, op, "dout");
  const py::ssize_t N = dout.shape(0), C = dout.shape(1);
  const T* pd = in_ptr<T>(dout, op, "dout");
  check_same_dtype(dout, dweight, op, "dout", "dweight");
  check_ndim(dweight, 2, op, "dweight");
  const py::ssize_t V = dweight.shape(0);
  check_shape(dweight, {V, C}, op, "dweight");
  T* pw = out_ptr<T>(dweight, op, "dweight");
  // padding_idx: None, or a row number; negative counts from the end (as
  // dweight[padding_idx] = 0 does in the reference).
  index_t pad = -1;
  if (!padding_idx.is_none()) {
    const index_t p = padding_idx.cast<index_t>();
    pad = p < 0 ? p + V : p;
    if (pad < 0 || pad >= V)
      throw py::index_error("embedding: padding_idx " + std::to_string(p) + " is out of range for " +
                            std::to_string(V) + " embeddings");
  }
  const std::vector<std::int64_t> idx = checked_indices(indices, N, V, op);
  py::gil_scoped_release nogil;
  cpu::embedding_backward<T>(pd, idx.data(), pw, N, C, V, pad);
}

}  // namespace

void register_embedding(py::module_& m) {
  m.def("embedding_forward", [](const py::array& weight, const py::array& indices, py::array out) {
      if (float_kind(weight, "embedding_forward", "weight") == 'f') forward<float>(weight, indices, out);
      else forward<double>(weight, indices, out);
    }, py::arg("weight"), py::arg("indices"), py::arg("out"),
    "out[n] = weight[indices[n]]. weight: (V, C), indices: (N,) int64, out: (N, C).");

  m.def("embedding_backward", [](const py::array& dout, const py::array& indices, const py::object& padding_idx,
                                 py::array dweight) {
      if (float_kind(dout, "embedding_backward", "dout") == 'f') backward<float>(dout, indices, padding_idx, dweight);
      else backward<double>(dout, indices, padding_idx, dweight);
    }, py::arg("dout"), py::arg("indices"), py::arg("padding_idx"), py::arg("dweight"),
    "dweight (V, C) = scatter-add of dout (N, C) rows at indices (N,) int64; the padding_idx row "
    "(None for none) is zero.");
}

}  // namespace pe
