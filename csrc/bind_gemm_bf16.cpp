// Bindings of the bfloat16 GEMM family (csrc/cpu/gemm_bf16.cpp).
//
//   _C.matmul_bf16(a, b, trans_a=False, trans_b=False, out=None, accumulate=False, bf16_out=False, bias=None)
//       op(a) @ op(b) (+ out when accumulate) (+ bias: float32 (N,), every row), summed in float32. a, b: bfloat16 (ml_dtypes), (M, K) or
//       (Ba, M, K) and (K, N) or (Bb, K, N) [last two axes swapped when trans_x]; batches equal or 1
//       (broadcast). -> float32 (M, N) or (B, M, N); a bfloat16 array rounded to nearest even when bf16_out
//       (or when out is bfloat16). out: C-contiguous float32 or bfloat16 of that shape, or None
//       (accumulate needs out). Operands of any layout: a matrix with a unit stride along one of its last two
//       axes is read in place (a transposed view flips its transpose flag), anything else is copied first.
//   _C.f32_to_bf16(x, out=None)   float32 -> bfloat16, round to nearest even (NaN stays NaN, quieted).
//   _C.bf16_to_f32(x, out=None)   bfloat16 -> float32, exact.
//   _C.bf16_path() / bf16_path_supported() / set_bf16_path(name): 'amx' | 'avx512bf16' | 'generic'.
#include <algorithm>
#include <string>
#include <vector>

#include "binding_utils.h"
#include "bindings.h"
#include "cpu/activation_bf16.h"
#include "cpu/gemm_bf16.h"

