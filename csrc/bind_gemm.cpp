// Bindings of the gemm kernel family (csrc/cpu/gemm*.cpp).
//
// Public (strict: anything unsupported raises):
//   _C.gemm(a, b, c, trans_a, trans_b, alpha, beta, bias=None)
//       c[i] = alpha * op(a[i]) @ op(b[i]) + beta * c[i] (+ bias), in place; returns None.
//   _C.linear(x, weight, bias, out)
//       out = x @ weight.T + bias (bias may be None), the bias added in the GEMM epilogue.
// Fast paths for pyengine/backend/cpu/gemm.py (one call per op on the hot path):
//   _C._matmul(a, b, trans_a, trans_b, alpha, beta, out)  -> result, or None
//   _C._linear(x, weight, bias)                           -> result, or None
//   They return None (having touched nothing) for what the Python layer must
//   prepare first: other ranks, layouts that need a copy, batch broadcasts other
//   than a batch of 1, an out that overlaps an input or needs a temporary.
//   Dtype and shape errors raise as in the public functions.
//
// Arrays are 2-D (rows, cols) or 3-D (batch, rows, cols). Each matrix needs a
// unit stride along one of its last two axes: along the last (the usual
// row-major layout, row stride = leading dimension) or along the rows (a
// transposed view such as x.T, passed without a copy by flipping its transpose
// flag). A batch of 1, or a batch stride of 0, broadcasts an input over c's
// batch. c must be writeable and its rows and batches must not overlap; in
// _C.gemm, c must not overlap a or b (not checked; results would be wrong, but
// no memory outside the arrays is touched).
#include <algorithm>
#include <string>

#include "binding_utils.h"
#include "bindings.h"
#include "cpu/gemm.h"

namespace pe {
namespace {

// One matrix operand as the kernel sees it: stored row-major (rows, cols) with
// leading dimension `ld`, batch stride `bstride` (elements), and whether the
// stored matrix is the transpose of the array's last two axes.
struct Operand {
  char* ptr = nullptr;
  index_t batch = 1, rows = 0, cols = 0, ld = 1, bstride = 0;
  bool transposed = false;
};

std::string strides_str(const py::array& x) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < x.ndim(); ++i) s += (i ? ", " : "") + std::to_string(x.strides(i));
  return s + (x.ndim() == 1 ? ",)" : ")");
}

// Reads shape and strides of a 2-D or 3-D array. Returns false (and touches
// nothing) when the layout is not one the kernel takes as is.
bool parse(const py::array& x, Operand& o) {
  const py::ssize_t isz = x.itemsize();
  const int r_ax = static_cast<int>(x.ndim()) - 2, c_ax = r_ax + 1;
  const index_t rows = x.shape(r_ax), cols = x.shape(c_ax);
  const py::ssize_t sr = x.strides(r_ax), sc = x.strides(c_ax);
  auto positive_multiple = [&](py::ssize_t s) { return s > 0 && s % isz == 0; };

  o.ptr = static_cast<char*>(const_cast<void*>(x.data()));
  if (x.size() == 0) {  // empty: no element is addressed, any strides do
    o.transposed = false;
    o.rows = rows;
    o.cols = cols;
    o.ld = std::max<index_t>(cols, 1);
  } else if ((cols <= 1 || sc == isz) && (rows <= 1 || positive_multiple(sr))) {
    o.transposed = false;
    o.rows = rows;
    o.cols = cols;
    o.ld = rows <= 1 ? std::max<index_t>(cols, 1) : sr / isz;
  } else if ((rows <= 1 || sr == isz) && (cols <= 1 || positive_multiple(sc))) {
    o.transposed = true;  // store x^T: (cols, rows) with unit last stride
    o.rows = cols;
    o.cols = rows;
    o.ld = cols <= 1 ? std::max<index_t>(rows, 1) : sc / isz;
  } else {
    return false;
  }
  o.batch = 1;
  o.bstride = 0;
  if (x.ndim() == 3 && x.size() == 0) {
    o.batch = x.shape(0);
  } else if (x.ndim() == 3) {
    o.batch = x.shape(0);
    if (o.batch > 1) {
      const py::ssize_t sb = x.strides(0);
      if (sb < 0 || sb % isz != 0) return false;
      o.bstride = sb / isz;
    }
  }
  return true;
}

