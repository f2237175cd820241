// Helpers for the binding layer (csrc/bind_*.cpp). The binding is where memory
// safety is enforced: every array handed to a kernel is checked here for dtype,
// rank, shape, contiguity and writability, and any failure becomes a Python
// exception that names the op and the shapes. Kernels then trust their inputs.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "common.h"

namespace py = pybind11;

namespace pe {

// "(2, 3)" / "(5,)": an array's shape, or its byte strides, as Python prints tuples.
template <class Dim>
inline std::string tuple_str(const py::array& a, Dim dim) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << dim(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}
inline std::string shape_str(const py::array& a) {
  return tuple_str(a, [&](py::ssize_t i) { return a.shape(i); });
}
inline std::string strides_str(const py::array& a) {
  return tuple_str(a, [&](py::ssize_t i) { return a.strides(i); });
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// dtype equality by value (PyArray_EquivTypes), not object identity: unpickled or deep-copied
// arrays carry their own, equal, dtype objects. A byte-swapped dtype is not equal.
inline bool dtype_eq(const py::dtype& a, const py::dtype& b) {
  return a.is(b) || py::detail::npy_api::get().PyArray_EquivTypes_(a.ptr(), b.ptr());
}

// The kernel dtype of a floating array: 'f' (float32) or 'd' (float64).
inline char float_kind(const py::array& a, const char* op, const char* name) {
  if (dtype_eq(a.dtype(), py::dtype::of<float>())) return 'f';
  if (dtype_eq(a.dtype(), py::dtype::of<double>())) return 'd';
  throw py::type_error(std::string(op) + ": " + name + " must be float32 or float64, got " + dtype_str(a));
}

template <class T>
inline void check_dtype(const py::array& a, const char* op, const char* name) {
  if (!dtype_eq(a.dtype(), py::dtype::of<T>()))
    throw py::type_error(std::string(op) + ": " + name + " must have dtype " +
                         py::str(py::dtype::of<T>()).cast<std::string>() + ", got " + dtype_str(a));
}

inline void check_same_dtype(const py::array& a, const py::array& b, const char* op, const char* na,
                             const char* nb) {
  if (!dtype_eq(a.dtype(), b.dtype()))
    throw py::type_error(std::string(op) + ": " + na + " (" + dtype_str(a) + ") and " + nb + " (" +
                         dtype_str(b) + ") must have the same dtype");
}

inline void check_same_shape(const py::array& a, const py::array& b, const char* op, const char* na,
                             const char* nb) {
  bool ok = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; ok && i < a.ndim(); ++i) ok = a.shape(i) == b.shape(i);
  if (!ok)
    throw py::value_error(std::string(op) + ": " + na + " " + shape_str(a) + " and " + nb + " " + shape_str(b) +
                          " must have the same shape");
}

inline void check_ndim(const py::array& a, int ndim, const char* op, const char* name) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(op) + ": " + name + " must be " + std::to_string(ndim) +
                          "-D, got shape " + shape_str(a));
}

inline void check_contiguous(const py::array& a, const char* op, const char* name) {
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(op) + ": " + name + " must be C-contiguous (shape " + shape_str(a) +
                          ")");
}

// Strides a kernel can follow in place: non-negative multiples of the item size,
// the last axis contiguous (length-1 axes, and empty arrays, are never stepped
// along). Raises ValueError naming the op, the array, its shape and byte strides.
inline void check_followable(const py::array& a, const char* op, const char* name) {
  if (a.size() == 0) return;
  const py::ssize_t item = a.itemsize();
  const int r = static_cast<int>(a.ndim());
  for (int d = 0; d < r; ++d) {
    if (a.shape(d) <= 1) continue;
    const py::ssize_t st = a.strides(d);
    if (st < 0 || st % item != 0 || (d == r - 1 && st != item))
      throw py::value_error(std::string(op) + ": " + name +
                            " must have non-negative strides and a contiguous last axis, got shape " +
                            shape_str(a) + " with byte strides " + strides_str(a));
  }
}

