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

// One list argument of an update: its arrays, its name in messages, and the OptimTensor field it fills.
enum Slot { kP = 0, kG = 1, kM = 2, kV = 3, kW = 4 };
struct List {
  py::sequence items;
  const char* name;
  Slot slot;
};

// Appends `obj` (which must be a list or tuple of arrays) as the list `name` filling `slot`.
void add_list(std::vector<List>& lists, const py::object& obj, const char* op, const char* name, Slot slot) {
  lists.push_back({as_list(obj, op, name), name, slot});
}

// Collects one group: lists[0] are the params (updated); lists[1] the grads (read; made contiguous if they
// are not); lists[2..] state buffers (updated). `keep` holds a reference to every array used. The checks
// run per item on every step, so their messages are only built when one fails.
std::vector<OptimTensor> collect(const char* op, const std::vector<List>& lists, std::vector<py::array>& keep) {
  const size_t count = lists[0].items.size();
  for (size_t l = 1; l < lists.size(); ++l)
    if (lists[l].items.size() != count)
      throw py::value_error(std::string(op) + ": " + lists[l].name + " has " +
                            std::to_string(lists[l].items.size()) + " arrays but " + lists[0].name + " has " +
                            std::to_string(count));
  std::vector<OptimTensor> out(count);
  keep.reserve(count * lists.size());
  for (size_t i = 0; i < count; ++i) {
    // "<op>: <list>[i] <what>"
    auto msg = [&](size_t l, const std::string& what) {
      return std::string(op) + ": " + item_name(lists[l].name, i) + " " + what;
    };
    py::object item = lists[0].items[i];
    if (!py::isinstance<py::array>(item))
      throw py::type_error(
          msg(0, "must be a numpy array, got " + py::str(py::type::of(item)).cast<std::string>()));
    py::array p = py::reinterpret_borrow<py::array>(item);
    // dtypes compared by value (dtype_eq): an array made by another kernel or unpickled carries its own,
    // equal, dtype object
    const py::dtype dt = p.dtype();
    const bool f32 = dtype_eq(dt, py::dtype::of<float>());
    if (!f32 && !dtype_eq(dt, py::dtype::of<double>()))
      throw py::type_error(msg(0, "must be float32 or float64, got " + dtype_str(p)));
    if (!(p.flags() & py::array::c_style))
      throw py::value_error(msg(0, "must be C-contiguous (shape " + shape_str(p) + ")"));
    if (!p.writeable()) throw py::value_error(msg(0, "must be writeable"));
    void* ptr[5] = {p.mutable_data(), nullptr, nullptr, nullptr, nullptr};  // by Slot
    for (size_t l = 1; l < lists.size(); ++l) {
      py::object obj = lists[l].items[i];
      if (!py::isinstance<py::array>(obj))
        throw py::type_error(
            msg(l, "must be a numpy array, got " + py::str(py::type::of(obj)).cast<std::string>()));
      py::array a = py::reinterpret_borrow<py::array>(obj);
      if (!dtype_eq(a.dtype(), dt))
        throw py::type_error(msg(l, "(" + dtype_str(a) + ") and " + item_name(lists[0].name, i) + " (" +
                                        dtype_str(p) + ") must have the same dtype"));
      bool same = a.ndim() == p.ndim();
      for (py::ssize_t d = 0; same && d < p.ndim(); ++d) same = a.shape(d) == p.shape(d);
      if (!same)
        throw py::value_error(msg(l, "has shape " + shape_str(a) + " but " + item_name(lists[0].name, i) +
                                         " has shape " + shape_str(p)));
      const Slot slot = lists[l].slot;
      if (slot == kG) {  // the gradient is only read: a non-contiguous one is copied
        if (!(a.flags() & py::array::c_style)) a = py::array::ensure(a, py::array::c_style);
        ptr[kG] = const_cast<void*>(a.data());
      } else {
        if (!(a.flags() & py::array::c_style))
          throw py::value_error(msg(l, "must be C-contiguous (shape " + shape_str(a) + ")"));
        if (!a.writeable()) throw py::value_error(msg(l, "must be writeable"));
        ptr[slot] = a.mutable_data();
        for (size_t k = 0; k < l; ++k)  // arrays written to must not be the same memory
          if (lists[k].slot != kG && p.size() > 0 && ptr[lists[k].slot] == ptr[slot])
            throw py::value_error(msg(l, "is the same array as " + item_name(lists[k].name, i)));
      }
      keep.push_back(std::move(a));
    }
    out[i] = {ptr[kP], ptr[kG], ptr[kM], ptr[kV], ptr[kW], static_cast<index_t>(p.size()),
              f32 ? 'f' : 'd'};
    keep.push_back(std::move(p));
  }
  return out;
}

void check_step(const char* op, long long step) {
  if (step < 1) throw py::value_error(std::string(op) + ": step must be >= 1, got " + std::to_string(step));
}

}  // namespace