void check_rank(const py::array& x, const char* op, const char* name) {
  if (x.ndim() != 2 && x.ndim() != 3)
    throw py::value_error(std::string(op) + ": " + name + " must be 2-D or 3-D, got shape " + shape_str(x));
}

Operand parse_or_throw(const py::array& x, const char* op, const char* name) {
  check_rank(x, op, name);
  Operand o;
  if (!parse(x, o))
    throw py::value_error(std::string(op) + ": " + name +
                          " needs a positive unit stride along one of its last two axes and a batch stride "
                          ">= 0 (shape " + shape_str(x) + ", strides " + strides_str(x) + ")");
  return o;
}

// The output rows and batches must not overlap: they are written in parallel.
bool out_layout_ok(const Operand& C) {
  if (C.rows > 1 && C.ld < C.cols) return false;
  if (C.batch > 1 && C.rows > 0 && C.cols > 0 && C.bstride < (C.rows - 1) * C.ld + C.cols) return false;
  return true;
}

// Byte range [lo, hi) spanned by an array (as np.may_share_memory's bounds check).
void bounds(const py::array& x, const char*& lo, const char*& hi) {
  lo = hi = static_cast<const char*>(x.data());
  for (py::ssize_t i = 0; i < x.ndim(); ++i) {
    if (x.shape(i) == 0) {
      hi = lo;
      return;
    }
    const py::ssize_t ext = (x.shape(i) - 1) * x.strides(i);
    if (ext < 0) lo += ext;
    else hi += ext;
  }
  hi += x.itemsize();
}

bool overlaps(const py::array& x, const py::array& y) {
  const char *xl, *xh, *yl, *yh;
  bounds(x, xl, xh);
  bounds(y, yl, yh);
  return xl < xh && yl < yh && xl < yh && yl < xh;
}

// Sizes of op(a) @ op(b), checked. `ta`/`tb` are the effective transposes of
// the stored operands.
struct Sizes {
  index_t M, N, K, batch;
};

Sizes match(const char* op, const py::array& a, const py::array& b, const Operand& A, const Operand& B, bool ta,
            bool tb, bool trans_a, bool trans_b) {
  Sizes s;
  s.M = ta ? A.cols : A.rows;
  s.K = ta ? A.rows : A.cols;
  const index_t K2 = tb ? B.cols : B.rows;
  s.N = tb ? B.rows : B.cols;
  if (s.K != K2)
    throw py::value_error(std::string(op) + ": shapes do not match: a " + shape_str(a) + " (trans_a=" +
                          (trans_a ? "True" : "False") + ") and b " + shape_str(b) + " (trans_b=" +
                          (trans_b ? "True" : "False") + ") give K = " + std::to_string(s.K) + " and " +
                          std::to_string(K2));
  if (A.batch != B.batch && A.batch != 1 && B.batch != 1)
    throw py::value_error(std::string(op) + ": batch sizes do not match: a " + shape_str(a) + ", b " +
                          shape_str(b));
  s.batch = std::max(A.batch, B.batch);
  return s;
}

void check_out(const char* op, const py::array& a, const py::array& b, const py::array& c, const Operand& C,
               const Sizes& s) {
  const index_t Mc = C.transposed ? C.cols : C.rows, Nc = C.transposed ? C.rows : C.cols;
  if (Mc != s.M || Nc != s.N || (C.batch != s.batch && s.batch != 1) || (c.ndim() == 2 && s.batch != 1))
    throw py::value_error(std::string(op) + ": out has shape " + shape_str(c) + ", expected " +
                          (c.ndim() == 3 || s.batch != 1 ? "(" + std::to_string(s.batch) + ", " : "(") +
                          std::to_string(s.M) + ", " + std::to_string(s.N) + ") for a " + shape_str(a) +
                          " and b " + shape_str(b));
}

