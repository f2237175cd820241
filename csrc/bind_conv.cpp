// Bindings of the conv family (csrc/cpu/conv.cpp): convolution, pooling, batch norm.
//
// Outputs are allocated by the caller (pyengine/backend/cpu/conv.py); the functions return None. Checks:
// float32/float64, every operand of the first one's dtype, 4-D NCHW shapes that agree (groups divide the
// channels, the weight is (O, C / groups, KH, KW)), C-contiguous, writeable outputs, strides and dilations
// >= 1, paddings >= 0, and window positions that fit int64 arithmetic. Failures raise TypeError /
// ValueError naming the op and the shapes. The GIL is released around the kernels.
#include <pybind11/stl.h>

#include <sstream>

#include "binding_utils.h"
#include "bindings.h"
#include "cpu/conv.h"
#include "cpu/conv_depthwise.h"
#include "cpu/conv_winograd.h"

namespace pe {
namespace {

using Pair = std::pair<std::int64_t, std::int64_t>;

void conv_check_params(const char* op, Pair stride, Pair padding, Pair dilation) {
  if (stride.first < 1 || stride.second < 1 || dilation.first < 1 || dilation.second < 1 || padding.first < 0 ||
      padding.second < 0) {
    std::ostringstream s;
    s << op << ": stride (" << stride.first << ", " << stride.second << ") and dilation (" << dilation.first << ", "
      << dilation.second << ") must be >= 1 and padding (" << padding.first << ", " << padding.second
      << ") >= 0";
    throw py::value_error(s.str());
  }
}

// Every window position (o - 1) s + (k - 1) d + p, and the output size times the stride, within int64.
void conv_check_reach(const char* op, std::int64_t out, std::int64_t k, std::int64_t s, std::int64_t p,
                      std::int64_t d, std::int64_t n) {
  const __int128 reach = static_cast<__int128>(out) * s + static_cast<__int128>(k) * d + p + n;
  if (reach > (static_cast<__int128>(1) << 62))
    throw py::value_error(std::string(op) + ": the windows (stride, dilation, padding) reach past int64 indices");
}

cpu::ConvShape conv_shape(const char* op, const py::array& x, const py::array& w, const py::array& y,
                          Pair stride, Pair padding, Pair dilation, std::int64_t groups) {
  check_ndim(x, 4, op, "x");
  check_ndim(w, 4, op, "weight");
  check_ndim(y, 4, op, "y");
  conv_check_params(op, stride, padding, dilation);
  cpu::ConvShape s{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(2), w.shape(3),
                   y.shape(2), y.shape(3), stride.first, stride.second, padding.first, padding.second,
                   dilation.first, dilation.second, groups};
  if (groups < 1 || s.C % groups || s.O % groups || w.shape(1) != s.C / groups || y.shape(0) != s.N ||
      y.shape(1) != s.O) {
    throw py::value_error(std::string(op) + ": x " + shape_str(x) + ", weight " + shape_str(w) + " and y " +
                          shape_str(y) + " do not match with groups=" + std::to_string(groups) +
                          " (expected weight (O, C / groups, KH, KW), y (N, O, Ho, Wo))");
  }
  conv_check_reach(op, s.Ho, s.KH, s.sh, s.ph, s.dh, s.H);
  conv_check_reach(op, s.Wo, s.KW, s.sw, s.pw, s.dw, s.W);
  return s;
}

template <class T>
const T* conv_in(const py::array& first, const py::array& a, const char* op, const char* fname, const char* name) {
  check_same_dtype(first, a, op, fname, name);
  return in_ptr<T>(a, op, name);
}

template <class T>
T* conv_out(const py::array& first, py::array& a, const char* op, const char* fname, const char* name) {
  check_same_dtype(first, a, op, fname, name);
  return out_ptr<T>(a, op, name);
}

template <class T>
void conv_forward_t(const py::array& x, const py::array& w, const py::object& b, py::array& y,
                    const cpu::ConvShape& s) {
  const char* op = "conv2d_forward";
  const T* px = in_ptr<T>(x, op, "x");
  const T* pw = conv_in<T>(x, w, op, "x", "weight");
  const T* pb = nullptr;
  if (!b.is_none()) {
    if (!py::isinstance<py::array>(b)) throw py::type_error("conv2d_forward: bias must be a NumPy array or None");
    py::array ba = py::reinterpret_borrow<py::array>(b);
    check_shape(ba, {s.O}, op, "bias");
    pb = conv_in<T>(x, ba, op, "x", "bias");
  }
  T* py_ = conv_out<T>(x, y, op, "x", "y");
  py::gil_scoped_release nogil;
  cpu::conv2d_forward<T>(px, pw, pb, py_, s);
}

template <class T>
void conv_dgrad_t(const py::array& dy, const py::array& w, py::array& dx, const cpu::ConvShape& s) {
  const char* op = "conv2d_backward_input";
  const T* pdy = in_ptr<T>(dy, op, "dy");
  const T* pw = conv_in<T>(dy, w, op, "dy", "weight");
  T* pdx = conv_out<T>(dy, dx, op, "dy", "dx");
  py::gil_scoped_release nogil;
  cpu::conv2d_backward_input<T>(pdy, pw, pdx, s);
}

template <class T>
void conv_wgrad_t(const py::array& dy, const py::array& x, py::array& dw, const cpu::ConvShape& s) {
  const char* op = "conv2d_backward_weight";
  const T* pdy = in_ptr<T>(dy, op, "dy");
  const T* px = conv_in<T>(dy, x, op, "dy", "x");
  T* pdw = conv_out<T>(dy, dw, op, "dy", "dw");
  py::gil_scoped_release nogil;
  cpu::conv2d_backward_weight<T>(pdy, px, pdw, s);
}

// An optional output: null for None, else checked as conv_out (shape given).
template <class T>
T* conv_opt_out(const py::array& first, const py::object& o, const std::vector<py::ssize_t>& shape, const char* op,
                const char* name) {
  if (o.is_none()) return nullptr;
  if (!py::isinstance<py::array>(o))
    throw py::type_error(std::string(op) + ": " + name + " must be a NumPy array or None");
  py::array a = py::reinterpret_borrow<py::array>(o);
  check_shape(a, shape, op, name);
  return conv_out<T>(first, a, op, "dy", name);
}

template <class T>
bool conv_bwd_fused_t(const py::array& dy, const py::array& w, const py::array& x, const py::object& dx,
                      const py::object& dw, const py::object& db, const cpu::ConvShape& s) {
  const char* op = "conv2d_backward_fused";
  const T* pdy = in_ptr<T>(dy, op, "dy");
  const T* pw = conv_in<T>(dy, w, op, "dy", "weight");
  const T* px = conv_in<T>(dy, x, op, "dy", "x");
  T* pdx = conv_opt_out<T>(dy, dx, {s.N, s.C, s.H, s.W}, op, "dx");
  T* pdw = conv_opt_out<T>(dy, dw, {s.O, s.C / s.G, s.KH, s.KW}, op, "dw");
  T* pdb = conv_opt_out<T>(dy, db, {s.O}, op, "db");
  py::gil_scoped_release nogil;
  return cpu::conv2d_backward_fused<T>(pdy, pw, px, pdx, pdw, pdb, s);
}

cpu::PoolShape pool_shape(const char* op, const py::array& x, const py::array& y, Pair kernel, Pair stride,
                          Pair padding, Pair dilation) {
  check_ndim(x, 4, op, "x");
  check_ndim(y, 4, op, "y");
  conv_check_params(op, stride, padding, dilation);
  if (kernel.first < 1 || kernel.second < 1)
    throw py::value_error(std::string(op) + ": kernel_size must be >= 1");
  if (x.shape(0) != y.shape(0) || x.shape(1) != y.shape(1))
    throw py::value_error(std::string(op) + ": x " + shape_str(x) + " and y " + shape_str(y) +
                          " must have the same (N, C)");
  cpu::PoolShape s{x.shape(0) * x.shape(1), x.shape(2), x.shape(3), y.shape(2), y.shape(3), kernel.first,
                   kernel.second, stride.first, stride.second, padding.first, padding.second, dilation.first,
                   dilation.second};
  conv_check_reach(op, s.Ho, s.KH, s.sh, s.ph, s.dh, s.H);
  conv_check_reach(op, s.Wo, s.KW, s.sw, s.pw, s.dw, s.W);
  return s;
}

void check_index_array(const py::array& idx, const py::array& like, const char* op) {
  if (!dtype_eq(idx.dtype(), py::dtype::of<std::int64_t>()))
    throw py::type_error(std::string(op) + ": indices must be int64, got " + dtype_str(idx));
  check_same_shape(like, idx, op, "y", "indices");
  check_contiguous(idx, op, "indices");
}

template <class T>
void bn_forward_t(const py::array& x, const py::object& weight, const py::object& bias, double eps, py::array& y,
                  py::array& mean, py::array& var, bool stats) {
  const char* op = "batch_norm_forward";
  check_ndim(x, 3, op, "x");
  const py::ssize_t N = x.shape(0), C = x.shape(1), L = x.shape(2);
  const T* px = in_ptr<T>(x, op, "x");
  auto opt = [&](const py::object& o, const char* name) -> const T* {
    if (o.is_none()) return nullptr;
    if (!py::isinstance<py::array>(o)) throw py::type_error(std::string(op) + ": " + name + " must be an array or None");
    py::array a = py::reinterpret_borrow<py::array>(o);
    check_shape(a, {C}, op, name);
    return conv_in<T>(x, a, op, "x", name);
  };
  const T* pw = opt(weight, "weight");
  const T* pb = opt(bias, "bias");
  check_shape(y, {N, C, L}, op, "y");
  check_shape(mean, {C}, op, "mean");
  check_shape(var, {C}, op, "var");
  T* py_ = conv_out<T>(x, y, op, "x", "y");
  T* pm = conv_out<T>(x, mean, op, "x", "mean");
  T* pv = conv_out<T>(x, var, op, "x", "var");
  py::gil_scoped_release nogil;
  cpu::batch_norm_forward<T>(px, pw, pb, py_, pm, pv, N, C, L, eps, stats);
}

template <class T>
void bn_backward_t(const py::array& dy, const py::array& x, const py::object& weight, const py::array& mean,
                   const py::array& var, double eps, bool training, py::array& dx, const py::object& dweight,
                   py::array& dbias) {
  const char* op = "batch_norm_backward";
  check_ndim(x, 3, op, "x");
  const py::ssize_t N = x.shape(0), C = x.shape(1), L = x.shape(2);
  const T* px = in_ptr<T>(x, op, "x");
  check_shape(dy, {N, C, L}, op, "dy");
  const T* pdy = conv_in<T>(x, dy, op, "x", "dy");
  const T* pw = nullptr;
  if (!weight.is_none()) {
    if (!py::isinstance<py::array>(weight)) throw py::type_error("batch_norm_backward: weight must be an array or None");
    py::array a = py::reinterpret_borrow<py::array>(weight);
    check_shape(a, {C}, op, "weight");
    pw = conv_in<T>(x, a, op, "x", "weight");
  }
  check_shape(mean, {C}, op, "mean");
  check_shape(var, {C}, op, "var");
  const T* pm = conv_in<T>(x, mean, op, "x", "mean");
  const T* pv = conv_in<T>(x, var, op, "x", "var");
  check_shape(dx, {N, C, L}, op, "dx");
  T* pdx = conv_out<T>(x, dx, op, "x", "dx");
  T* pdw = nullptr;
  if (!dweight.is_none()) {
    if (!py::isinstance<py::array>(dweight)) throw py::type_error("batch_norm_backward: dweight must be an array or None");
    py::array a = py::reinterpret_borrow<py::array>(dweight);
    check_shape(a, {C}, op, "dweight");
    pdw = conv_out<T>(x, a, op, "x", "dweight");
  }
  check_shape(dbias, {C}, op, "dbias");
  T* pdb = conv_out<T>(x, dbias, op, "x", "dbias");
  py::gil_scoped_release nogil;
  cpu::batch_norm_backward<T>(pdy, px, pw, pm, pv, pdx, pdw, pdb, N, C, L, eps, training);
}

}  // namespace

void register_conv(py::module_& m) {
  m.def("conv2d_forward", [](const py::array& x, const py::array& w, const py::object& b, Pair stride, Pair padding,
                             Pair dilation, std::int64_t groups, py::array y) {
      const char* op = "conv2d_forward";
      const char kind = float_kind(x, op, "x");
      const cpu::ConvShape s = conv_shape(op, x, w, y, stride, padding, dilation, groups);
      if (y.shape(2) < 0) throw py::value_error("conv2d_forward: bad y");
      if (kind == 'f') conv_forward_t<float>(x, w, b, y, s);
      else conv_forward_t<double>(x, w, b, y, s);
    }, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
    py::arg("groups"), py::arg("y"),
    "2-D convolution: fills y (N, O, Ho, Wo) from x (N, C, H, W), weight (O, C / groups, KH, KW), bias (O,) or None.");

  m.def("conv2d_backward_input", [](const py::array& dy, const py::array& w, Pair stride, Pair padding,
                                    Pair dilation, std::int64_t groups, py::array dx) {
      const char* op = "conv2d_backward_input";
      const char kind = float_kind(dy, op, "dy");
      const cpu::ConvShape s = conv_shape(op, dx, w, dy, stride, padding, dilation, groups);
      if (kind == 'f') conv_dgrad_t<float>(dy, w, dx, s);
      else conv_dgrad_t<double>(dy, w, dx, s);
    }, py::arg("dy"), py::arg("weight"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
    py::arg("groups"), py::arg("dx"), "The input gradient of conv2d_forward: fills dx (N, C, H, W).");

  m.def("conv2d_backward_weight", [](const py::array& dy, const py::array& x, Pair stride, Pair padding,
                                     Pair dilation, std::int64_t groups, py::array dw) {
      const char* op = "conv2d_backward_weight";
      const char kind = float_kind(dy, op, "dy");
      const cpu::ConvShape s = conv_shape(op, x, dw, dy, stride, padding, dilation, groups);
      if (kind == 'f') conv_wgrad_t<float>(dy, x, dw, s);
      else conv_wgrad_t<double>(dy, x, dw, s);
    }, py::arg("dy"), py::arg("x"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
    py::arg("dw"), "The weight gradient of conv2d_forward: fills dw (O, C / groups, KH, KW).");

  m.def("conv2d_backward_fused", [](const py::array& dy, const py::array& x, const py::array& w, Pair stride,
                                    Pair padding, Pair dilation, std::int64_t groups, const py::object& dx,
                                    const py::object& dw, const py::object& db) {
      const char* op = "conv2d_backward_fused";
      const char kind = float_kind(dy, op, "dy");
      const cpu::ConvShape s = conv_shape(op, x, w, dy, stride, padding, dilation, groups);
      return kind == 'f' ? conv_bwd_fused_t<float>(dy, w, x, dx, dw, db, s)
                         : conv_bwd_fused_t<double>(dy, w, x, dx, dw, db, s);
    }, py::arg("dy"), py::arg("x"), py::arg("weight"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
    py::arg("groups"), py::arg("dx"), py::arg("dw"), py::arg("db"),
    "The gradients of conv2d_forward in one sweep over dy where a fused kernel takes the shape (depthwise): fills "
    "those of dx (N, C, H, W), dw (O, C / groups, KH, KW), db (O,) that are arrays and returns True; returns "
    "False, filling nothing, elsewhere.");

  m.def("conv2d_workspace_bytes", [](std::vector<std::int64_t> v, int itemsize) {
      if (v.size() != 16) throw py::value_error("conv2d_workspace_bytes: expected 16 sizes");
      cpu::ConvShape s{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13],
                       v[14], v[15]};
      return cpu::conv_workspace_bytes(s, itemsize);
    }, py::arg("sizes"), py::arg("itemsize"),
    "Bytes the convolution kernels allocate beside their operands for (N, C, H, W, O, KH, KW, Ho, Wo, sh, sw, ph, "
    "pw, dh, dw, groups), at the current thread count.");

  m.def("set_conv_tile", [](std::int64_t elems) { cpu::set_conv_tile(elems); }, py::arg("elems"),
        "Tuning: the column tile (values, default 2**19) the convolution kernels pack at a time.");
  m.def("conv_tile", []() { return cpu::conv_tile(); }, "The column tile (values) of the convolution kernels.");
  m.def("set_conv_winograd", [](std::int64_t channels, std::int64_t tiles) { cpu::set_winograd_min(channels, tiles); },
        py::arg("min_channels"), py::arg("min_tiles"),
        "Tuning and tests: 3x3 stride-1 convolutions with at least min_channels input and output channels "
        "(default 32) and min_tiles 4x4 output tiles in the batch (default 32) run forward, input and weight "
        "gradients as Winograd F(4x4, 3x3); (1, 1) sends every such shape there, a huge value none.");
  m.def("set_conv_direct_wgrad", [](bool on) { cpu::set_direct_wgrad(on); }, py::arg("on"),
        "Tuning and A/B: the direct weight gradient of few-channel 3x3 / 5x5 convolutions on (default) or off.");
  m.def("conv_direct_wgrad", []() { return cpu::direct_wgrad(); }, "Whether the direct weight gradient is on.");
  m.def("conv_winograd", []() { return py::make_tuple(cpu::winograd_min_channels(), cpu::winograd_min_tiles()); },
        "The (min_channels, min_tiles) thresholds of the Winograd convolution path.");

  m.def("max_pool2d_forward", [](const py::array& x, Pair kernel, Pair stride, Pair padding, Pair dilation,
                                 py::array y, py::array idx) {
      const char* op = "max_pool2d_forward";
      const char kind = float_kind(x, op, "x");
      const cpu::PoolShape s = pool_shape(op, x, y, kernel, stride, padding, dilation);
      check_index_array(idx, y, op);
      check_writeable(idx, op, "indices");
      auto* pi = static_cast<std::int64_t*>(idx.mutable_data());
      if (kind == 'f') {
        const float* px = in_ptr<float>(x, op, "x");
        float* py_ = conv_out<float>(x, y, op, "x", "y");
        py::gil_scoped_release nogil;
        cpu::max_pool2d_forward<float>(px, py_, pi, s);
      } else {
        const double* px = in_ptr<double>(x, op, "x");
        double* py_ = conv_out<double>(x, y, op, "x", "y");
        py::gil_scoped_release nogil;
        cpu::max_pool2d_forward<double>(px, py_, pi, s);
      }
    }, py::arg("x"), py::arg("kernel"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("y"),
    py::arg("indices"), "Max pooling: fills y (N, C, Ho, Wo) and indices (int64, the max's h W + w).");

  m.def("max_pool2d_backward", [](const py::array& dy, const py::array& idx, py::array dx) {
      const char* op = "max_pool2d_backward";
      const char kind = float_kind(dy, op, "dy");
      const cpu::PoolShape s = pool_shape(op, dx, dy, {1, 1}, {1, 1}, {0, 0}, {1, 1});
      check_index_array(idx, dy, op);
      const auto* pi = static_cast<const std::int64_t*>(idx.data());
      if (kind == 'f') {
        const float* pg = in_ptr<float>(dy, op, "dy");
        float* pd = conv_out<float>(dy, dx, op, "dy", "dx");
        py::gil_scoped_release nogil;
        cpu::max_pool2d_backward<float>(pg, pi, pd, s);
      } else {
        const double* pg = in_ptr<double>(dy, op, "dy");
        double* pd = conv_out<double>(dy, dx, op, "dy", "dx");
        py::gil_scoped_release nogil;
        cpu::max_pool2d_backward<double>(pg, pi, pd, s);
      }
    }, py::arg("dy"), py::arg("indices"), py::arg("dx"),
    "The gradient of max pooling: fills dx (N, C, H, W); indices outside the plane are skipped.");

  m.def("avg_pool2d_forward", [](const py::array& x, Pair kernel, Pair stride, Pair padding, bool cip,
                                 std::int64_t divisor, py::array y) {
      const char* op = "avg_pool2d_forward";
      const char kind = float_kind(x, op, "x");
      const cpu::PoolShape s = pool_shape(op, x, y, kernel, stride, padding, {1, 1});
      if (kind == 'f') {
        const float* px = in_ptr<float>(x, op, "x");
        float* py_ = conv_out<float>(x, y, op, "x", "y");
        py::gil_scoped_release nogil;
        cpu::avg_pool2d_forward<float>(px, py_, s, cip, divisor);
      } else {
        const double* px = in_ptr<double>(x, op, "x");
        double* py_ = conv_out<double>(x, y, op, "x", "y");
        py::gil_scoped_release nogil;
        cpu::avg_pool2d_forward<double>(px, py_, s, cip, divisor);
      }
    }, py::arg("x"), py::arg("kernel"), py::arg("stride"), py::arg("padding"), py::arg("count_include_pad"),
    py::arg("divisor_override"), py::arg("y"), "Average pooling: fills y (N, C, Ho, Wo); divisor_override 0: none.");

  m.def("avg_pool2d_backward", [](const py::array& dy, Pair kernel, Pair stride, Pair padding, bool cip,
                                  std::int64_t divisor, py::array dx) {
      const char* op = "avg_pool2d_backward";
      const char kind = float_kind(dy, op, "dy");
      const cpu::PoolShape s = pool_shape(op, dx, dy, kernel, stride, padding, {1, 1});
      if (kind == 'f') {
        const float* pg = in_ptr<float>(dy, op, "dy");
        float* pd = conv_out<float>(dy, dx, op, "dy", "dx");
        py::gil_scoped_release nogil;
        cpu::avg_pool2d_backward<float>(pg, pd, s, cip, divisor);
      } else {
        const double* pg = in_ptr<double>(dy, op, "dy");
        double* pd = conv_out<double>(dy, dx, op, "dy", "dx");
        py::gil_scoped_release nogil;
        cpu::avg_pool2d_backward<double>(pg, pd, s, cip, divisor);
      }
    }, py::arg("dy"), py::arg("kernel"), py::arg("stride"), py::arg("padding"), py::arg("count_include_pad"),
    py::arg("divisor_override"), py::arg("dx"), "The gradient of average pooling: fills dx (N, C, H, W).");

  m.def("batch_norm_forward", [](const py::array& x, const py::object& weight, const py::object& bias, double eps,
                                 py::array y, py::array mean, py::array var, bool stats) {
      const char kind = float_kind(x, "batch_norm_forward", "x");
      if (!(eps >= 0.0)) throw py::value_error("batch_norm_forward: eps must be >= 0");
      if (kind == 'f') bn_forward_t<float>(x, weight, bias, eps, y, mean, var, stats);
      else bn_forward_t<double>(x, weight, bias, eps, y, mean, var, stats);
    }, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("eps"), py::arg("y"), py::arg("mean"),
    py::arg("var"), py::arg("stats"),
    "Batch norm over x (N, C, L): fills y; stats: also fills mean and var (C,) with x's (var biased), else reads them.");

  m.def("batch_norm_backward", [](const py::array& dy, const py::array& x, const py::object& weight,
                                  const py::array& mean, const py::array& var, double eps, bool training,
                                  py::array dx, const py::object& dweight, py::array dbias) {
      const char kind = float_kind(x, "batch_norm_backward", "x");
      if (!(eps >= 0.0)) throw py::value_error("batch_norm_backward: eps must be >= 0");
      if (kind == 'f') bn_backward_t<float>(dy, x, weight, mean, var, eps, training, dx, dweight, dbias);
      else bn_backward_t<double>(dy, x, weight, mean, var, eps, training, dx, dweight, dbias);
    }, py::arg("dy"), py::arg("x"), py::arg("weight"), py::arg("mean"), py::arg("var"), py::arg("eps"),
    py::arg("training"), py::arg("dx"), py::arg("dweight"), py::arg("dbias"),
    "Batch norm gradients: fills dx (N, C, L), dweight (C,) (None: not computed) and dbias (C,).");
}

}  // namespace pe