void register_optim(py::module_& m) {
  m.def("adam_update",
        [](const py::object& params, const py::object& grads, const py::object& exp_avgs,
           const py::object& exp_avg_sqs, long long step, double lr, double beta1, double beta2, double eps,
           double weight_decay, bool decoupled, bool maximize, const py::object& max_exp_avg_sqs) {
          const char* op = "adam_update";
          check_step(op, step);
          const bool amsgrad = !max_exp_avg_sqs.is_none();
          std::vector<List> lists;
          add_list(lists, params, op, "params", kP);
          add_list(lists, grads, op, "grads", kG);
          add_list(lists, exp_avgs, op, "exp_avgs", kM);
          add_list(lists, exp_avg_sqs, op, "exp_avg_sqs", kV);
          if (amsgrad) add_list(lists, max_exp_avg_sqs, op, "max_exp_avg_sqs", kW);
          std::vector<py::array> keep;
          const std::vector<OptimTensor> ts = collect(op, lists, keep);
          const AdamHyper h{step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, amsgrad};
          py::gil_scoped_release nogil;
          adam_update(ts, h);
        },
        py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("step"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("decoupled"), py::arg("maximize"), py::arg("max_exp_avg_sqs") = py::none(),
        "Adam / AdamW step, in place over lists of same-shape arrays (one param group); step is 1-based.\n"
        "max_exp_avg_sqs: a list of arrays for AMSGrad, or None.");

  m.def("sgd_update",
        [](const py::object& params, const py::object& grads, const py::object& momentum_buffers, double lr,
           double momentum, double dampening, bool nesterov, double weight_decay, bool maximize,
           bool first_step) {
          const char* op = "sgd_update";
          std::vector<List> lists;
          add_list(lists, params, op, "params", kP);
          add_list(lists, grads, op, "grads", kG);
          // the buffers are used (and must exist) only with momentum
          if (momentum != 0.0) add_list(lists, momentum_buffers, op, "momentum_buffers", kM);
          std::vector<py::array> keep;
          const std::vector<OptimTensor> ts = collect(op, lists, keep);
          const SgdHyper h{lr, momentum, dampening, weight_decay, nesterov, maximize, first_step};
          py::gil_scoped_release nogil;
          sgd_update(ts, h);
        },
        py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("lr"), py::arg("momentum"),
        py::arg("dampening"), py::arg("nesterov"), py::arg("weight_decay"), py::arg("maximize"),
        py::arg("first_step"),
        "SGD step (momentum, dampening, Nesterov, weight decay), in place over lists of same-shape arrays.");

  m.def("rmsprop_update",
        [](const py::object& params, const py::object& grads, const py::object& square_avgs,
           const py::object& momentum_buffers, const py::object& grad_avgs, double lr, double alpha, double eps,
           double weight_decay, double momentum, bool centered, bool maximize) {
          const char* op = "rmsprop_update";
          std::vector<List> lists;
          add_list(lists, params, op, "params", kP);
          add_list(lists, grads, op, "grads", kG);
          add_list(lists, square_avgs, op, "square_avgs", kV);
          if (momentum != 0.0) add_list(lists, momentum_buffers, op, "momentum_buffers", kM);
          if (centered) add_list(lists, grad_avgs, op, "grad_avgs", kW);
          std::vector<py::array> keep;
          const std::vector<OptimTensor> ts = collect(op, lists, keep);
          const RmspropHyper h{lr, alpha, eps, weight_decay, momentum, centered, maximize};
          py::gil_scoped_release nogil;
          rmsprop_update(ts, h);
        },
        py::arg("params"), py::arg("grads"), py::arg("square_avgs"), py::arg("momentum_buffers"),
        py::arg("grad_avgs"), py::arg("lr"), py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("momentum"), py::arg("centered"), py::arg("maximize"),
        "RMSprop step, in place over lists of same-shape arrays (one param group). momentum_buffers are used\n"
        "only when momentum != 0, grad_avgs only when centered (either may otherwise be None).");

  m.def("adagrad_update",
        [](const py::object& params, const py::object& grads, const py::object& state_sums, long long step,
           double lr, double lr_decay, double weight_decay, double eps, bool maximize) {
          const char* op = "adagrad_update";
          check_step(op, step);
          std::vector<List> lists;
          add_list(lists, params, op, "params", kP);
          add_list(lists, grads, op, "grads", kG);
          add_list(lists, state_sums, op, "state_sums", kV);
          std::vector<py::array> keep;
          const std::vector<OptimTensor> ts = collect(op, lists, keep);
          const AdagradHyper h{step, lr, lr_decay, weight_decay, eps, maximize};
          py::gil_scoped_release nogil;
          adagrad_update(ts, h);
        },
        py::arg("params"), py::arg("grads"), py::arg("state_sums"), py::arg("step"), py::arg("lr"),
        py::arg("lr_decay"), py::arg("weight_decay"), py::arg("eps"), py::arg("maximize"),
        "Adagrad step, in place over lists of same-shape arrays (one param group); step is 1-based.");
}

}  // namespace pe