// Fills GemmArgs and runs the kernel without the GIL. Inputs with a batch of 1
// are broadcast (batch stride 0) over C's batch.
template <class T>
void launch(const Operand& A, const Operand& B, const Operand& C, bool ta, bool tb, const Sizes& s, double alpha,
            double beta, const T* bias) {
  GemmArgs<T> g;
  g.batch = C.batch;
  g.alpha = static_cast<T>(alpha);
  g.beta = static_cast<T>(beta);
  g.c = reinterpret_cast<T*>(C.ptr);
  g.ldc = C.ld;
  g.stride_c = C.bstride;
  g.bias = bias;
  const index_t sa = A.batch == 1 ? 0 : A.bstride, sb = B.batch == 1 ? 0 : B.bstride;
  if (!C.transposed) {
    g.M = s.M, g.N = s.N, g.K = s.K;
    g.a = reinterpret_cast<const T*>(A.ptr), g.lda = A.ld, g.stride_a = sa, g.trans_a = ta;
    g.b = reinterpret_cast<const T*>(B.ptr), g.ldb = B.ld, g.stride_b = sb, g.trans_b = tb;
  } else {
    // C is stored transposed: compute C^T = op(B)^T @ op(A)^T instead.
    g.M = s.N, g.N = s.M, g.K = s.K;
    g.a = reinterpret_cast<const T*>(B.ptr), g.lda = B.ld, g.stride_a = sb, g.trans_a = !tb;
    g.b = reinterpret_cast<const T*>(A.ptr), g.ldb = A.ld, g.stride_b = sa, g.trans_b = !ta;
  }
  if (g.batch <= 0 || g.M <= 0 || g.N <= 0) return;
  py::gil_scoped_release release;
  gemm<T>(g);
}

char check_dtypes(const char* op, const py::array& a, const py::array& b, const char* na, const char* nb) {
  const char kind = float_kind(a, op, na);
  check_same_dtype(a, b, op, na, nb);
  return kind;
}

// bias: None or a 1-D array of N elements, contiguous, of a's dtype.
const void* bias_ptr(const char* op, const py::array& a, const py::object& bias, index_t N, bool c_transposed) {
  if (bias.is_none()) return nullptr;
  if (!py::isinstance<py::array>(bias)) throw py::type_error(std::string(op) + ": bias must be a numpy array or None");
  py::array arr = py::reinterpret_borrow<py::array>(bias);
  check_same_dtype(a, arr, op, "x", "bias");
  check_shape(arr, {static_cast<py::ssize_t>(N)}, op, "bias");
  if (N > 1 && arr.strides(0) != arr.itemsize()) throw py::value_error(std::string(op) + ": bias must be contiguous");
  if (c_transposed)
    throw py::value_error(std::string(op) + ": a bias needs out with a unit stride along its last axis");
  return arr.data();
}

// ---------------------------------------------------------------- public

void gemm_strict(const char* op, const py::array& a, const py::array& b, py::array& c, bool trans_a, bool trans_b,
                 double alpha, double beta, const py::object& bias) {
  const char kind = check_dtypes(op, a, b, "a", "b");
  check_same_dtype(a, c, op, "a", "out");
  const Operand A = parse_or_throw(a, op, "a"), B = parse_or_throw(b, op, "b");
  const Operand C = parse_or_throw(c, op, "out");
  const bool ta = trans_a != A.transposed, tb = trans_b != B.transposed;
  const Sizes s = match(op, a, b, A, B, ta, tb, trans_a, trans_b);
  if ((A.batch != 1 && A.batch != C.batch) || (B.batch != 1 && B.batch != C.batch))
    throw py::value_error(std::string(op) + ": batch sizes do not match: a " + shape_str(a) + ", b " +
                          shape_str(b) + ", out " + shape_str(c));
  const index_t Mc = C.transposed ? C.cols : C.rows, Nc = C.transposed ? C.rows : C.cols;
  if (Mc != s.M || Nc != s.N)
    throw py::value_error(std::string(op) + ": out has shape " + shape_str(c) + ", expected (..., " +
                          std::to_string(s.M) + ", " + std::to_string(s.N) + ") for a " + shape_str(a) + " and b " +
                          shape_str(b));
  check_writeable(c, op, "out");
  if (!out_layout_ok(C))
    throw py::value_error(std::string(op) + ": out has overlapping rows or batches (shape " + shape_str(c) +
                          ", strides " + strides_str(c) + ")");
  const void* bp = bias_ptr(op, a, bias, s.N, C.transposed);
  if (kind == 'f') launch<float>(A, B, C, ta, tb, s, alpha, beta, static_cast<const float*>(bp));
  else launch<double>(A, B, C, ta, tb, s, alpha, beta, static_cast<const double*>(bp));
}

