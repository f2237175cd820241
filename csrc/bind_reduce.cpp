// Bindings of the reduce kernel family (csrc/cpu/reduce.cpp).
//
//   sum_rows(x, out): out[j] = sum_n x[n, j]
//   sum_dim(x, out, scale): out[n, i] = scale * sum_r x[n, r, i]  (x: (N, R, I) C-contiguous, out: (N, I))
//   add_into(dst, src): dst += src (gradient accumulation)
//   max_dim(x, vals, idx, is_max): vals[n, i] = max (min) over r of x[n, r, i], idx[n, i] its first r (a NaN
//       wins); x: (N, R, I) C-contiguous, R >= 1, vals: (N, I) x's dtype, idx: (N, I) int64
//   max_dim_backward(g, idx, dx): dx[n, r, i] = g[n, i] at r = idx[n, i], else 0; every idx checked in [0, R)
//   copy_into(dst, src): dst[...] = src, both of any layout with non-negative strides, the same shape and
//       dtype (any of 1, 2, 4 or 8 bytes), not overlapping (the wrapper copies other cases with NumPy)
//
// x: (N, C) float32/float64 with a contiguous last axis and a row stride of at
// least one row (a row slice of a wider array is read in place); out: (C,), x's dtype,
// C-contiguous, writeable, allocated by the caller (pyengine/backend/cpu/reduce.py).
// The GIL is released around the kernel.
#include <cstdint>
#include <utility>
#include <vector>

#include "binding_utils.h"
#include "bindings.h"
#include "cpu/reduce.h"

