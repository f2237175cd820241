// Bindings of the norm kernel family (csrc/cpu/norm*.cpp).
//
// Outputs are allocated by the caller (pyengine/backend/cpu/norm.py); the
// functions return None. Checks: float32/float64, every operand of x's dtype,
// x (N, C), weight/bias (C,) or None, mean/rstd (N,), C-contiguous, writeable
// outputs. Failures raise TypeError / ValueError naming the op and the shapes.
// The GIL is released around the kernels.
#include "binding_utils.h"
#include "bindings.h"
#include "cpu/norm.h"

namespace pe {
namespace {

// An operand that must have x's dtype and the given shape (-1: any).
template <class T>
const T* operand(const py::array& x, const py::array& a, const std::vector<py::ssize_t>& shape, const char* op,
                 const char* name) {
  check_same_dtype(x, a, op, "x", name);
  check_shape(a, shape, op, name);
  return in_ptr<T>(a, op, name);
}
template <class T>
T* output(const py::array& x, py::array& a, const std::vector<py::ssize_t>& shape, const char* op,
          const char* name) {
  check_same_dtype(x, a, op, "x", name);
  check_shape(a, shape, op, name);
  return out_ptr<T>(a, op, name);
}
// None -> nullptr.
template <class T>
const T* optional_operand(const py::array& x, const py::object& a, const std::vector<py::ssize_t>& shape,
                          const char* op, const char* name) {
  if (a.is_none()) return nullptr;
  if (!py::isinstance<py::array>(a))
    throw py::type_error(std::string(op) + ": " + name + " must be a NumPy array or None");
  return operand<T>(x, py::reinterpret_borrow<py::array>(a), shape, op, name);
}

template <class T>
void ln_forward(const py::array& x, const py::object& weight, const py::object& bias, double eps, py::array& y,
                py::array& mean, py::array& rstd) {
  const char* op = "layer_norm_forward";
  const py::ssize_t N = x.shape(0), C = x.shape(1);
  const T* px = in_ptr<T>(x, op, "x");
  const T* pw = optional_operand<T>(x, weight, {C}, op, "weight");
  const T* pb = optional_operand<T>(x, bias, {C}, op, "bias");
  T* py_ = output<T>(x, y, {N, C}, op, "y");
  T* pm = output<T>(x, mean, {N}, op, "mean");
  T* pr = output<T>(x, rstd, {N}, op, "rstd");
  py::gil_scoped_release nogil;
  cpu::layer_norm_forward<T>(px, pw, pb, py_, pm, pr, N, C, eps);
}

template <class T>
void ln_backward(const py::array& dy, const py::array& x, const py::object& weight, const py::array& mean,
                 const py::array& rstd, py::array& dx, const py::object& dweight, py::array& dbias) {
  const char* op = "layer_norm_backward";
  const py::ssize_t N = x.shape(0), C = x.shape(1);
  const T* px = in_ptr<T>(x, op, "x");
  const T* pdy = operand<T>(x, dy, {N, C}, op, "dy");
  const T* pw = optional_operand<T>(x, weight, {C}, op, "weight");
  const T* pm = operand<T>(x, mean, {N}, op, "mean");
  const T* pr = operand<T>(x, rstd, {N}, op, "rstd");
  T* pdx = output<T>(x, dx, {N, C}, op, "dx");
  T* pdw = nullptr;
  if (pw) {
    if (dweight.is_none() || !py::isinstance<py::array>(dweight))
      throw py::type_error(std::string(op) + ": dweight must be an array when weight is given");
    py::array dw = py::reinterpret_borrow<py::array>(dweight);
    pdw = output<T>(x, dw, {C}, op, "dweight");
  } else if (!dweight.is_none()) {
    throw py::value_error(std::string(op) + ": dweight must be None when weight is None");
  }
  T* pdb = output<T>(x, dbias, {C}, op, "dbias");
  py::gil_scoped_release nogil;
  cpu::layer_norm_backward<T>(pdy, px, pw, pm, pr, pdx, pdw, pdb, N, C);
}

}  // namespace

void register_norm(py::module_& m) {
  m.def("layer_norm_forward", [](const py::array& x, const py::object& weight, const py::object& bias, double eps,
                                 py::array y, py::array mean, py::array rstd) {
      const char kind = float_kind(x, "layer_norm_forward", "x");
      check_ndim(x, 2, "layer_norm_forward", "x");
      if (!(eps >= 0.0))  // also rejects NaN
        throw py::value_error("layer_norm_forward: eps must be >= 0, got " + std::to_string(eps));
      if (kind == 'f') ln_forward<float>(x, weight, bias, eps, y, mean, rstd);
      else ln_forward<double>(x, weight, bias, eps, y, mean, rstd);
    }, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("eps"), py::arg("y"), py::arg("mean"),
    py::arg("rstd"),
    "LayerNorm over rows: fills y (N, C), mean (N,), rstd (N,). weight, bias: (C,) or None.");

  m.def("layer_norm_backward", [](const py::array& dy, const py::array& x, const py::object& weight,
                                  const py::array& mean, const py::array& rstd, py::array dx,
                                  const py::object& dweight, py::array dbias) {
      const char kind = float_kind(x, "layer_norm_backward", "x");
      check_ndim(x, 2, "layer_norm_backward", "x");
      if (kind == 'f') ln_backward<float>(dy, x, weight, mean, rstd, dx, dweight, dbias);
      else ln_backward<double>(dy, x, weight, mean, rstd, dx, dweight, dbias);
    }, py::arg("dy"), py::arg("x"), py::arg("weight"), py::arg("mean"), py::arg("rstd"), py::arg("dx"),
    py::arg("dweight"), py::arg("dbias"),
    "LayerNorm gradients: fills dx (N, C), dweight (C,) (None when weight is None) and dbias (C,).");
}

}  // namespace pe