// ---------------------------------------------------------------- fast paths

py::object matmul_fast(const py::object& ao, const py::object& bo, bool trans_a, bool trans_b, double alpha,
                       double beta, const py::object& out) {
  const char* op = "matmul";
  if (!py::isinstance<py::array>(ao) || !py::isinstance<py::array>(bo)) return py::none();
  const py::array a = py::reinterpret_borrow<py::array>(ao), b = py::reinterpret_borrow<py::array>(bo);
  if (a.ndim() < 2 || a.ndim() > 3 || b.ndim() < 2 || b.ndim() > 3) return py::none();
  const char kind = check_dtypes(op, a, b, "a", "b");
  Operand A, B;
  if (!parse(a, A) || !parse(b, B)) return py::none();
  const bool ta = trans_a != A.transposed, tb = trans_b != B.transposed;
  const Sizes s = match(op, a, b, A, B, ta, tb, trans_a, trans_b);
  const bool batched = a.ndim() == 3 || b.ndim() == 3;

  py::array c;
  Operand C;
  if (out.is_none()) {
    if (batched) c = py::array(a.dtype(), std::vector<py::ssize_t>{s.batch, s.M, s.N});
    else c = py::array(a.dtype(), std::vector<py::ssize_t>{s.M, s.N});
    parse(c, C);
  } else {
    if (!py::isinstance<py::array>(out)) return py::none();
    c = py::reinterpret_borrow<py::array>(out);
    if (c.ndim() != (batched ? 3 : 2)) return py::none();  // batch broadcast into out: Python
    check_same_dtype(a, c, op, "a", "out");
    if (!parse(c, C)) return py::none();
    check_out(op, a, b, c, C, s);
    if (C.batch != s.batch) return py::none();  // out broadcasts the batch: Python
    if (!c.writeable()) throw py::value_error("matmul: out must be writeable");
    if (!out_layout_ok(C) || overlaps(c, a) || overlaps(c, b)) return py::none();
  }
  if (kind == 'f') launch<float>(A, B, C, ta, tb, s, alpha, beta, nullptr);
  else launch<double>(A, B, C, ta, tb, s, alpha, beta, nullptr);
  return std::move(c);
}

py::object linear_fast(const py::object& xo, const py::object& wo, const py::object& bias) {
  const char* op = "linear";
  if (!py::isinstance<py::array>(xo) || !py::isinstance<py::array>(wo)) return py::none();
  const py::array x = py::reinterpret_borrow<py::array>(xo), w = py::reinterpret_borrow<py::array>(wo);
  if (x.ndim() != 2 || w.ndim() != 2) return py::none();
  const char kind = check_dtypes(op, x, w, "x", "weight");
  if (!bias.is_none()) {
    if (!py::isinstance<py::array>(bias)) return py::none();
    const py::array bb = py::reinterpret_borrow<py::array>(bias);
    if (bb.ndim() != 1 || bb.shape(0) != w.shape(0) || (bb.shape(0) > 1 && bb.strides(0) != bb.itemsize()))
      return py::none();
  }
  Operand X, W;
  if (!parse(x, X) || !parse(w, W)) return py::none();
  const bool tx = X.transposed, tw = !W.transposed;  // y = x @ weight^T
  const Sizes s = match(op, x, w, X, W, tx, tw, false, true);
  py::array y(x.dtype(), std::vector<py::ssize_t>{s.M, s.N});
  Operand Y;
  parse(y, Y);
  const void* bp = bias_ptr(op, x, bias, s.N, false);
  if (kind == 'f') launch<float>(X, W, Y, tx, tw, s, 1.0, 0.0, static_cast<const float*>(bp));
  else launch<double>(X, W, Y, tx, tw, s, 1.0, 0.0, static_cast<const double*>(bp));
  return std::move(y);
}

