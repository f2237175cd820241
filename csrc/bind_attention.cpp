// Bindings of the attention kernel family (csrc/cpu/attention*.cpp).
//
//   attention_forward(q, k, v, out, lse, mask, causal_offset, scale, block_q=0, block_k=0)
//   attention_backward(q, k, v, out, lse, dout, dq, dk, dv, mask, causal_offset, scale,
//                      block_q=0, block_k=0, strategy="auto")
//
// Outputs are allocated by the caller (pyengine/backend/cpu/attention.py).
// q, k, v, out, dout, dq, dk, dv are all rank 3, (BH, T, D), or all rank 4,
// (B, H, T, D); each may be a strided view (non-negative strides, the last axis
// contiguous), read or written in place. Outputs must also be writeable and not
// overlap themselves. lse is C-contiguous, shaped as q without its last axis.
// mask is None or an array of shape (BH, Tq, Tk) / (B, H, Tq, Tk), bool or q's
// dtype, with any strides (a np.broadcast_to view is read in place).
// causal_offset is None or an int.
// block_q / block_k (0 = the kernel's default) and strategy ("auto", "per_bh",
// "split") exist for tests and tuning.
#include <algorithm>
#include <climits>
#include <string>
#include <utility>
#include <vector>

#include "binding_utils.h"
#include "bindings.h"
#include "cpu/attention.h"

