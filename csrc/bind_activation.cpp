// Bindings of the activation kernel family (csrc/cpu/activation*.cpp).
//
// Every function takes its output(s) allocated by the caller (the Python
// wrappers in pyengine/backend/cpu/activation.py) and returns None. Checks:
// float32/float64 with all operands of one dtype, equal shapes, C-contiguous,
// writeable outputs; failures raise TypeError / ValueError naming the op.
// The GIL is released around the kernels.
#include "binding_utils.h"
#include "bindings.h"
#include "cpu/activation.h"

namespace pe {
namespace {

// Elementwise ops (ReLU, GELU): any shape, seen as flat; out has x's shape.
// `run(x, dy_or_null, out, n)` is called with typed pointers, GIL released.
template <class Run>
void elementwise(const char* op, const py::array& x, const py::array* dy, py::array& out, Run run) {
  const char kind = float_kind(x, op, "x");
  if (dy) {
    check_same_dtype(x, *dy, op, "x", "dy");
    check_same_shape(x, *dy, op, "x", "dy");
  }
  check_same_dtype(x, out, op, "x", "out");
  check_same_shape(x, out, op, "x", "out");
  const index_t n = static_cast<index_t>(x.size());
  if (kind == 'f') {
    const float* px = in_ptr<float>(x, op, "x");
    const float* pd = dy ? in_ptr<float>(*dy, op, "dy") : nullptr;
    float* po = out_ptr<float>(out, op, "out");
    py::gil_scoped_release nogil;
    run(px, pd, po, n);
  } else {
    const double* px = in_ptr<double>(x, op, "x");
    const double* pd = dy ? in_ptr<double>(*dy, op, "dy") : nullptr;
    double* po = out_ptr<double>(out, op, "out");
    py::gil_scoped_release nogil;
    run(px, pd, po, n);
  }
}

// Row-wise ops (softmax): a, b (optional), out all (N, C), or (N, C, I) for the op along C.
template <class Run>
void rows(const char* op, const char* na, const py::array& a, const char* nb, const py::array* b,
          py::array& out, Run run) {
  const char kind = float_kind(a, op, na);
  if (a.ndim() != 2 && a.ndim() != 3)
    throw py::value_error(std::string(op) + ": " + na + " must be 2-D (N, C) or 3-D (N, C, I), got shape " +
                          shape_str(a));
  if (b) {
    check_same_dtype(a, *b, op, na, nb);
    check_same_shape(a, *b, op, na, nb);
  }
  check_same_dtype(a, out, op, na, "out");
  check_same_shape(a, out, op, na, "out");
  const index_t N = a.shape(0), C = a.shape(1), I = a.ndim() == 3 ? a.shape(2) : 1;
  if (kind == 'f') {
    const float* pa = in_ptr<float>(a, op, na);
    const float* pb = b ? in_ptr<float>(*b, op, nb) : nullptr;
    float* po = out_ptr<float>(out, op, "out");
    py::gil_scoped_release nogil;
    run(pa, pb, po, N, C, I);
  } else {
    const double* pa = in_ptr<double>(a, op, na);
    const double* pb = b ? in_ptr<double>(*b, op, nb) : nullptr;
    double* po = out_ptr<double>(out, op, "out");
    py::gil_scoped_release nogil;
    run(pa, pb, po, N, C, I);
  }
}

}  // namespace

void register_activation(py::module_& m) {
  m.def("relu_forward", [](const py::array& x, py::array y) {
      elementwise("relu_forward", x, nullptr, y, [](auto px, auto, auto py_, index_t n) {
        cpu::relu_forward(px, py_, n);
      });
    }, py::arg("x"), py::arg("y"), "y[...] = max(x, 0). x, y: same shape, float32/64, contiguous.");

  m.def("relu_backward", [](const py::array& x, const py::array& dy, py::array dx) {
      elementwise("relu_backward", x, &dy, dx, [](auto px, auto pd, auto po, index_t n) {
        cpu::relu_backward(px, pd, po, n);
      });
    }, py::arg("x"), py::arg("dy"), py::arg("dx"), "dx[...] = dy * (x > 0).");

  m.def("gelu_forward", [](const py::array& x, py::array y, bool tanh_approx) {
      elementwise("gelu_forward", x, nullptr, y, [tanh_approx](auto px, auto, auto py_, index_t n) {
        cpu::gelu_forward(px, py_, n, tanh_approx);
      });
    }, py::arg("x"), py::arg("y"), py::arg("tanh"),
    "y[...] = GELU(x); tanh=True for the tanh approximation, False for the exact erf form.");

  m.def("gelu_backward", [](const py::array& x, const py::array& dy, py::array dx, bool tanh_approx) {
      elementwise("gelu_backward", x, &dy, dx, [tanh_approx](auto px, auto pd, auto po, index_t n) {
        cpu::gelu_backward(px, pd, po, n, tanh_approx);
      });
    }, py::arg("x"), py::arg("dy"), py::arg("dx"), py::arg("tanh"), "dx[...] = dy * GELU'(x).");

  m.def("softmax_forward", [](const py::array& x, py::array y, bool log) {
      rows("softmax_forward", "x", x, "", nullptr, y,
           [log](auto px, auto, auto py_, index_t N, index_t C, index_t I) {
             cpu::softmax_forward(px, py_, N, C, I, log);
           });
    }, py::arg("x"), py::arg("y"), py::arg("log"),
    "y[...] = softmax (or log-softmax with log=True) of x along C. x, y: (N, C) (each row) or (N, C, I).");

  m.def("softmax_backward", [](const py::array& y, const py::array& dy, py::array dx, bool log) {
      rows("softmax_backward", "y", y, "dy", &dy, dx,
           [log](auto py_, auto pd, auto po, index_t N, index_t C, index_t I) {
             cpu::softmax_backward(py_, pd, po, N, C, I, log);
           });
    }, py::arg("y"), py::arg("dy"), py::arg("dx"), py::arg("log"),
    "dx[...] = gradient of softmax_forward given its output y. y, dy, dx: (N, C) or (N, C, I).");
}

}  // namespace pe