// ---------------------------------------------------------------- tuning hooks

Isa isa_from_name(const std::string& name) {
  if (name == "generic") return Isa::generic;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw py::value_error("gemm blocking: isa must be 'generic', 'avx2' or 'avx512', got '" + name + "'");
}

char dtype_char(const py::object& dtype) {
  py::dtype dt = py::dtype::from_args(dtype);
  if (pe::dtype_eq(dt, py::dtype::of<float>())) return 'f';
  if (pe::dtype_eq(dt, py::dtype::of<double>())) return 'd';
  throw py::type_error("gemm blocking: dtype must be float32 or float64");
}

}  // namespace

void register_gemm(py::module_& m) {
  // py::array arguments with py::arg().noconvert(): no implicit conversion or
  // copy; a wrong dtype fails the checks with a message naming the op.
  m.def("gemm",
        [](const py::array& a, const py::array& b, py::array& c, bool trans_a, bool trans_b, double alpha,
           double beta, const py::object& bias) {
          gemm_strict("matmul", a, b, c, trans_a, trans_b, alpha, beta, bias);
        },
        py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("c").noconvert(), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("bias") = py::none(),
        "c = alpha * op(a) @ op(b) + beta * c (+ bias over rows), in place. a, b, c: 2-D or 3-D "
        "float32/float64 arrays of one dtype, each with a unit stride along one of its last two axes; "
        "a batch of 1 or a batch stride of 0 broadcasts a or b. beta == 0 never reads c.");
  m.def("linear",
        [](const py::array& x, const py::array& weight, const py::object& bias, py::array& out) {
          gemm_strict("linear", x, weight, out, false, true, 1.0, 0.0, bias);
        },
        py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("bias"), py::arg("out").noconvert(),
        "out = x @ weight.T + bias (bias None or (OUT,)), bias added in the GEMM epilogue. "
        "x: (N, IN), weight: (OUT, IN), out: (N, OUT).");
  m.def("_matmul", &matmul_fast, py::arg("a"), py::arg("b"), py::arg("trans_a"), py::arg("trans_b"),
        py::arg("alpha"), py::arg("beta"), py::arg("out"),
        "Fast path of backend.cpu.matmul: the result, or None when Python must prepare the operands.");
  m.def("_linear", &linear_fast, py::arg("x"), py::arg("weight"), py::arg("bias"),
        "Fast path of backend.cpu.linear: the result, or None when Python must prepare the operands.");
  m.def("gemm_blocking",
        [](const std::string& isa, const py::object& dtype) {
          GemmBlocking b = gemm_blocking(isa_from_name(isa), dtype_char(dtype));
          py::dict d;
          d["mr"] = b.mr, d["nr"] = b.nr, d["mc"] = b.mc, d["kc"] = b.kc, d["nc"] = b.nc;
          return d;
        },
        py::arg("isa"), py::arg("dtype"), "The GEMM micro-tile and cache blocks for an ISA and dtype.");
  m.def("set_gemm_blocking",
        [](const std::string& isa, const py::object& dtype, index_t mc, index_t kc, index_t nc) {
          if (mc < 1 || kc < 1 || nc < 1) throw py::value_error("set_gemm_blocking: mc, kc, nc must be >= 1");
          set_gemm_blocking(isa_from_name(isa), dtype_char(dtype), mc, kc, nc);
        },
        py::arg("isa"), py::arg("dtype"), py::arg("mc"), py::arg("kc"), py::arg("nc"),
        "Tuning hook: set the GEMM cache blocks (rounded up to the micro-tile). Not thread-safe.");
}

}  // namespace pe