namespace pe {
namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

[[noreturn]] void fail(const std::string& what) { throw py::value_error(std::string(kOp) + ": " + what); }

// Checks q, k, v (and out/lse/dout/dq/dk/dv when given) and fills the sizes.
// Dtypes first (TypeError), then ranks and shapes (ValueError), then layout.
struct Shapes {
  int rank;       // 3: (BH, T, D) arrays; 4: (B, H, T, D)
  index_t B, H;   // rank 3: B = BH, H = 1
  index_t BH, Tq, Tk, D, Dv;
  // The expected shape of a (batch, heads, T, n) tensor at this rank.
  std::vector<py::ssize_t> of(index_t T, index_t n) const {
    if (rank == 3) return {BH, T, n};
    return {B, H, T, n};
  }
};

// Where the rows of a checked rank-3/4 array live (attn::Rows, in elements).
attn::Rows rows_of(const py::array& a) {
  const py::ssize_t item = a.itemsize();
  const int r = static_cast<int>(a.ndim());
  attn::Rows rows;
  rows.sb = a.shape(0) > 1 ? a.strides(0) / item : 0;
  rows.sh = r == 4 && a.shape(1) > 1 ? a.strides(1) / item : 0;
  rows.st = a.shape(r - 2) > 1 ? a.strides(r - 2) / item : 0;
  return rows;
}

// No two elements of `a` share memory: ordered by stride, each axis steps past
// everything the smaller-strided axes span (a sufficient condition, exact for
// the layouts NumPy views produce).
void check_no_self_overlap(const py::array& a, const char* name) {
  if (a.size() == 0) return;
  std::vector<std::pair<py::ssize_t, py::ssize_t>> axes;  // (byte stride, extent)
  for (int d = 0; d < a.ndim(); ++d)
    if (a.shape(d) > 1) axes.emplace_back(a.strides(d), a.shape(d));
  std::sort(axes.begin(), axes.end());
  py::ssize_t span = a.itemsize();  // bytes covered by the axes so far
  for (const auto& [stride, n] : axes) {
    if (stride < span)
      fail(std::string(name) + " is an output and must not overlap itself, got shape " + shape_str(a) +
           " with byte strides " + strides_str(a));
    span += stride * (n - 1);
  }
}

Shapes check_qkv(const py::array& q, const py::array& k, const py::array& v) {
  float_kind(q, kOp, "q");
  check_same_dtype(q, k, kOp, "q", "k");
  check_same_dtype(q, v, kOp, "q", "v");
  const std::string shapes = " (q " + shape_str(q) + ", k " + shape_str(k) + ", v " + shape_str(v) + ")";
  const int r = static_cast<int>(q.ndim());
  if ((r != 3 && r != 4) || k.ndim() != r || v.ndim() != r)
    fail("q, k and v must all be 3-D (BH, T, D) or all 4-D (B, H, T, D)" + shapes);
  for (int d = 0; d < r - 2; ++d)
    if (q.shape(d) != k.shape(d) || q.shape(d) != v.shape(d))
      fail(std::string("q, k and v must have the same ") + (r == 3 ? "batch*heads size BH" : "batch and heads") +
           shapes);
  if (q.shape(r - 1) != k.shape(r - 1)) fail("q and k must have the same head size D" + shapes);
  if (k.shape(r - 2) != v.shape(r - 2)) fail("k and v must have the same number of keys Tk" + shapes);
  check_followable(q, kOp, "q");
  check_followable(k, kOp, "k");
  check_followable(v, kOp, "v");
  Shapes s;
  s.rank = r;
  s.B = q.shape(0);
  s.H = r == 4 ? q.shape(1) : 1;
  s.BH = s.B * s.H;
  s.Tq = q.shape(r - 2);
  s.Tk = k.shape(r - 2);
  s.D = q.shape(r - 1);
  s.Dv = v.shape(r - 1);
  return s;
}

// out / dout / dq / dk / dv: q's dtype and rank, the given shape, a followable layout.
void check_rows_array(const py::array& a, const py::array& q, const std::vector<py::ssize_t>& shape,
                      const char* name, bool output) {
  check_same_dtype(q, a, kOp, "q", name);
  check_shape(a, shape, kOp, name);
  check_followable(a, kOp, name);
  if (output) {
    check_writeable(a, kOp, name);
    check_no_self_overlap(a, name);
  }
}

// lse: C-contiguous, q's shape without its last axis.
void check_lse(const py::array& lse, const py::array& q, const Shapes& s, bool output) {
  check_same_dtype(q, lse, kOp, "q", "lse");
  std::vector<py::ssize_t> shape = s.of(s.Tq, 0);
  shape.pop_back();
  check_shape(lse, shape, kOp, s.rank == 3 ? "lse (BH, Tq)" : "lse (B, H, Tq)");
  check_contiguous(lse, kOp, "lse");
  if (output) check_writeable(lse, kOp, "lse");
}

template <class T>
attn::AttnMask make_mask(const py::object& obj, const py::array& q, const Shapes& s) {
  attn::AttnMask mk;
  if (obj.is_none()) return mk;
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(kOp) + ": mask must be None or a NumPy array, got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  py::array m = py::reinterpret_borrow<py::array>(obj);
  if (pe::dtype_eq(m.dtype(), py::dtype::of<bool>())) {
    mk.kind = attn::AttnMask::boolean;
  } else if (pe::dtype_eq(m.dtype(), q.dtype())) {
    mk.kind = attn::AttnMask::additive;
  } else {
    throw py::type_error(std::string(kOp) + ": mask must be bool or have q's dtype (" + dtype_str(q) + "), got " +
                         dtype_str(m));
  }
  check_shape(m, s.of(s.Tq, s.Tk), kOp,
              s.rank == 3 ? "mask (broadcast to (BH, Tq, Tk))" : "mask (broadcast to (B, H, Tq, Tk))");
  const py::ssize_t item = m.itemsize();
  index_t st[4] = {0, 0, 0, 0};  // b, h, q, k
  const int r = s.rank;
  for (int d = 0; d < r; ++d) {
    if (m.strides(d) % item != 0)
      fail("mask strides must be multiples of its item size, got byte strides " + strides_str(m));
    // A length-1 axis is never stepped along: any stride will do.
    st[r == 3 && d > 0 ? d + 1 : d] = m.shape(d) <= 1 ? 0 : m.strides(d) / item;
  }
  mk.data = m.data();
  mk.sb = st[0];
  mk.sh = st[1];
  mk.sq = st[2];
  mk.sk = st[3];
  return mk;
}

// None -> not causal; an int -> causal with that offset, clamped to what can
// matter ([-(Tq+1), Tk]: every value beyond sees no key / every key).
void parse_causal(const py::object& obj, const Shapes& s, bool& causal, index_t& offset) {
  causal = !obj.is_none();
  offset = 0;
  if (!causal) return;
  if (!PyLong_Check(obj.ptr()) && !PyIndex_Check(obj.ptr()))
    throw py::type_error(std::string(kOp) + ": causal_offset must be None or an int, got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!idx) throw py::error_already_set();
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow > 0) v = LLONG_MAX;
  if (overflow < 0) v = LLONG_MIN;
  offset = std::min<index_t>(s.Tk, std::max<index_t>(-(s.Tq + 1), v));
}

attn::BwdStrategy parse_strategy(const std::string& name) {
  if (name == "auto") return attn::BwdStrategy::automatic;
  if (name == "per_bh") return attn::BwdStrategy::per_bh;
  if (name == "split") return attn::BwdStrategy::split;
  fail("strategy must be 'auto', 'per_bh' or 'split', got '" + name + "'");
}

template <class T>
void run_forward(const py::array& q, const py::array& k, const py::array& v, py::array& out, py::array& lse,
                 const py::object& mask, const Shapes& s, bool causal, index_t offset, double scale, index_t bq,
                 index_t bk) {
  attn::AttnArgs<T> a;
  a.q = static_cast<const T*>(q.data());
  a.k = static_cast<const T*>(k.data());
  a.v = static_cast<const T*>(v.data());
  a.out = static_cast<T*>(out.mutable_data());
  a.lse = static_cast<T*>(lse.mutable_data());
  a.BH = s.BH, a.H = s.H, a.Tq = s.Tq, a.Tk = s.Tk, a.D = s.D, a.Dv = s.Dv;
  a.q_rows = rows_of(q), a.k_rows = rows_of(k), a.v_rows = rows_of(v), a.out_rows = rows_of(out);
  a.mask = make_mask<T>(mask, q, s);
  a.causal = causal;
  a.causal_offset = offset;
  a.scale = static_cast<T>(scale);
  a.br = bq;
  a.bc = bk;
  py::gil_scoped_release release;
  attn::attention_forward<T>(a);
}

template <class T>
void run_backward(const py::array& q, const py::array& k, const py::array& v, const py::array& out,
                  const py::array& lse, const py::array& dout, py::array& dq, py::array& dk, py::array& dv,
                  const py::object& mask, const Shapes& s, bool causal, index_t offset, double scale, index_t bq,
                  index_t bk, attn::BwdStrategy strategy) {
  attn::AttnArgs<T> a;
  a.q = static_cast<const T*>(q.data());
  a.k = static_cast<const T*>(k.data());
  a.v = static_cast<const T*>(v.data());
  a.out = const_cast<T*>(static_cast<const T*>(out.data()));  // read only in the backward pass
  a.lse = const_cast<T*>(static_cast<const T*>(lse.data()));
  a.dout = static_cast<const T*>(dout.data());
  a.dq = static_cast<T*>(dq.mutable_data());
  a.dk = static_cast<T*>(dk.mutable_data());
  a.dv = static_cast<T*>(dv.mutable_data());
  a.BH = s.BH, a.H = s.H, a.Tq = s.Tq, a.Tk = s.Tk, a.D = s.D, a.Dv = s.Dv;
  a.q_rows = rows_of(q), a.k_rows = rows_of(k), a.v_rows = rows_of(v), a.out_rows = rows_of(out);
  a.dout_rows = rows_of(dout), a.dq_rows = rows_of(dq), a.dk_rows = rows_of(dk), a.dv_rows = rows_of(dv);
  a.mask = make_mask<T>(mask, q, s);
  a.causal = causal;
  a.causal_offset = offset;
  a.scale = static_cast<T>(scale);
  a.br = bq;
  a.bc = bk;
  py::gil_scoped_release release;
  attn::attention_backward<T>(a, strategy);
}

void check_blocks(index_t bq, index_t bk) {
  if (bq < 0 || bk < 0)
    fail("block_q and block_k must be >= 0 (0 = default), got " + std::to_string(bq) + ", " + std::to_string(bk));
}

}  // namespace

