// Bindings of the mask kernel family (csrc/cpu/mask.cpp).
//
//   masked_fill(x, mask, value, out): out = where(mask, value, x); x, out: (O, I), mask: (I,) bool, the
//       same for every row (the wrapper, pyengine/backend/cpu/mask.py, views a broadcast mask so)
//   dropout_forward(x, u, p, scale, y, keep): keep = u >= p, y = x * (keep ? scale : 0);
//       x, y: (n,) float32/float64, u: (n,) float32, keep: (n,) bool
//   dropout_backward(g, keep, scale, dx): dx = g * (keep ? scale : 0)
//
// Every array C-contiguous, outputs writeable and allocated by the caller; an output is its input or
// does not overlap it. The GIL is released around the kernels.
#include <cstdint>

#include "binding_utils.h"
#include "bindings.h"
#include "cpu/mask.h"

namespace pe {
namespace {

// out must be `in` itself or not overlap it: the kernels write element i from element i only.
void check_same_or_apart(const py::array& in, const py::array& out, const char* op, const char* na) {
  const auto* a = static_cast<const char*>(in.data());
  const auto* b = static_cast<const char*>(out.data());
  if (a != b && a < b + out.nbytes() && b < a + in.nbytes())
    throw py::value_error(std::string(op) + ": out and " + na + " overlap without being the same array");
}

const uint8_t* mask_ptr(const py::array& m, const char* op, const char* name) {
  check_dtype<bool>(m, op, name);
  check_contiguous(m, op, name);
  return static_cast<const uint8_t*>(m.data());
}

template <class T>
void run_fill(const py::array& x, const py::array& mask, double value, py::array& out, const char* op) {
  const index_t O = x.shape(0), I = x.shape(1);
  const T* px = in_ptr<T>(x, op, "x");
  const uint8_t* pm = mask_ptr(mask, op, "mask");
  T* po = out_ptr<T>(out, op, "out");
  py::gil_scoped_release release;
  cpu::masked_fill<T>(px, pm, static_cast<T>(value), po, O, I);
}

template <class T>
void run_dropout_fwd(const py::array& x, const py::array& u, double p, double scale, py::array& y, py::array& keep,
                     const char* op) {
  const index_t n = x.shape(0);
  const T* px = in_ptr<T>(x, op, "x");
  const float* pu = in_ptr<float>(u, op, "u");
  T* py_ = out_ptr<T>(y, op, "y");
  check_dtype<bool>(keep, op, "keep");
  check_contiguous(keep, op, "keep");
  check_writeable(keep, op, "keep");
  auto* pk = static_cast<uint8_t*>(keep.mutable_data());
  py::gil_scoped_release release;
  cpu::dropout_forward<T>(px, pu, static_cast<float>(p), static_cast<T>(scale), py_, pk, n);
}

template <class T>
void run_dropout_bwd(const py::array& g, const py::array& keep, double scale, py::array& dx, const char* op) {
  const index_t n = g.shape(0);
  const T* pg = in_ptr<T>(g, op, "g");
  const uint8_t* pk = mask_ptr(keep, op, "keep");
  T* pd = out_ptr<T>(dx, op, "dx");
  py::gil_scoped_release release;
  cpu::dropout_backward<T>(pg, pk, static_cast<T>(scale), pd, n);
}

}  // namespace

void register_mask(py::module_& m) {
  m.def(
      "masked_fill",
      [](const py::array& x, const py::array& mask, double value, py::array out) {
        constexpr const char* op = "masked_fill";
        const char kind = float_kind(x, op, "x");
        check_ndim(x, 2, op, "x (O, I)");
        check_shape(mask, {x.shape(1)}, op, "mask (I,)");
        check_same_dtype(x, out, op, "x", "out");
        check_shape(out, {x.shape(0), x.shape(1)}, op, "out (O, I)");
        check_same_or_apart(x, out, op, "x");
        if (kind == 'f') run_fill<float>(x, mask, value, out, op);
        else run_fill<double>(x, mask, value, out, op);
      },
      py::arg("x"), py::arg("mask"), py::arg("value"), py::arg("out"),
      "out[o, i] = value where mask[i], else x[o, i]. x, out: (O, I) float32/float64; mask: (I,) bool.");
  m.def(
      "dropout_forward",
      [](const py::array& x, const py::array& u, double p, double scale, py::array y, py::array keep) {
        constexpr const char* op = "dropout_forward";
        const char kind = float_kind(x, op, "x");
        check_ndim(x, 1, op, "x (n,)");
        const py::ssize_t n = x.shape(0);
        check_shape(u, {n}, op, "u");
        check_shape(y, {n}, op, "y");
        check_shape(keep, {n}, op, "keep");
        check_same_dtype(x, y, op, "x", "y");
        check_same_or_apart(x, y, op, "x");
        if (kind == 'f') run_dropout_fwd<float>(x, u, p, scale, y, keep, op);
        else run_dropout_fwd<double>(x, u, p, scale, y, keep, op);
      },
      py::arg("x"), py::arg("u"), py::arg("p"), py::arg("scale"), py::arg("y"), py::arg("keep"),
      "keep = u >= p; y = x * (scale where keep, else 0). x, y: (n,); u: (n,) float32; keep: (n,) bool.");
  m.def(
      "dropout_backward",
      [](const py::array& g, const py::array& keep, double scale, py::array dx) {
        constexpr const char* op = "dropout_backward";
        const char kind = float_kind(g, op, "g");
        check_ndim(g, 1, op, "g (n,)");
        check_shape(keep, {g.shape(0)}, op, "keep");
        check_same_dtype(g, dx, op, "g", "dx");
        check_shape(dx, {g.shape(0)}, op, "dx");
        check_same_or_apart(g, dx, op, "g");
        if (kind == 'f') run_dropout_bwd<float>(g, keep, scale, dx, op);
        else run_dropout_bwd<double>(g, keep, scale, dx, op);
      },
      py::arg("g"), py::arg("keep"), py::arg("scale"), py::arg("dx"),
      "dx = g * (scale where keep, else 0). g, dx: (n,); keep: (n,) bool.");
}

}  // namespace pe