inline void check_writeable(const py::array& a, const char* op, const char* name) {
  if (!a.writeable()) throw py::value_error(std::string(op) + ": " + name + " must be writeable");
}

// Checks a.shape == expected (use -1 in `expected` for "any").
inline void check_shape(const py::array& a, const std::vector<py::ssize_t>& expected, const char* op,
                        const char* name) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(expected.size());
  for (size_t i = 0; ok && i < expected.size(); ++i) ok = expected[i] < 0 || a.shape(i) == expected[i];
  if (!ok) {
    std::ostringstream s;
    s << op << ": " << name << " has shape " << shape_str(a) << ", expected (";
    for (size_t i = 0; i < expected.size(); ++i) {
      s << (i ? ", " : "");
      if (expected[i] < 0) s << "*"; else s << expected[i];
    }
    s << (expected.size() == 1 ? ",)" : ")");
    throw py::value_error(s.str());
  }
}

// Contiguous, correct dtype: the usual check for an input of a row-wise kernel.
template <class T>
inline const T* in_ptr(const py::array& a, const char* op, const char* name) {
  check_dtype<T>(a, op, name);
  check_contiguous(a, op, name);
  return static_cast<const T*>(a.data());
}

// Same, plus writeable: an output the caller allocated.
template <class T>
inline T* out_ptr(py::array& a, const char* op, const char* name) {
  check_dtype<T>(a, op, name);
  check_contiguous(a, op, name);
  check_writeable(a, op, name);
  return static_cast<T*>(a.mutable_data());
}

// A private copy of a 1-D int64 index array, taken while the GIL is held. Kernels address memory with
// these values after the GIL is released; reading the caller's array then would let another Python
// thread (sharing it through from_numpy) change an index between its range check and its use: an
// out-of-bounds read or write. Validate the copy, pass the copy. (N int64 values: nothing beside the
// kernels' own work.)
inline std::vector<std::int64_t> copy_indices(const py::array& a, py::ssize_t n, const char* op, const char* name) {
  check_dtype<std::int64_t>(a, op, name);
  check_shape(a, {n}, op, name);
  check_contiguous(a, op, name);
  const auto* p = static_cast<const std::int64_t*>(a.data());
  return std::vector<std::int64_t>(p, p + n);
}

// One array of a call whose every shape is known: its exact shape, the call's float dtype,
// C-contiguous, and writeable when it is an output.
struct ArrayArg {
  const char* name;
  const py::array* a;
  std::vector<py::ssize_t> shape;
  bool output;
};

// Checks every argument; the first one's dtype (float32 or float64) is the call's, which is returned
// ('f' or 'd'). A wrong shape raises ValueError naming the op, the array, its expected shape and the
// shapes of all arguments.
inline char check_arrays(const char* op, const std::vector<ArrayArg>& args) {
  const ArrayArg& first = args.front();
  const char kind = float_kind(*first.a, op, first.name);
  for (const auto& x : args) {
    check_same_dtype(*first.a, *x.a, op, first.name, x.name);
    bool ok = x.a->ndim() == static_cast<py::ssize_t>(x.shape.size());
    for (size_t d = 0; ok && d < x.shape.size(); ++d) ok = x.a->shape(static_cast<py::ssize_t>(d)) == x.shape[d];
    if (!ok) {
      std::ostringstream s;
      s << op << ": " << x.name << " has the wrong shape, expected (";
      for (size_t d = 0; d < x.shape.size(); ++d) s << (d ? ", " : "") << x.shape[d];
      s << (x.shape.size() == 1 ? ",)" : ")") << "; got";
      for (size_t i = 0; i < args.size(); ++i) s << (i ? ", " : " ") << args[i].name << " " << shape_str(*args[i].a);
      throw py::value_error(s.str());
    }
    check_contiguous(*x.a, op, x.name);
    if (x.output) check_writeable(*x.a, op, x.name);
  }
  return kind;
}

}  // namespace pe
