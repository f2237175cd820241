// Binding of the elementwise kernel family (csrc/cpu/elementwise.cpp): one function,
//
//   elementwise(op, out, a, b, c, p)
//
// out[...] = op(a, b, c; p) with NumPy broadcasting of every input to out's shape, any strides (in
// whole elements, negative ones included). An input the op reads may be None: it is then the number
// p (pow_scalar and pow_scalar_grad take p as their exponent and need array inputs). The caller
// allocates out (pyengine/backend/cpu/elementwise.py); out must not overlap an input unless it is that
// input, element for element (the caller checks: in place is out=a with a's own layout).
// Checks: op code, float32/float64 with one dtype for every float operand (bool for comparisons' out
// and where's / the mask ops' condition), each input broadcastable to out, out writeable with no
// stride-0 axis, at most 16 dims. Failures raise TypeError / ValueError naming the op. GIL released.
#include <array>

#include "binding_utils.h"
#include "bindings.h"
#include "cpu/elementwise.h"

namespace pe {
namespace {

namespace ew = cpu::ew;

std::string ew_op_name(int op) { return "elementwise(op=" + std::to_string(op) + ")"; }

// Element strides of `a` seen in out's shape (R dims): broadcast axes get stride 0.
void ew_broadcast_strides(const py::array& a, const py::array& out, index_t* st, const std::string& name,
                       const char* which) {
  const int R = static_cast<int>(out.ndim()), r = static_cast<int>(a.ndim());
  const py::ssize_t item = a.itemsize();
  auto fail = [&]() {
    throw py::value_error(name + ": " + which + " " + shape_str(a) + " cannot be broadcast to the output " +
                          shape_str(out));
  };
  if (r > R) fail();
  for (int d = 0; d < R; ++d) {
    const int k = d - (R - r);
    if (k < 0) {
      st[d] = 0;
      continue;
    }
    const py::ssize_t n = a.shape(k);
    if (n == out.shape(d)) {
      const py::ssize_t s = a.strides(k);
      if (s % item != 0)
        throw py::value_error(name + ": " + which + " has byte strides " + strides_str(a) +
                              " that are not whole elements");
      st[d] = n == 1 ? 0 : static_cast<index_t>(s / item);
    } else if (n == 1) {
      st[d] = 0;
    } else {
      fail();
    }
  }
}

void ew_call(int op_code, py::array out, py::object a, py::object b, py::object c, double p) {
  if (op_code < 0 || op_code >= static_cast<int>(ew::Op::count_))
    throw py::value_error("elementwise: unknown op code " + std::to_string(op_code));
  const ew::Op op = static_cast<ew::Op>(op_code);
  const std::string name = ew_op_name(op_code);
  const int arity = ew::arity(op);
  const bool param_op = op == ew::Op::pow_scalar || op == ew::Op::pow_scalar_grad;

  // Inputs: arrays (kept alive in `held`) or None = the scalar p.
  std::array<py::array, 3> held;
  const py::object* objs[3] = {&a, &b, &c};
  const char* names[3] = {"a", "b", "c"};
  bool is_arr[3] = {false, false, false};
  for (int k = 0; k < arity; ++k) {
    if (objs[k]->is_none()) {
      if (param_op) throw py::value_error(name + ": input " + names[k] + " must be an array");
      continue;
    }
    if (!py::isinstance<py::array>(*objs[k]))
      throw py::type_error(name + ": input " + names[k] + " must be a NumPy array or None");
    held[k] = py::reinterpret_borrow<py::array>(*objs[k]);
    is_arr[k] = true;
  }
  // The kernel dtype: the first float input's (the condition of where / the mask ops is input 0).
  const int first_float = ew::reads_bool(op) ? 1 : 0;
  int ref = -1;
  for (int k = first_float; k < arity; ++k)
    if (is_arr[k]) { ref = k; break; }
  if (ref < 0) throw py::value_error(name + ": needs at least one array among its value inputs");
  const char kind = float_kind(held[ref], name.c_str(), names[ref]);
  for (int k = first_float; k < arity; ++k)
    if (is_arr[k]) check_same_dtype(held[ref], held[k], name.c_str(), names[ref], names[k]);
  if (ew::reads_bool(op)) {
    if (!is_arr[0]) throw py::value_error(name + ": the condition must be an array");
    check_dtype<bool>(held[0], name.c_str(), "condition");
  }
  if (ew::writes_bool(op)) check_dtype<bool>(out, name.c_str(), "out");
  else check_same_dtype(held[ref], out, name.c_str(), names[ref], "out");
  check_writeable(out, name.c_str(), "out");
  const int R = static_cast<int>(out.ndim());
  if (R > ew::kMaxDims)
    throw py::value_error(name + ": at most " + std::to_string(ew::kMaxDims) + " dims, got out " + shape_str(out));

  const index_t n = static_cast<index_t>(out.size());
  if (n == 0) return;

  // Full-rank strides (elements) of every operand in out's shape.
  index_t st[ew::kMaxOperands][ew::kMaxDims] = {};
  for (int d = 0; d < R; ++d) {
    const py::ssize_t s = out.strides(d);
    if (out.shape(d) > 1 && (s == 0 || s % out.itemsize() != 0))
      throw py::value_error(name + ": out must have whole-element, non-zero strides, got " + strides_str(out));
    st[0][d] = out.shape(d) == 1 ? 0 : static_cast<index_t>(s / out.itemsize());
  }
  for (int k = 0; k < arity; ++k)
    if (is_arr[k]) ew_broadcast_strides(held[k], out, st[k + 1], name, names[k]);

  // Merge axes: drop length-1 axes, fold axis d into d+1 when every operand steps over d as one
  // stride of d+1's whole extent. A contiguous same-shape call ends as one row.
  ew::Layout L{};
  int nd = 0;
  for (int d = 0; d < R; ++d) {
    const index_t len = out.shape(d);
    if (len == 1) continue;
    bool merge = nd > 0;
    for (int k = 0; merge && k < ew::kMaxOperands; ++k)
      merge = L.stride[k][nd - 1] == st[k][d] * len;
    if (merge) {
      L.shape[nd - 1] *= len;
      for (int k = 0; k < ew::kMaxOperands; ++k) L.stride[k][nd - 1] = st[k][d];
    } else {
      L.shape[nd] = len;
      for (int k = 0; k < ew::kMaxOperands; ++k) L.stride[k][nd] = st[k][d];
      ++nd;
    }
  }
  if (nd == 0) {  // one element
    L.shape[0] = 1;
    nd = 1;
  }
  L.ndim = nd;
  L.n = n;

  void* po = out.mutable_data();
  if (kind == 'f') {
    const float s = static_cast<float>(p);
    const void* in[3] = {nullptr, nullptr, nullptr};
    for (int k = 0; k < arity; ++k) in[k] = is_arr[k] ? held[k].data() : static_cast<const void*>(&s);
    py::gil_scoped_release nogil;
    ew::run<float>(op, L, po, in, p);
  } else {
    const double s = p;
    const void* in[3] = {nullptr, nullptr, nullptr};
    for (int k = 0; k < arity; ++k) in[k] = is_arr[k] ? held[k].data() : static_cast<const void*>(&s);
    py::gil_scoped_release nogil;
    ew::run<double>(op, L, po, in, p);
  }
}

}  // namespace

void register_elementwise(py::module_& m) {
  m.def("elementwise", &ew_call, py::arg("op"), py::arg("out"), py::arg("a"), py::arg("b") = py::none(),
        py::arg("c") = py::none(), py::arg("p") = 0.0,
        "out[...] = op(a, b, c; p), inputs broadcast to out's shape (a None input is the number p). "
        "Op codes: pyengine/backend/cpu/elementwise.py.");
}

}  // namespace pe
