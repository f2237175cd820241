// Bindings of the gemm kernel family (csrc/cpu/gemm*.cpp).
//
//   _C.matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None) -> out, or a new array
//       alpha * op(a) @ op(b) + beta * out, op(x) = x or x^T (its last two axes swapped).
//       a: (M, K) or (Ba, M, K)   b: (K, N) or (Bb, K, N)   ->   (M, N), or (B, M, N) if a or b is 3-D.
//       Batches are equal, or 1 (a 2-D operand or a batch of 1 is broadcast over the other's batch).
//       Or two batch dims: a (B1a, B2a, M, K), b (B1b, B2b, K, N) -> (B1, B2, M, N), each batch dim
//       equal or 1 (a 2-D operand broadcasts too; a 3-D one does not mix with a 4-D one). Each batch
//       dim keeps its own stride: heads (B, H) viewed from a (B, T, H, D) array are read in place.
//   _C.linear(x, weight, bias=None, out=None) -> out, or a new array
//       x @ weight^T + bias, the bias added in the GEMM epilogue. x: (N, IN), weight: (OUT, IN), bias: (OUT,).
//
// This is the whole contract: 1-D operands and batch dims beyond one are the matmul op's business
// (pyengine/ops/linalg.py), which reduces every case to these shapes. Any layout is accepted, in one
// call: a matrix with a unit stride along one of its last two axes is read in place (a transposed view
// such as x.T flips its transpose flag instead of being copied); anything else is copied here first.
// `out` may have any layout and may overlap the inputs: when the kernel cannot write it directly, the
// result goes through a temporary that is then copied into it. beta == 0 never reads out.
#include <algorithm>
#include <string>
#include <vector>

#include "binding_utils.h"
#include "bindings.h"
#include "cpu/gemm.h"

