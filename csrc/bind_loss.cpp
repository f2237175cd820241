// Bindings of the loss kernel family (csrc/cpu/loss*.cpp). Every array is checked here (dtype, rank,
// shape, contiguity, writable outputs; class targets in range) before the GIL is released and a kernel runs.
// Class targets are copied first and the copy is checked and used (binding_utils.h: copy_indices).
// Outputs are allocated by the caller (pyengine/backend/cpu/loss.py).
#include <string>
#include <vector>

#include "binding_utils.h"
#include "bindings.h"
#include "cpu/loss.h"

namespace pe {
namespace {

constexpr const char* kCE = "cross_entropy";
constexpr const char* kMSE = "mse_loss";
constexpr const char* kBCE = "binary_cross_entropy";
constexpr const char* kBCEL = "binary_cross_entropy_with_logits";

// dloss of an elementwise loss: the input's shape, or a single value (broadcast). Returns its stride.
index_t dloss_stride(const py::array& dloss, const py::array& input, const char* op) {
  if (dloss.size() == 1) return 0;
  check_same_shape(dloss, input, op, "dloss", "input");
  return 1;
}

// logits (N, C) float, targets (N,) int64 with every target in [0, C) or == ignore_index. Returns the
// private copy of the targets that was checked, for the kernel to read.
std::vector<std::int64_t> check_ce_inputs(const py::array& logits, const py::array& targets,
                                          std::int64_t ignore_index, double label_smoothing) {
  float_kind(logits, kCE, "logits");
  check_ndim(logits, 2, kCE, "logits");
  check_contiguous(logits, kCE, "logits");
  if (logits.shape(1) < 1) throw py::value_error(std::string(kCE) + ": logits " + shape_str(logits) +
                                                 " must have at least one class");
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
    throw py::value_error(std::string(kCE) + ": label_smoothing must be in [0, 1], got " +
                          std::to_string(label_smoothing));
  std::vector<std::int64_t> t = copy_indices(targets, logits.shape(0), kCE, "targets");
  const std::int64_t c = logits.shape(1);
  for (const std::int64_t ti : t)
    if (ti != ignore_index && (ti < 0 || ti >= c))
      throw py::index_error(std::string(kCE) + ": target " + std::to_string(ti) + " is out of range for " +
                            std::to_string(c) + " classes");
  return t;
}

template <class T>
void ce_forward(const py::array& logits, const std::vector<std::int64_t>& targets, std::int64_t ignore_index,
                double ls, py::array& loss, py::array& lse) {
  const index_t n = logits.shape(0), c = logits.shape(1);
  check_shape(loss, {n}, kCE, "loss");
  check_shape(lse, {n}, kCE, "lse");
  const T* x = in_ptr<T>(logits, kCE, "logits");
  const std::int64_t* t = targets.data();
  T* pl = out_ptr<T>(loss, kCE, "loss");
  T* pz = out_ptr<T>(lse, kCE, "lse");
  py::gil_scoped_release nogil;
  cross_entropy_forward<T>(x, t, n, c, ignore_index, ls, pl, pz);
}

template <class T>
void ce_backward(const py::array& logits, const std::vector<std::int64_t>& targets, const py::array& lse,
                 const py::array& dloss, std::int64_t ignore_index, double ls, py::array& dlogits) {
  const index_t n = logits.shape(0), c = logits.shape(1);
  check_shape(lse, {n}, kCE, "lse");
  if (dloss.size() != 1) check_shape(dloss, {n}, kCE, "dloss");  // (N,) or one value
  check_shape(dlogits, {n, c}, kCE, "dlogits");
  const T* x = in_ptr<T>(logits, kCE, "logits");
  const T* pz = in_ptr<T>(lse, kCE, "lse");
  const T* pd = in_ptr<T>(dloss, kCE, "dloss");
  const index_t ds = dloss.size() == 1 ? 0 : 1;
  const std::int64_t* t = targets.data();
  T* out = out_ptr<T>(dlogits, kCE, "dlogits");
  py::gil_scoped_release nogil;
  cross_entropy_backward<T>(x, t, pz, pd, ds, n, c, ignore_index, ls, out);
}

// Two same-shape float operands of the same dtype; returns the dtype kind.
char check_pair(const py::array& a, const py::array& b, const char* op, const char* na, const char* nb) {
  const char k = float_kind(a, op, na);
  check_same_dtype(a, b, op, na, nb);
  check_same_shape(a, b, op, na, nb);
  return k;
}

template <class T>
void mse_fwd(const py::array& x, const py::array& y, py::array& out) {
  check_shape(out, {}, kMSE, "out");
  const T* px = in_ptr<T>(x, kMSE, "input");
  const T* py_ = in_ptr<T>(y, kMSE, "target");
  T* po = out_ptr<T>(out, kMSE, "out");
  const index_t n = x.size();
  double s;
  {
    py::gil_scoped_release nogil;
    s = mse_forward<T>(px, py_, n);
  }
  *po = static_cast<T>(s);
}

template <class T>
void mse_bwd(const py::array& x, const py::array& y, double scale, py::array& dx) {
  check_same_shape(dx, x, kMSE, "dinput", "input");
  const T* px = in_ptr<T>(x, kMSE, "input");
  const T* py_ = in_ptr<T>(y, kMSE, "target");
  T* pd = out_ptr<T>(dx, kMSE, "dinput");
  const index_t n = x.size();
  py::gil_scoped_release nogil;
  mse_backward<T>(px, py_, scale, n, pd);
}

// Forward of an elementwise loss: out = f(input, target), same shape.
template <class T>
void elementwise_fwd(const char* op, const py::array& x, const py::array& y, py::array& out, bool probs) {
  check_same_shape(out, x, op, "out", "input");
  const T* px = in_ptr<T>(x, op, "input");
  const T* py_ = in_ptr<T>(y, op, "target");
  T* po = out_ptr<T>(out, op, "out");
  const index_t n = x.size();
  bool ok = true;
  {
    py::gil_scoped_release nogil;
    if (probs) ok = bce_forward<T>(px, py_, n, po);
    else bce_with_logits_forward<T>(px, py_, n, po);
  }
  if (!ok) throw py::value_error(std::string(op) + ": input values must be in [0, 1]");
}

// Backward of an elementwise loss: dinput = dloss * f'(input, target).
template <class T>
void elementwise_bwd(const char* op, const py::array& x, const py::array& y, const py::array& dloss,
                     py::array& dx, bool probs) {
  check_same_dtype(x, dloss, op, "input", "dloss");
  const index_t ds = dloss_stride(dloss, x, op);
  check_same_shape(dx, x, op, "dinput", "input");
  const T* px = in_ptr<T>(x, op, "input");
  const T* py_ = in_ptr<T>(y, op, "target");
  const T* pd = in_ptr<T>(dloss, op, "dloss");
  T* po = out_ptr<T>(dx, op, "dinput");
  const index_t n = x.size();
  py::gil_scoped_release nogil;
  if (probs) bce_backward<T>(px, py_, pd, ds, n, po);
  else bce_with_logits_backward<T>(px, py_, pd, ds, n, po);
}

}  // namespace

void register_loss(py::module_& m) {
  m.def("cross_entropy_forward",
        [](const py::array& logits, const py::array& targets, std::int64_t ignore_index, double label_smoothing,
           py::array& loss, py::array& lse) {
          const auto t = check_ce_inputs(logits, targets, ignore_index, label_smoothing);
          if (float_kind(logits, kCE, "logits") == 'f') ce_forward<float>(logits, t, ignore_index, label_smoothing, loss, lse);
          else ce_forward<double>(logits, t, ignore_index, label_smoothing, loss, lse);
        },
        py::arg("logits"), py::arg("targets"), py::arg("ignore_index"), py::arg("label_smoothing"),
        py::arg("loss"), py::arg("lse"),
        "logits (N, C), targets (N,) int64 -> loss (N,), lse (N,) written in place: fused softmax "
        "cross-entropy with label smoothing; rows with target == ignore_index get loss 0.");
  m.def("cross_entropy_backward",
        [](const py::array& logits, const py::array& targets, const py::array& lse, const py::array& dloss,
           std::int64_t ignore_index, double label_smoothing, py::array& dlogits) {
          const auto t = check_ce_inputs(logits, targets, ignore_index, label_smoothing);
          if (float_kind(logits, kCE, "logits") == 'f')
            ce_backward<float>(logits, t, lse, dloss, ignore_index, label_smoothing, dlogits);
          else ce_backward<double>(logits, t, lse, dloss, ignore_index, label_smoothing, dlogits);
        },
        py::arg("logits"), py::arg("targets"), py::arg("lse"), py::arg("dloss"), py::arg("ignore_index"),
        py::arg("label_smoothing"), py::arg("dlogits"),
        "dlogits (N, C) = dloss_i (softmax(x_i) - (1 - eps) onehot(t_i) - eps / C), 0 on ignored rows.");

  m.def("mse_forward",
        [](const py::array& x, const py::array& y, py::array& out) {
          if (check_pair(x, y, kMSE, "input", "target") == 'f') mse_fwd<float>(x, y, out);
          else mse_fwd<double>(x, y, out);
        },
        py::arg("input"), py::arg("target"), py::arg("out"),
        "out (0-d) = sum((input - target)^2), accumulated in float64.");
  m.def("mse_backward",
        [](const py::array& x, const py::array& y, double scale, py::array& dx) {
          if (check_pair(x, y, kMSE, "input", "target") == 'f') mse_bwd<float>(x, y, scale, dx);
          else mse_bwd<double>(x, y, scale, dx);
        },
        py::arg("input"), py::arg("target"), py::arg("scale"), py::arg("dinput"),
        "dinput = 2 * scale * (input - target).");

  m.def("bce_forward",
        [](const py::array& p, const py::array& y, py::array& out) {
          if (check_pair(p, y, kBCE, "input", "target") == 'f') elementwise_fwd<float>(kBCE, p, y, out, true);
          else elementwise_fwd<double>(kBCE, p, y, out, true);
        },
        py::arg("probs"), py::arg("targets"), py::arg("out"),
        "out = -(y log p + (1 - y) log(1 - p)), logs clamped at -100; ValueError if p is outside [0, 1].");
  m.def("bce_backward",
        [](const py::array& p, const py::array& y, const py::array& dloss, py::array& dp) {
          if (check_pair(p, y, kBCE, "input", "target") == 'f') elementwise_bwd<float>(kBCE, p, y, dloss, dp, true);
          else elementwise_bwd<double>(kBCE, p, y, dloss, dp, true);
        },
        py::arg("probs"), py::arg("targets"), py::arg("dloss"), py::arg("dprobs"),
        "dprobs = dloss (p - y) / max(p (1 - p), 1e-12); dloss has the input's shape or size 1.");
  m.def("bce_with_logits_forward",
        [](const py::array& x, const py::array& y, py::array& out) {
          if (check_pair(x, y, kBCEL, "input", "target") == 'f') elementwise_fwd<float>(kBCEL, x, y, out, false);
          else elementwise_fwd<double>(kBCEL, x, y, out, false);
        },
        py::arg("logits"), py::arg("targets"), py::arg("out"),
        "out = max(x, 0) - x y + log(1 + exp(-|x|)).");
  m.def("bce_with_logits_backward",
        [](const py::array& x, const py::array& y, const py::array& dloss, py::array& dx) {
          if (check_pair(x, y, kBCEL, "input", "target") == 'f')
            elementwise_bwd<float>(kBCEL, x, y, dloss, dx, false);
          else elementwise_bwd<double>(kBCEL, x, y, dloss, dx, false);
        },
        py::arg("logits"), py::arg("targets"), py::arg("dloss"), py::arg("dlogits"),
        "dlogits = dloss (sigmoid(x) - y); dloss has the input's shape or size 1.");
}

}  // namespace pe
