// Bindings of the attention kernel family (csrc/cpu/attention*.cpp).
//
//   attention_forward(q, k, v, out, lse, mask, causal_offset, scale, block_q=0, block_k=0)
//   attention_backward(q, k, v, out, lse, dout, dq, dk, dv, mask, causal_offset, scale,
//                      block_q=0, block_k=0, strategy="auto")
//
// Outputs are allocated by the caller (pyengine/backend/cpu/attention.py). mask is
// None or an array of shape (BH, Tq, Tk), bool or q's dtype, with any strides (a
// np.broadcast_to view is read in place). causal_offset is None or an int.
// block_q / block_k (0 = the kernel's default) and strategy ("auto", "per_bh",
// "split") exist for tests and tuning.
#include <climits>
#include <string>

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
  index_t BH, Tq, Tk, D, Dv;
};

Shapes check_qkv(const py::array& q, const py::array& k, const py::array& v) {
  float_kind(q, kOp, "q");
  check_same_dtype(q, k, kOp, "q", "k");
  check_same_dtype(q, v, kOp, "q", "v");
  check_ndim(q, 3, kOp, "q (BH, Tq, D)");
  check_ndim(k, 3, kOp, "k (BH, Tk, D)");
  check_ndim(v, 3, kOp, "v (BH, Tk, Dv)");
  const std::string shapes = " (q " + shape_str(q) + ", k " + shape_str(k) + ", v " + shape_str(v) + ")";
  if (q.shape(0) != k.shape(0) || q.shape(0) != v.shape(0))
    fail("q, k and v must have the same batch*heads size BH" + shapes);
  if (q.shape(2) != k.shape(2)) fail("q and k must have the same head size D" + shapes);
  if (k.shape(1) != v.shape(1)) fail("k and v must have the same number of keys Tk" + shapes);
  check_contiguous(q, kOp, "q");
  check_contiguous(k, kOp, "k");
  check_contiguous(v, kOp, "v");
  return {q.shape(0), q.shape(1), k.shape(1), q.shape(2), v.shape(2)};
}

void check_array(const py::array& a, const py::array& q, const std::vector<py::ssize_t>& shape, const char* name,
                 bool output) {
  check_same_dtype(q, a, kOp, "q", name);
  check_shape(a, shape, kOp, name);
  check_contiguous(a, kOp, name);
  if (output) check_writeable(a, kOp, name);
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
  check_shape(m, {s.BH, s.Tq, s.Tk}, kOp, "mask (broadcast to (BH, Tq, Tk))");
  const py::ssize_t item = m.itemsize();
  index_t st[3];
  for (int d = 0; d < 3; ++d) {
    if (m.strides(d) % item != 0)
      fail("mask strides must be multiples of its item size, got strides (" + std::to_string(m.strides(0)) + ", " +
           std::to_string(m.strides(1)) + ", " + std::to_string(m.strides(2)) + ")");
    // A length-1 axis is never stepped along: any stride will do.
    st[d] = m.shape(d) <= 1 ? 0 : m.strides(d) / item;
  }
  mk.data = m.data();
  mk.sb = st[0];
  mk.sq = st[1];
  mk.sk = st[2];
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
  a.BH = s.BH, a.Tq = s.Tq, a.Tk = s.Tk, a.D = s.D, a.Dv = s.Dv;
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
  a.BH = s.BH, a.Tq = s.Tq, a.Tk = s.Tk, a.D = s.D, a.Dv = s.Dv;
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
        check_array(out, q, {s.BH, s.Tq, s.Dv}, "out (BH, Tq, Dv)", true);
        check_array(lse, q, {s.BH, s.Tq}, "lse (BH, Tq)", true);
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
      "Flash-style attention forward: fills out (BH, Tq, Dv) and lse (BH, Tq).");

  m.def(
      "attention_backward",
      [](py::array q, py::array k, py::array v, py::array out, py::array lse, py::array dout, py::array dq,
         py::array dk, py::array dv, py::object mask, py::object causal_offset, double scale, index_t block_q,
         index_t block_k, const std::string& strategy) {
        const Shapes s = check_qkv(q, k, v);
        check_array(out, q, {s.BH, s.Tq, s.Dv}, "out (BH, Tq, Dv)", false);
        check_array(lse, q, {s.BH, s.Tq}, "lse (BH, Tq)", false);
        check_array(dout, q, {s.BH, s.Tq, s.Dv}, "dout (BH, Tq, Dv)", false);
        check_array(dq, q, {s.BH, s.Tq, s.D}, "dq (BH, Tq, D)", true);
        check_array(dk, q, {s.BH, s.Tk, s.D}, "dk (BH, Tk, D)", true);
        check_array(dv, q, {s.BH, s.Tk, s.Dv}, "dv (BH, Tk, Dv)", true);
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