namespace pe {
namespace {

constexpr const char* kSumRows = "sum_rows";

template <class T>
void run_sum_rows(const py::array& x, py::array& out) {
  const index_t N = x.shape(0), C = x.shape(1);
  const index_t ldx = N > 1 ? static_cast<index_t>(x.strides(0) / x.itemsize()) : C;
  const T* px = static_cast<const T*>(x.data());
  T* po = static_cast<T*>(out.mutable_data());
  py::gil_scoped_release release;
  cpu::sum_rows<T>(px, N, C, ldx, po);
}

// dst = src: dims of one element dropped, dims that step as one in both arrays merged, then the kernel.
template <class T>
void run_copy(py::array& dst, const py::array& src) {
  const py::ssize_t isz = src.itemsize();
  index_t shape[cpu::kCopyMaxDims], ds[cpu::kCopyMaxDims], ss[cpu::kCopyMaxDims];
  int nd = 0;
  for (py::ssize_t d = 0; d < src.ndim(); ++d) {
    const index_t n = src.shape(d);
    if (n == 1) continue;
    const index_t a = dst.strides(d) / isz, b = src.strides(d) / isz;
    if (nd > 0 && ds[nd - 1] == a * n && ss[nd - 1] == b * n) {  // the previous dim steps over this one
      shape[nd - 1] *= n;
      ds[nd - 1] = a, ss[nd - 1] = b;
      continue;
    }
    shape[nd] = n, ds[nd] = a, ss[nd] = b;
    ++nd;
  }
  T* pd = static_cast<T*>(dst.mutable_data());
  const T* ps = static_cast<const T*>(src.data());
  py::gil_scoped_release release;
  cpu::copy_into<T>(pd, ps, nd, shape, ds, ss);
}

}  // namespace

void register_reduce(py::module_& m) {
  m.def(
      "copy_into",
      [](py::array dst, py::array src) {
        constexpr const char* op = "copy_into";
        if (!dtype_eq(dst.dtype(), src.dtype()))
          throw py::type_error(std::string(op) + ": dst (" + dtype_str(dst) + ") and src (" + dtype_str(src) +
                               ") must have the same dtype");
        if (dst.ndim() != src.ndim() || dst.ndim() > cpu::kCopyMaxDims)
          throw py::value_error(std::string(op) + ": dst " + shape_str(dst) + " and src " + shape_str(src) +
                                " must have the same shape (at most 32 dims)");
        for (py::ssize_t d = 0; d < dst.ndim(); ++d)
          if (dst.shape(d) != src.shape(d))
            throw py::value_error(std::string(op) + ": dst " + shape_str(dst) + " and src " + shape_str(src) +
                                  " must have the same shape");
        check_writeable(dst, op, "dst");
        if (src.dtype().kind() == 'O')
          throw py::type_error(std::string(op) + ": object arrays are not supported (references are counted)");
        const py::ssize_t isz = src.itemsize();
        if (isz != 1 && isz != 2 && isz != 4 && isz != 8)
          throw py::type_error(std::string(op) + ": items of " + std::to_string(isz) + " bytes are not supported");
        if (src.size() == 0) return;
        for (const py::array* a : {&dst, &src})
          for (py::ssize_t d = 0; d < a->ndim(); ++d)
            if (a->shape(d) > 1 && (a->strides(d) < 0 || a->strides(d) % isz != 0))
              throw py::value_error(std::string(op) + ": strides must be non-negative multiples of the item size, "
                                    "got " + strides_str(*a));
        // byte ranges spanned: dst must not overlap src (rows are copied in any order)
        auto span = [&](const py::array& a, const char*& lo, const char*& hi) {
          lo = static_cast<const char*>(a.data());
          hi = lo + isz;
          for (py::ssize_t d = 0; d < a.ndim(); ++d) hi += (a.shape(d) - 1) * a.strides(d);
        };
        const char *dl, *dh, *sl, *sh;
        span(dst, dl, dh);
        span(src, sl, sh);
        if (dl < sh && sl < dh)
          throw py::value_error(std::string(op) + ": dst and src overlap");
        switch (isz) {
          case 1: run_copy<uint8_t>(dst, src); break;
          case 2: run_copy<uint16_t>(dst, src); break;
          case 4: run_copy<uint32_t>(dst, src); break;
          default: run_copy<uint64_t>(dst, src); break;
        }
      },
      py::arg("dst"), py::arg("src"),
      "dst[...] = src: the same shape and dtype, any non-negative strides, not overlapping.");
  m.def(
      "sum_rows",
      [](py::array x, py::array out) {
        const char kind = float_kind(x, kSumRows, "x");
        check_ndim(x, 2, kSumRows, "x (N, C)");
        check_same_dtype(x, out, kSumRows, "x", "out");
        check_shape(out, {x.shape(1)}, kSumRows, "out (C,)");
        check_contiguous(out, kSumRows, "out");
        check_writeable(out, kSumRows, "out");
        check_followable(x, kSumRows, "x");
        if (x.size() > 0 && x.shape(0) > 1 && x.strides(0) < x.shape(1) * x.itemsize())
          throw py::value_error(std::string(kSumRows) + ": x must have a row stride of at least one row, got shape " +
                                shape_str(x) + " with byte strides " + strides_str(x));
        if (kind == 'f') run_sum_rows<float>(x, out);
        else run_sum_rows<double>(x, out);
      },
      py::arg("x"), py::arg("out"), "out[j] = sum over rows n of x[n, j] (x: (N, C), out: (C,)).");
  m.def(
      "sum_dim",
      [](py::array x, py::array out, double scale) {
        constexpr const char* op = "sum_dim";
        const char kind = float_kind(x, op, "x");
        check_ndim(x, 3, op, "x (N, R, I)");
        check_contiguous(x, op, "x");
        check_same_dtype(x, out, op, "x", "out");
        check_shape(out, {x.shape(0), x.shape(2)}, op, "out (N, I)");
        check_contiguous(out, op, "out");
        check_writeable(out, op, "out");
        const index_t N = x.shape(0), R = x.shape(1), I = x.shape(2);
        if (kind == 'f') {
          const float* px = static_cast<const float*>(x.data());
          float* po = static_cast<float*>(out.mutable_data());
          py::gil_scoped_release release;
          cpu::sum_dim<float>(px, N, R, I, scale, po);
        } else {
          const double* px = static_cast<const double*>(x.data());
          double* po = static_cast<double*>(out.mutable_data());
          py::gil_scoped_release release;
          cpu::sum_dim<double>(px, N, R, I, scale, po);
        }
      },
      py::arg("x"), py::arg("out"), py::arg("scale"),
      "out[n, i] = scale * sum over r of x[n, r, i] (x: (N, R, I) C-contiguous, out: (N, I)), in double.");
  m.def(
      "max_dim",
      [](py::array x, py::array vals, py::array idx, bool is_max) {
        constexpr const char* op = "max_dim";
        const char kind = float_kind(x, op, "x");
        check_ndim(x, 3, op, "x (N, R, I)");
        check_contiguous(x, op, "x");
        if (x.shape(1) < 1)
          throw py::value_error(std::string(op) + ": cannot reduce over a zero-size dim, x " + shape_str(x));
        check_same_dtype(x, vals, op, "x", "vals");
        check_dtype<std::int64_t>(idx, op, "idx");
        for (const auto& [a, name] : {std::pair<py::array*, const char*>{&vals, "vals (N, I)"}, {&idx, "idx (N, I)"}}) {
          check_shape(*a, {x.shape(0), x.shape(2)}, op, name);
          check_contiguous(*a, op, name);
          check_writeable(*a, op, name);
        }
        const index_t N = x.shape(0), R = x.shape(1), I = x.shape(2);
        auto* pi = static_cast<std::int64_t*>(idx.mutable_data());
        if (kind == 'f') {
          const float* px = static_cast<const float*>(x.data());
          float* pv = static_cast<float*>(vals.mutable_data());
          py::gil_scoped_release release;
          cpu::max_dim<float>(px, N, R, I, is_max, pv, pi);
        } else {
          const double* px = static_cast<const double*>(x.data());
          double* pv = static_cast<double*>(vals.mutable_data());
          py::gil_scoped_release release;
          cpu::max_dim<double>(px, N, R, I, is_max, pv, pi);
        }
      },
      py::arg("x"), py::arg("vals"), py::arg("idx"), py::arg("is_max"),
      "vals, idx = the max (min) of x (N, R, I) over r and its first index (a NaN wins), (N, I) each.");
  m.def(
      "max_dim_backward",
      [](py::array g, py::array idx, py::array dx) {
        constexpr const char* op = "max_dim_backward";
        const char kind = float_kind(g, op, "g");
        check_ndim(dx, 3, op, "dx (N, R, I)");
        check_same_dtype(g, dx, op, "g", "dx");
        check_dtype<std::int64_t>(idx, op, "idx");
        check_shape(g, {dx.shape(0), dx.shape(2)}, op, "g (N, I)");
        check_shape(idx, {dx.shape(0), dx.shape(2)}, op, "idx (N, I)");
        for (const auto& [a, name] : {std::pair<py::array*, const char*>{&g, "g"}, {&idx, "idx"}, {&dx, "dx"}})
          check_contiguous(*a, op, name);
        check_writeable(dx, op, "dx");
        const index_t N = dx.shape(0), R = dx.shape(1), I = dx.shape(2);
        // every index in range before the kernel writes through it (idx is ours: a copy is taken)
        std::vector<std::int64_t> ids = copy_indices(idx.reshape({idx.size()}), idx.size(), op, "idx");
        for (const std::int64_t v : ids)
          if (v < 0 || v >= R)
            throw py::index_error(std::string(op) + ": index " + std::to_string(v) + " out of range for a dim of " +
                                  std::to_string(R));
        if (kind == 'f') {
          const float* pg = static_cast<const float*>(g.data());
          float* pd = static_cast<float*>(dx.mutable_data());
          py::gil_scoped_release release;
          cpu::max_dim_backward<float>(pg, ids.data(), N, R, I, pd);
        } else {
          const double* pg = static_cast<const double*>(g.data());
          double* pd = static_cast<double*>(dx.mutable_data());
          py::gil_scoped_release release;
          cpu::max_dim_backward<double>(pg, ids.data(), N, R, I, pd);
        }
      },
      py::arg("g"), py::arg("idx"), py::arg("dx"),
      "dx (N, R, I) = g (N, I) scattered to r = idx (N, I) along the middle axis, zeros elsewhere.");
  m.def(
      "add_into",
      [](py::array dst, py::array src) {
        constexpr const char* op = "add_into";
        const char kind = float_kind(dst, op, "dst");
        check_same_dtype(dst, src, op, "dst", "src");
        if (dst.size() != src.size())
          throw py::value_error(std::string(op) + ": dst " + shape_str(dst) + " and src " + shape_str(src) +
                                " must have the same number of elements");
        check_contiguous(dst, op, "dst");
        check_contiguous(src, op, "src");
        check_writeable(dst, op, "dst");
        const auto* d0 = static_cast<const char*>(dst.data());
        const auto* s0 = static_cast<const char*>(src.data());
        const py::ssize_t bytes = dst.nbytes();
        if (d0 != s0 && d0 < s0 + bytes && s0 < d0 + bytes)
          throw py::value_error(std::string(op) + ": dst and src overlap without being the same array");
        const index_t n = dst.size();
        if (kind == 'f') {
          float* d = static_cast<float*>(dst.mutable_data());
          const float* s = static_cast<const float*>(src.data());
          py::gil_scoped_release release;
          cpu::add_into<float>(d, s, n);
        } else {
          double* d = static_cast<double*>(dst.mutable_data());
          const double* s = static_cast<const double*>(src.data());
          py::gil_scoped_release release;
          cpu::add_into<double>(d, s, n);
        }
      },
      py::arg("dst"), py::arg("src"), "dst += src in place (same dtype and size, both C-contiguous).");
}

}  // namespace pe