namespace pe {
namespace {

// One matrix operand as the kernel sees it: stored row-major (rows, cols) with leading dimension `ld`,
// batch dims (b0, b1) with strides (s0, s1) (elements; b1 = 1 unless 4-D, b0 = b1 = 1 for 2-D), and
// whether the stored matrix is the transpose of the array's last two axes.
struct Operand {
  char* ptr = nullptr;
  index_t batch = 1, rows = 0, cols = 0, ld = 1;
  index_t b0 = 1, b1 = 1, s0 = 0, s1 = 0;
  bool transposed = false;
};

// Reads shape and strides of a 2-D or 3-D array. Returns false (and touches nothing) when the layout
// is not one the kernel takes as it is.
bool parse(const py::array& x, Operand& o) {
  const py::ssize_t isz = x.itemsize();
  const int r_ax = static_cast<int>(x.ndim()) - 2, c_ax = r_ax + 1;
  const index_t rows = x.shape(r_ax), cols = x.shape(c_ax);
  const py::ssize_t sr = x.strides(r_ax), sc = x.strides(c_ax);
  auto positive_multiple = [&](py::ssize_t s) { return s > 0 && s % isz == 0; };

  o.ptr = static_cast<char*>(const_cast<void*>(x.data()));
  o.b0 = x.ndim() >= 3 ? x.shape(0) : 1;
  o.b1 = x.ndim() == 4 ? x.shape(1) : 1;
  o.batch = o.b0 * o.b1;
  o.s0 = o.s1 = 0;
  if (x.size() == 0) {  // empty: no element is addressed, any strides do
    o.transposed = false;
    o.rows = rows;
    o.cols = cols;
    o.ld = std::max<index_t>(cols, 1);
    return true;
  }
  if ((cols <= 1 || sc == isz) && (rows <= 1 || positive_multiple(sr))) {
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
  // batch strides of 0 (broadcast) are fine; a batch dim of 1 is never stepped along
  for (int d = 0; d < static_cast<int>(x.ndim()) - 2; ++d) {
    if (x.shape(d) <= 1) continue;
    const py::ssize_t sb = x.strides(d);
    if (sb < 0 || sb % isz != 0) return false;
    (d == 0 ? o.s0 : o.s1) = sb / isz;
  }
  return true;
}

// The operand of `x`, copied to C order first if the kernel cannot read it in place. `x` is replaced
// by the copy, which the caller keeps alive while the kernel runs.
Operand operand(py::array& x, const char* op, const char* name) {
  if (x.ndim() < 2 || x.ndim() > 4)
    throw py::value_error(std::string(op) + ": " + name + " must be 2-D, 3-D or 4-D, got shape " + shape_str(x) +
                          " (the matmul op reduces other ranks to these)");
  Operand o;
  if (!parse(x, o)) {
    x = py::array::ensure(x, py::array::c_style);
    if (!x || !parse(x, o)) throw py::value_error(std::string(op) + ": could not copy " + name);
  }
  return o;
}

// The output's elements must not overlap: rows and batches are written in parallel. Sufficient (and
// what any array that is not a strided alias of itself satisfies): with its dims of more than one
// element sorted by stride, each stride steps past everything the smaller ones span.
bool out_layout_ok(const Operand& C) {
  if (C.rows == 0 || C.cols == 0 || C.batch == 0) return true;
  std::pair<index_t, index_t> dims[4] = {{1, C.cols}, {C.ld, C.rows}, {C.s1, C.b1}, {C.s0, C.b0}};
  std::sort(dims, dims + 4);
  index_t span = 0;  // elements spanned by the smaller dims, minus one
  for (const auto& [stride, count] : dims) {
    if (count <= 1) continue;
    if (stride <= span) return false;
    span += (count - 1) * stride;
  }
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

// Sizes of op(a) @ op(b), checked. `ta`/`tb` are the effective transposes of the stored operands.
struct Sizes {
  index_t M, N, K, batch;
};

Sizes match(const char* op, const py::array& a, const py::array& b, const Operand& A, const Operand& B, bool ta,
            bool tb, bool trans_a, bool trans_b, index_t& b0, index_t& b1) {
  Sizes s;
  s.M = ta ? A.cols : A.rows;
  s.K = ta ? A.rows : A.cols;
  const index_t K2 = tb ? B.cols : B.rows;
  s.N = tb ? B.rows : B.cols;
  const char* na = op[0] == 'l' ? "x" : "a";
  const char* nb = op[0] == 'l' ? "weight" : "b";
  if (s.K != K2)
    throw py::value_error(std::string(op) + ": shapes do not match: " + na + " " + shape_str(a) +
                          (op[0] == 'l' ? "" : std::string(" (trans_a=") + (trans_a ? "True" : "False") + ")") +
                          " and " + nb + " " + shape_str(b) +
                          (op[0] == 'l' ? "" : std::string(" (trans_b=") + (trans_b ? "True" : "False") + ")") +
                          " give K = " + std::to_string(s.K) + " and " + std::to_string(K2));
  // a batch of 1 broadcasts; a batch of 0 stays 0 (an empty result), never 1
  const bool four = a.ndim() == 4 || b.ndim() == 4;
  if (four && (a.ndim() == 3 || b.ndim() == 3))
    throw py::value_error(std::string(op) + ": a 3-D and a 4-D operand: " + na + " " + shape_str(a) + ", " + nb +
                          " " + shape_str(b) + " (pass both with the same batch dims)");
  auto bcast = [&](index_t x, index_t y) {
    if (x != y && x != 1 && y != 1)
      throw py::value_error(std::string(op) + ": batch sizes do not match: " + na + " " + shape_str(a) + ", " + nb +
                            " " + shape_str(b));
    return x == 1 ? y : x;
  };
  if (four) {
    b0 = bcast(A.b0, B.b0);
    b1 = bcast(A.b1, B.b1);
  } else {
    b0 = bcast(A.batch, B.batch);
    b1 = 1;
  }
  s.batch = b0 * b1;
  return s;
}

// Fills GemmArgs and runs the kernel without the GIL. Inputs with a batch of 1 are broadcast
// (batch stride 0) over C's batch.
// Two batch levels (b1 > 1 with a 4-D operand) become GemmArgs::inner; a batch dim of 1 broadcasts by
// stride 0.
template <class T>
void launch(const Operand& A, const Operand& B, const Operand& C, bool ta, bool tb, const Sizes& s, index_t b1,
            double alpha, double beta, const T* bias) {
  GemmArgs<T> g;
  g.batch = s.batch;
  g.alpha = static_cast<T>(alpha);
  g.beta = static_cast<T>(beta);
  g.c = reinterpret_cast<T*>(C.ptr);
  g.ldc = C.ld;
  g.bias = bias;
  const bool two = b1 > 1;
  index_t sa, sb, isa = 0, isb = 0;
  if (two) {
    g.inner = b1;
    sa = A.b0 == 1 ? 0 : A.s0, isa = A.b1 == 1 ? 0 : A.s1;
    sb = B.b0 == 1 ? 0 : B.s0, isb = B.b1 == 1 ? 0 : B.s1;
    g.stride_c = C.s0, g.istride_c = C.s1;
  } else {  // one level: a 4-D operand's batch is (b0, 1) here
    sa = A.batch == 1 ? 0 : A.s0, sb = B.batch == 1 ? 0 : B.s0;
    g.stride_c = C.s0;
  }
  if (!C.transposed) {
    g.M = s.M, g.N = s.N, g.K = s.K;
    g.a = reinterpret_cast<const T*>(A.ptr), g.lda = A.ld, g.stride_a = sa, g.istride_a = isa, g.trans_a = ta;
    g.b = reinterpret_cast<const T*>(B.ptr), g.ldb = B.ld, g.stride_b = sb, g.istride_b = isb, g.trans_b = tb;
  } else {
    // C is stored transposed: compute C^T = op(B)^T @ op(A)^T instead.
    g.M = s.N, g.N = s.M, g.K = s.K;
    g.a = reinterpret_cast<const T*>(B.ptr), g.lda = B.ld, g.stride_a = sb, g.istride_a = isb, g.trans_a = !tb;
    g.b = reinterpret_cast<const T*>(A.ptr), g.ldb = A.ld, g.stride_b = sa, g.istride_b = isa, g.trans_b = !ta;
  }
  if (g.batch <= 0 || g.M <= 0 || g.N <= 0) return;
  py::gil_scoped_release release;
  gemm<T>(g);
}

// bias: None or a 1-D array of N elements of x's dtype (copied if not contiguous).
py::object bias_array(const char* op, const py::array& x, const py::object& bias, index_t N) {
  if (bias.is_none()) return bias;
  if (!py::isinstance<py::array>(bias)) throw py::type_error(std::string(op) + ": bias must be a numpy array or None");
  py::array arr = py::reinterpret_borrow<py::array>(bias);
  check_same_dtype(x, arr, op, "x", "bias");
  check_shape(arr, {static_cast<py::ssize_t>(N)}, op, "bias");
  if (N > 1 && arr.strides(0) != arr.itemsize()) arr = py::array::ensure(arr, py::array::c_style);
  return std::move(arr);
}

// One GEMM call on arrays of any layout, into `out` (any layout, may overlap a or b) or a new array.
py::array run(const char* op, py::array a, py::array b, bool trans_a, bool trans_b, double alpha, double beta,
              const py::object& out, const py::object& bias) {
  const char kind = float_kind(a, op, op[0] == 'l' ? "x" : "a");
  check_same_dtype(a, b, op, op[0] == 'l' ? "x" : "a", op[0] == 'l' ? "weight" : "b");
  const Operand A = operand(a, op, op[0] == 'l' ? "x" : "a"), B = operand(b, op, op[0] == 'l' ? "weight" : "b");
  const bool ta = trans_a != A.transposed, tb = trans_b != B.transposed;
  index_t b0 = 1, b1 = 1;
  const Sizes s = match(op, a, b, A, B, ta, tb, trans_a, trans_b, b0, b1);
  const int ndim = static_cast<int>(std::max(a.ndim(), b.ndim()));
  std::vector<py::ssize_t> shape = ndim == 4   ? std::vector<py::ssize_t>{b0, b1, s.M, s.N}
                                   : ndim == 3 ? std::vector<py::ssize_t>{s.batch, s.M, s.N}
                                               : std::vector<py::ssize_t>{s.M, s.N};
  const py::object bias_arr = bias_array(op, a, bias, s.N);
  const void* bp = bias_arr.is_none() ? nullptr : py::reinterpret_borrow<py::array>(bias_arr).data();

  py::array c, result;
  if (out.is_none()) {
    if (beta != 0.0) throw py::value_error(std::string(op) + ": beta != 0 needs out");
    c = result = py::array(a.dtype(), shape);
  } else {
    if (!py::isinstance<py::array>(out)) throw py::type_error(std::string(op) + ": out must be a numpy array or None");
    result = py::reinterpret_borrow<py::array>(out);
    check_same_dtype(a, result, op, op[0] == 'l' ? "x" : "a", "out");
    check_shape(result, shape, op, "out");
    check_writeable(result, op, "out");
    c = result;
    Operand C;
    const bool parsed = parse(c, C);
    if (parsed && !out_layout_ok(C))
      throw py::value_error(std::string(op) + ": out has overlapping rows or batches (shape " + shape_str(c) +
                            ", strides " + strides_str(c) + ")");
    const bool direct = parsed && (bp == nullptr || !C.transposed) && !overlaps(c, a) && !overlaps(c, b);
    if (!direct) {  // through a C-ordered temporary, holding out's values when beta reads them
      c = py::array(a.dtype(), shape);
      if (beta != 0.0) c[py::ellipsis()] = result;
    }
  }
  Operand C;
  parse(c, C);
  if (kind == 'f') launch<float>(A, B, C, ta, tb, s, b1, alpha, beta, static_cast<const float*>(bp));
  else launch<double>(A, B, C, ta, tb, s, b1, alpha, beta, static_cast<const double*>(bp));
  if (!c.is(result)) result[py::ellipsis()] = c;
  return result;
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
  // py::array arguments with py::arg().noconvert(): no implicit conversion; a wrong type or dtype
  // fails the checks with a message naming the op.
  m.def("matmul",
        [](const py::array& a, const py::array& b, bool trans_a, bool trans_b, double alpha, double beta,
           const py::object& out) { return run("matmul", a, b, trans_a, trans_b, alpha, beta, out, py::none()); },
        py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("out") = py::none(),
        "alpha * op(a) @ op(b) + beta * out, into out or a new array. a: (M, K), (B, M, K) or (B1, B2, M, K), "
        "b: (K, N), (B, K, N) or (B1, B2, K, N) (a batch dim of 1 broadcasts), float32/float64, any layout. "
        "beta == 0 never reads out.");
  m.def("linear",
        [](const py::array& x, const py::array& weight, const py::object& bias, const py::object& out) {
          if (x.ndim() != 2 || weight.ndim() != 2)
            throw py::value_error("linear: x and weight must be 2-D, got shapes " + shape_str(x) + " and " +
                                  shape_str(weight));
          return run("linear", x, weight, false, true, 1.0, 0.0, out, bias);
        },
        py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("bias") = py::none(),
        py::arg("out") = py::none(),
        "x @ weight.T + bias (bias None or (OUT,)), the bias added in the GEMM epilogue. "
        "x: (N, IN), weight: (OUT, IN) -> (N, OUT), into out or a new array.");
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
  m.def("set_gemm_shared_b",
        [](int units_per_thread) {
          if (units_per_thread < 0) throw py::value_error("set_gemm_shared_b: units_per_thread must be >= 0");
          return set_gemm_shared_b(units_per_thread);
        },
        py::arg("units_per_thread"),
        "Tuning hook: units per thread when the threads of a tall GEMM share one packed B, or 0 to pack B per "
        "row block; returns the previous value. Not thread-safe.");
  m.def("set_gemm_own_b", [](bool on) { return set_gemm_own_b(on); }, py::arg("on"),
        "Test hook: the threads of a tall GEMM that share a packed B pack every B block privately instead (the "
        "fallback when a peer holds the block); returns the previous value. Not thread-safe.");
  m.def("set_gemm_depth_split", [](bool on) { return set_gemm_depth_split(on); }, py::arg("on"),
        "Tuning hook: run small-C, long-depth GEMMs as fixed depth chunks summed in order (the default), or by "
        "the row/column plans; returns the previous value. Not thread-safe.");
  m.def("set_gemm_short_rows_a", [](bool on) { return set_gemm_short_rows_a(on); }, py::arg("on"),
        "Tuning hook: read A in place when its rows are short (up to 512 bytes) and N fits one column block (the "
        "default), or only for narrow C; returns the previous value. Not thread-safe.");
  m.def("set_gemm_small", [](bool on) { return set_gemm_small(on); }, py::arg("on"),
        "Tuning hook: run small one-thread GEMMs in one unpacked pass (the default; small_avx512 in csrc/cpu/gemm_avx512.cpp), or "
        "by the packed path; returns the previous value. Not thread-safe.");
}

}  // namespace pe