namespace pe {
namespace gemm_bf16_bind {  // named: this file shares a unity batch with the other bind_*.cpp
namespace {

const py::dtype& bf16_dtype() {
  static const py::dtype* dt =
      new py::dtype(py::dtype::from_args(py::module_::import("ml_dtypes").attr("bfloat16")));  // never freed
  return *dt;
}

bool is_bf16(const py::array& x) { return dtype_eq(x.dtype(), bf16_dtype()); }

void check_bf16(const py::array& x, const char* op, const char* name) {
  if (!is_bf16(x))
    throw py::type_error(std::string(op) + ": " + name + " must be bfloat16, got " + dtype_str(x));
}

struct Operand {
  const bf16_t* ptr = nullptr;
  index_t batch = 1, rows = 0, cols = 0, ld = 1, stride = 0;
  bool transposed = false;
};

// Stored layout of a 2-D or 3-D bfloat16 array, or false when the kernel cannot read it in place.
bool parse(const py::array& x, Operand& o) {
  const py::ssize_t isz = 2;
  const int r_ax = static_cast<int>(x.ndim()) - 2, c_ax = r_ax + 1;
  const index_t rows = x.shape(r_ax), cols = x.shape(c_ax);
  const py::ssize_t sr = x.strides(r_ax), sc = x.strides(c_ax);
  auto positive_multiple = [&](py::ssize_t s) { return s > 0 && s % isz == 0; };
  o.ptr = static_cast<const bf16_t*>(x.data());
  o.batch = x.ndim() == 3 ? x.shape(0) : 1;
  o.stride = 0;
  if (x.size() == 0) {
    o.transposed = false, o.rows = rows, o.cols = cols, o.ld = std::max<index_t>(cols, 1);
    return true;
  }
  if ((cols <= 1 || sc == isz) && (rows <= 1 || positive_multiple(sr))) {
    o.transposed = false, o.rows = rows, o.cols = cols;
    o.ld = rows <= 1 ? std::max<index_t>(cols, 1) : sr / isz;
  } else if ((rows <= 1 || sr == isz) && (cols <= 1 || positive_multiple(sc))) {
    o.transposed = true, o.rows = cols, o.cols = rows;
    o.ld = cols <= 1 ? std::max<index_t>(rows, 1) : sc / isz;
  } else {
    return false;
  }
  if (x.ndim() == 3 && x.shape(0) > 1) {
    const py::ssize_t sb = x.strides(0);
    if (sb < 0 || sb % isz != 0) return false;
    o.stride = sb / isz;
  }
  return true;
}

Operand operand(py::array& x, const char* op, const char* name) {
  check_bf16(x, op, name);
  if (x.ndim() < 2 || x.ndim() > 3)
    throw py::value_error(std::string(op) + ": " + name + " must be 2-D or 3-D, got shape " + shape_str(x));
  Operand o;
  if (!parse(x, o)) {
    x = py::array::ensure(x, py::array::c_style);
    if (!x || !parse(x, o)) throw py::value_error(std::string(op) + ": could not copy " + name);
  }
  return o;
}

py::array run(py::array a, py::array b, bool trans_a, bool trans_b, const py::object& out, bool accumulate,
              bool bf16_out, const py::object& bias) {
  const char* op = "matmul_bf16";
  const Operand A = operand(a, op, "a"), B = operand(b, op, "b");
  const bool ta = trans_a != A.transposed, tb = trans_b != B.transposed;
  const index_t M = ta ? A.cols : A.rows, K = ta ? A.rows : A.cols;
  const index_t K2 = tb ? B.cols : B.rows, N = tb ? B.rows : B.cols;
  if (K != K2)
    throw py::value_error(std::string(op) + ": shapes do not match: a " + shape_str(a) + " (trans_a=" +
                          (trans_a ? "True" : "False") + ") and b " + shape_str(b) + " (trans_b=" +
                          (trans_b ? "True" : "False") + ") give K = " + std::to_string(K) + " and " +
                          std::to_string(K2));
  if (A.batch != B.batch && A.batch != 1 && B.batch != 1)
    throw py::value_error(std::string(op) + ": batch sizes do not match: a " + shape_str(a) + ", b " + shape_str(b));
  const index_t batch = A.batch == 1 ? B.batch : A.batch;
  const bool three = a.ndim() == 3 || b.ndim() == 3;
  const std::vector<py::ssize_t> shape =
      three ? std::vector<py::ssize_t>{batch, M, N} : std::vector<py::ssize_t>{M, N};

  py::array result;
  if (out.is_none()) {
    if (accumulate) throw py::value_error(std::string(op) + ": accumulate=True needs out");
    result = bf16_out ? py::array(bf16_dtype(), shape) : py::array(py::dtype::of<float>(), shape);
  } else {
    if (!py::isinstance<py::array>(out)) throw py::type_error(std::string(op) + ": out must be a numpy array or None");
    result = py::reinterpret_borrow<py::array>(out);
    if (!is_bf16(result) && !dtype_eq(result.dtype(), py::dtype::of<float>()))
      throw py::type_error(std::string(op) + ": out must be float32 or bfloat16, got " + dtype_str(result));
    check_shape(result, shape, op, "out");
    check_writeable(result, op, "out");
    if (!(result.flags() & py::array::c_style))
      throw py::value_error(std::string(op) + ": out must be C-contiguous (strides " + strides_str(result) + ")");
  }
  const bool to_bf16 = is_bf16(result);
  // bias: None or (N,) float32, added before the rounding
  py::array bias_arr;  // (a default py::array is an empty array, not null: has_bias / has_c say which are set)
  const bool has_bias = !bias.is_none();
  if (has_bias) {
    if (!py::isinstance<py::array>(bias)) throw py::type_error(std::string(op) + ": bias must be a numpy array or None");
    bias_arr = py::reinterpret_borrow<py::array>(bias);
    if (!dtype_eq(bias_arr.dtype(), py::dtype::of<float>()))
      throw py::type_error(std::string(op) + ": bias must be float32, got " + dtype_str(bias_arr));
    check_shape(bias_arr, {static_cast<py::ssize_t>(N)}, op, "bias");
    bias_arr = py::array::ensure(bias_arr, py::array::c_style);
  }
  // float32 C: out itself; or, for a bfloat16 result, partial sums (needed only past one depth pass or with
  // accumulate: the kernel rounds each finished block into out); or a temporary when out may alias an operand
  py::array c;
  bool aliased = false, has_c = true;
  if (to_bf16) {
    if (accumulate) {
      c = py::array(py::dtype::of<float>(), shape);
      py::gil_scoped_release release;
      bf16_to_f32(static_cast<const bf16_t*>(result.data()), static_cast<float*>(c.mutable_data()), c.size());
    } else if (K > gemm_bf16_kc()) {
      c = py::array(py::dtype::of<float>(), shape);
    } else {
      has_c = false;
    }
  } else {
    c = result;
    aliased = !out.is_none() && (py::module_::import("numpy").attr("may_share_memory")(result, a).cast<bool>() ||
                                 py::module_::import("numpy").attr("may_share_memory")(result, b).cast<bool>());
    if (aliased) {
      c = py::array(py::dtype::of<float>(), shape);
      if (accumulate) c[py::ellipsis()] = result;
    }
  }
  GemmBf16Args g;
  g.batch = batch, g.M = M, g.N = N, g.K = K;
  g.a = A.ptr, g.lda = A.ld, g.stride_a = A.batch == 1 ? 0 : A.stride, g.trans_a = ta;
  g.b = B.ptr, g.ldb = B.ld, g.stride_b = B.batch == 1 ? 0 : B.stride, g.trans_b = tb;
  g.c = has_c ? static_cast<float*>(c.mutable_data()) : nullptr, g.ldc = N, g.stride_c = M * N;
  g.accumulate = accumulate;
  g.bias = has_bias ? static_cast<const float*>(bias_arr.data()) : nullptr;
  if (to_bf16) g.c16 = static_cast<bf16_t*>(result.mutable_data()), g.ldc16 = N, g.stride_c16 = M * N;
  {
    py::gil_scoped_release release;
    gemm_bf16(g);
  }
  if (aliased) result[py::ellipsis()] = c;
  return result;
}

// Contiguous input of `dtype` (copied when not), and a C-contiguous writeable output of its shape.
py::array convert(const char* op, py::array x, const py::object& out, bool to_bf16) {
  const py::dtype src = to_bf16 ? py::dtype::of<float>() : bf16_dtype();
  const py::dtype dst = to_bf16 ? bf16_dtype() : py::dtype::of<float>();
  if (!dtype_eq(x.dtype(), src))
    throw py::type_error(std::string(op) + ": x must be " + (to_bf16 ? "float32" : "bfloat16") + ", got " +
                         dtype_str(x));
  x = py::array::ensure(x, py::array::c_style);
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  py::array y;
  if (out.is_none()) {
    y = py::array(dst, shape);
  } else {
    if (!py::isinstance<py::array>(out)) throw py::type_error(std::string(op) + ": out must be a numpy array or None");
    y = py::reinterpret_borrow<py::array>(out);
    if (!dtype_eq(y.dtype(), dst))
      throw py::type_error(std::string(op) + ": out must be " + (to_bf16 ? "bfloat16" : "float32") + ", got " +
                           dtype_str(y));
    check_shape(y, shape, op, "out");
    check_writeable(y, op, "out");
    if (!(y.flags() & py::array::c_style))
      throw py::value_error(std::string(op) + ": out must be C-contiguous (strides " + strides_str(y) + ")");
  }
  const index_t n = x.size();
  py::gil_scoped_release release;
  if (to_bf16) f32_to_bf16(static_cast<const float*>(x.data()), static_cast<bf16_t*>(y.mutable_data()), n);
  else bf16_to_f32(static_cast<const bf16_t*>(x.data()), static_cast<float*>(y.mutable_data()), n);
  return y;
}

// GELU on bfloat16: x (and dy) any shape, the same shape, bfloat16; contiguous copies where they are not.
py::array gelu(const char* op, py::array x, const py::object& dy_obj, bool tanh_approx) {
  if (!dtype_eq(x.dtype(), bf16_dtype())) throw py::type_error(std::string(op) + ": x must be bfloat16, got " + dtype_str(x));
  x = py::array::ensure(x, py::array::c_style);
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  py::array dy;
  if (!dy_obj.is_none()) {
    if (!py::isinstance<py::array>(dy_obj)) throw py::type_error(std::string(op) + ": dy must be a numpy array");
    dy = py::reinterpret_borrow<py::array>(dy_obj);
    if (!dtype_eq(dy.dtype(), bf16_dtype()))
      throw py::type_error(std::string(op) + ": dy must be bfloat16, got " + dtype_str(dy));
    check_shape(dy, shape, op, "dy");
    dy = py::array::ensure(dy, py::array::c_style);
  }
  py::array y(bf16_dtype(), shape);
  const index_t n = x.size();
  const auto* xp = static_cast<const bf16_t*>(x.data());
  auto* yp = static_cast<bf16_t*>(y.mutable_data());
  py::gil_scoped_release release;
  if (dy_obj.is_none()) gelu_bf16_forward(xp, yp, n, tanh_approx);
  else gelu_bf16_backward(xp, static_cast<const bf16_t*>(dy.data()), yp, n, tanh_approx);
  return y;
}

// Column sums of a 2-D bfloat16 array (a contiguous copy where it is not): float32 (cols,).
py::array sum_rows(py::array x) {
  if (!dtype_eq(x.dtype(), bf16_dtype())) throw py::type_error("sum_rows_bf16: x must be bfloat16, got " + dtype_str(x));
  if (x.ndim() != 2) throw py::value_error("sum_rows_bf16: x must be 2-D, got " + std::to_string(x.ndim()) + "-D");
  x = py::array::ensure(x, py::array::c_style);
  const index_t rows = x.shape(0), cols = x.shape(1);
  py::array out(py::dtype::of<float>(), std::vector<py::ssize_t>{x.shape(1)});
  const auto* xp = static_cast<const bf16_t*>(x.data());
  auto* op = static_cast<float*>(out.mutable_data());
  py::gil_scoped_release release;
  sum_rows_bf16(xp, rows, cols, op);
  return out;
}

}  // namespace
}  // namespace gemm_bf16_bind

void register_gemm_bf16(py::module_& m) {
  using namespace gemm_bf16_bind;
  m.def("matmul_bf16",
        [](const py::array& a, const py::array& b, bool trans_a, bool trans_b, const py::object& out,
           bool accumulate, bool bf16_out, const py::object& bias) {
          return run(a, b, trans_a, trans_b, out, accumulate, bf16_out, bias);
        },
        py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("out") = py::none(), py::arg("accumulate") = false, py::arg("bf16_out") = false,
        py::arg("bias") = py::none(),
        "op(a) @ op(b) (+ out when accumulate) (+ bias, float32 (N,)) for bfloat16 a, b, summed in float32; a "
        "float32 result, or bfloat16 (rounded to nearest even once, as each block finishes) when bf16_out or out "
        "is bfloat16.");
  m.def("f32_to_bf16", [](const py::array& x, const py::object& out) { return convert("f32_to_bf16", x, out, true); },
        py::arg("x").noconvert(), py::arg("out") = py::none(),
        "float32 -> bfloat16, round to nearest even (NaN stays NaN).");
  m.def("bf16_to_f32", [](const py::array& x, const py::object& out) { return convert("bf16_to_f32", x, out, false); },
        py::arg("x").noconvert(), py::arg("out") = py::none(), "bfloat16 -> float32 (exact).");
  m.def("gelu_bf16_forward",
        [](const py::array& x, bool tanh_approx) { return gelu("gelu_bf16_forward", x, py::none(), tanh_approx); },
        py::arg("x").noconvert(), py::arg("tanh_approx") = false,
        "GELU of bfloat16 x computed in float32, rounded to bfloat16 once (tanh_approx: the tanh form).");
  m.def("gelu_bf16_backward",
        [](const py::array& x, const py::array& dy, bool tanh_approx) {
          return gelu("gelu_bf16_backward", x, dy, tanh_approx);
        },
        py::arg("x").noconvert(), py::arg("dy").noconvert(), py::arg("tanh_approx") = false,
        "dy * GELU'(x) for bfloat16 x, dy, computed in float32, rounded to bfloat16 once.");
  m.def("sum_rows_bf16", [](const py::array& x) { return sum_rows(x); }, py::arg("x").noconvert(),
        "out[j] = sum_r x[r, j] for a 2-D bfloat16 x: float32 (cols,), summed in float64 in row order.");
  m.def("bf16_path", [] { return std::string(bf16_path_name(bf16_path())); },
        "The bfloat16 GEMM path in use: amx | avx512bf16 | generic.");
  m.def("bf16_path_supported", [] { return std::string(bf16_path_name(bf16_path_supported())); },
        "The best bfloat16 GEMM path this machine allows.");
  m.def("set_bf16_path",
        [](const std::string& name) {
          if (name == "generic") set_bf16_path(Bf16Path::generic);
          else if (name == "avx512bf16") set_bf16_path(Bf16Path::avx512bf16);
          else if (name == "amx") set_bf16_path(Bf16Path::amx);
          else throw py::value_error("set_bf16_path: expected 'amx', 'avx512bf16' or 'generic', got '" + name + "'");
          return std::string(bf16_path_name(bf16_path()));
        },
        py::arg("name"), "Cap the bfloat16 GEMM path (clamped to what the machine allows); returns the path in use.");
}

}  // namespace pe
