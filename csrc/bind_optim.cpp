// Bindings of the optim kernel family (csrc/cpu/optim*.cpp).
//
// An update takes Python lists of arrays (one param group). With the GIL held, every item is checked
// (ndarray, float32/float64, the param's shape and dtype, C-contiguous, writeable where updated) and its
// pointer and size collected; the arrays are referenced from a local vector so that they outlive the
// kernel even if another thread edits the lists. Then the GIL is released for the whole group.
#include <string>
#include <vector>

#include "binding_utils.h"
#include "bindings.h"
#include "cpu/optim.h"

namespace pe {
namespace {

std::string item_name(const char* list, size_t i) { return std::string(list) + "[" + std::to_string(i) + "]"; }

py::sequence as_list(const py::object& obj, const char* op, const char* name) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    throw py::type_error(std::string(op) + ": " + name + " must be a list of arrays, got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  return py::reinterpret_borrow<py::sequence>(obj);
}

// The dtypes the kernels take, compared by identity as binding_utils.h does (NumPy's builtin descriptors
// are singletons; anything else, e.g. a byte-swapped float32, is refused rather than misread).
PyObject* dtype_f32() {
  static PyObject* d = py::dtype::of<float>().release().ptr();  // kept for the life of the process
  return d;
}
PyObject* dtype_f64() {
  static PyObject* d = py::dtype::of<double>().release().ptr();
  return d;
}

// Collects one group: lists[0] are the params (updated); lists[1] the grads (read; made contiguous if they
// are not); lists[2..] state buffers (updated). `keep` holds a reference to every array used. The checks
// run per item on every step, so their messages are only built when one fails.
std::vector<OptimTensor> collect(const char* op, const std::vector<py::sequence>& lists,
                                 const std::vector<const char*>& names, std::vector<py::array>& keep) {
  const size_t count = lists[0].size();
  for (size_t l = 1; l < lists.size(); ++l)
    if (lists[l].size() != count)
      throw py::value_error(std::string(op) + ": " + names[l] + " has " + std::to_string(lists[l].size()) +
                            " arrays but " + names[0] + " has " + std::to_string(count));
  std::vector<OptimTensor> out(count);
  keep.reserve(count * lists.size());
  for (size_t i = 0; i < count; ++i) {
    // "<op>: <list>[i] <what>"
    auto msg = [&](size_t l, const std::string& what) {
      return std::string(op) + ": " + item_name(names[l], i) + " " + what;
    };
    py::object item = lists[0][i];
    if (!py::isinstance<py::array>(item))
      throw py::type_error(
          msg(0, "must be a numpy array, got " + py::str(py::type::of(item)).cast<std::string>()));
    py::array p = py::reinterpret_borrow<py::array>(item);
    PyObject* dt = p.dtype().ptr();
    if (dt != dtype_f32() && dt != dtype_f64())
      throw py::type_error(msg(0, "must be float32 or float64, got " + dtype_str(p)));
    if (!(p.flags() & py::array::c_style))
      throw py::value_error(msg(0, "must be C-contiguous (shape " + shape_str(p) + ")"));
    if (!p.writeable()) throw py::value_error(msg(0, "must be writeable"));
    void* ptr[4] = {p.mutable_data(), nullptr, nullptr, nullptr};
    for (size_t l = 1; l < lists.size(); ++l) {
      py::object obj = lists[l][i];
      if (!py::isinstance<py::array>(obj))
        throw py::type_error(
            msg(l, "must be a numpy array, got " + py::str(py::type::of(obj)).cast<std::string>()));
      py::array a = py::reinterpret_borrow<py::array>(obj);
      if (a.dtype().ptr() != dt)
        throw py::type_error(msg(l, "(" + dtype_str(a) + ") and " + item_name(names[0], i) + " (" +
                                        dtype_str(p) + ") must have the same dtype"));
      bool same = a.ndim() == p.ndim();
      for (py::ssize_t d = 0; same && d < p.ndim(); ++d) same = a.shape(d) == p.shape(d);
      if (!same)
        throw py::value_error(msg(l, "has shape " + shape_str(a) + " but " + item_name(names[0], i) +
                                         " has shape " + shape_str(p)));
      if (l == 1) {  // the gradient is only read: a non-contiguous one is copied
        if (!(a.flags() & py::array::c_style)) a = py::array::ensure(a, py::array::c_style);
        ptr[l] = const_cast<void*>(a.data());
      } else {
        if (!(a.flags() & py::array::c_style))
          throw py::value_error(msg(l, "must be C-contiguous (shape " + shape_str(a) + ")"));
        if (!a.writeable()) throw py::value_error(msg(l, "must be writeable"));
        ptr[l] = a.mutable_data();
        for (size_t k = 0; k < l; ++k)  // arrays written to must not be the same memory
          if (k != 1 && p.size() > 0 && ptr[k] == ptr[l])
            throw py::value_error(msg(l, "is the same array as " + item_name(names[k], i)));
      }
      keep.push_back(std::move(a));
    }
    out[i] = {ptr[0], ptr[1], ptr[2], ptr[3], static_cast<index_t>(p.size()), dt == dtype_f32() ? 'f' : 'd'};
    keep.push_back(std::move(p));
  }
  return out;
}

}  // namespace

void register_optim(py::module_& m) {
  m.def("adam_update",
        [](const py::object& params, const py::object& grads, const py::object& exp_avgs,
           const py::object& exp_avg_sqs, long long step, double lr, double beta1, double beta2, double eps,
           double weight_decay, bool decoupled, bool maximize) {
          const char* op = "adam_update";
          if (step < 1) throw py::value_error(std::string(op) + ": step must be >= 1, got " + std::to_string(step));
          std::vector<py::sequence> lists = {as_list(params, op, "params"), as_list(grads, op, "grads"),
                                             as_list(exp_avgs, op, "exp_avgs"),
                                             as_list(exp_avg_sqs, op, "exp_avg_sqs")};
          std::vector<py::array> keep;
          const std::vector<OptimTensor> ts =
              collect(op, lists, {"params", "grads", "exp_avgs", "exp_avg_sqs"}, keep);
          const AdamHyper h{step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize};
          py::gil_scoped_release nogil;
          adam_update(ts, h);
        },
        py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("step"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("decoupled"), py::arg("maximize"),
        "Adam / AdamW step, in place over lists of same-shape arrays (one param group); step is 1-based.");

  m.def("sgd_update",
        [](const py::object& params, const py::object& grads, const py::object& momentum_buffers, double lr,
           double momentum, double dampening, bool nesterov, double weight_decay, bool maximize,
           bool first_step) {
          const char* op = "sgd_update";
          std::vector<py::sequence> lists = {as_list(params, op, "params"), as_list(grads, op, "grads")};
          std::vector<const char*> names = {"params", "grads"};
          if (momentum != 0.0) {  // the buffers are used (and must exist) only with momentum
            lists.push_back(as_list(momentum_buffers, op, "momentum_buffers"));
            names.push_back("momentum_buffers");
          }
          std::vector<py::array> keep;
          const std::vector<OptimTensor> ts = collect(op, lists, names, keep);
          const SgdHyper h{lr, momentum, dampening, weight_decay, nesterov, maximize, first_step};
          py::gil_scoped_release nogil;
          sgd_update(ts, h);
        },
        py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("lr"), py::arg("momentum"),
        py::arg("dampening"), py::arg("nesterov"), py::arg("weight_decay"), py::arg("maximize"),
        py::arg("first_step"),
        "SGD step (momentum, dampening, Nesterov, weight decay), in place over lists of same-shape arrays.");
}

}  // namespace pe