void register_attention(py::module_& m) {
  m.def(
      "attention_forward",
      [](py::array q, py::array k, py::array v, py::array out, py::array lse, py::object mask,
         py::object causal_offset, double scale, index_t block_q, index_t block_k) {
        const Shapes s = check_qkv(q, k, v);
        check_rows_array(out, q, s.of(s.Tq, s.Dv), "out", true);
        check_lse(lse, q, s, true);
        check_blocks(block_q, block_k);
        bool causal;
        index_t offset;
        parse_causal(causal_offset, s, causal, offset);
        if (float_kind(q, kOp, "q") == 'f')
          run_forward<float>(q, k, v, out, lse, mask, s, causal, offset, scale, block_q, block_k);
        else
          run_forward<double>(q, k, v, out, lse, mask, s, causal, offset, scale, block_q, block_k);
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("mask"),
      py::arg("causal_offset"), py::arg("scale"), py::arg("block_q") = 0, py::arg("block_k") = 0,
      "Flash-style attention forward: fills out (BH, Tq, Dv) and lse (BH, Tq) (or the (B, H, ...) forms).");

  m.def(
      "attention_backward",
      [](py::array q, py::array k, py::array v, py::array out, py::array lse, py::array dout, py::array dq,
         py::array dk, py::array dv, py::object mask, py::object causal_offset, double scale, index_t block_q,
         index_t block_k, const std::string& strategy) {
        const Shapes s = check_qkv(q, k, v);
        check_rows_array(out, q, s.of(s.Tq, s.Dv), "out", false);
        check_lse(lse, q, s, false);
        check_rows_array(dout, q, s.of(s.Tq, s.Dv), "dout", false);
        check_rows_array(dq, q, s.of(s.Tq, s.D), "dq", true);
        check_rows_array(dk, q, s.of(s.Tk, s.D), "dk", true);
        check_rows_array(dv, q, s.of(s.Tk, s.Dv), "dv", true);
        check_blocks(block_q, block_k);
        const attn::BwdStrategy st = parse_strategy(strategy);
        bool causal;
        index_t offset;
        parse_causal(causal_offset, s, causal, offset);
        if (float_kind(q, kOp, "q") == 'f')
          run_backward<float>(q, k, v, out, lse, dout, dq, dk, dv, mask, s, causal, offset, scale, block_q, block_k,
                              st);
        else
          run_backward<double>(q, k, v, out, lse, dout, dq, dk, dv, mask, s, causal, offset, scale, block_q,
                               block_k, st);
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("dout"), py::arg("dq"),
      py::arg("dk"), py::arg("dv"), py::arg("mask"), py::arg("causal_offset"), py::arg("scale"),
      py::arg("block_q") = 0, py::arg("block_k") = 0, py::arg("strategy") = "auto",
      "Flash-style attention backward: fills dq, dk, dv from q, k, v, out, lse, dout.");
}

}  // namespace pe
