// Bindings of the rnn kernel family (csrc/cpu/rnn.cpp: the GRU and Elman RNN recurrences). Every size,
// dtype, stride and the batch sizes are checked here; the kernels then trust their inputs. Errors name
// the op and all shapes.
#include "bind_recurrence.h"
#include "binding_utils.h"
#include "bindings.h"
#include <pybind11/stl.h>

#include <string>

#include "cpu/rnn.h"

namespace pe {
namespace {

bool is_relu(const std::string& nonlinearity, const char* op) {
  if (nonlinearity == "tanh") return false;
  if (nonlinearity == "relu") return true;
  throw py::value_error(std::string(op) + ": nonlinearity must be 'tanh' or 'relu', got '" + nonlinearity + "'");
}

template <class T>
T* ptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}
template <class T>
const T* cptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}

}  // namespace

void register_rnn(py::module_& m) {
  m.def(
      "gru_sequence_forward",
      [](py::array G, py::array Q, py::array w_hh, py::array b_hn, py::array Hs, py::array batch_sizes) {
        const char* op = "gru_sequence_forward";
        const SequenceSizes s = sequence_sizes(op, 3, w_hh, G, Hs, true, batch_sizes);
        const index_t H = s.H, N = s.N, B = s.B;
        const char kind = check_arrays(op, {{"G", &G, {N, 3 * H}, true},
                                            {"Q", &Q, {N, H}, true},
                                            {"w_hh", &w_hh, {3 * H, H}, false},
                                            {"b_hn", &b_hn, {H}, false},
                                            {"Hs", &Hs, {B + N, H}, true}});
        auto run = [&](auto tag) {
          using T = decltype(tag);
          T *pg = ptr<T>(G), *pq = ptr<T>(Q), *ph = ptr<T>(Hs);
          const T *pw = cptr<T>(w_hh), *pb = cptr<T>(b_hn);
          py::gil_scoped_release nogil;
          gru_sequence_forward<T>(pg, pq, pw, pb, ph, s.batch_sizes.data(), s.T, B, H);
        };
        if (kind == 'f') run(float{});
        else run(double{});
      },
      py::arg("G"), py::arg("Q"), py::arg("w_hh"), py::arg("b_hn"), py::arg("Hs"), py::arg("batch_sizes"),
      "One GRU layer's recurrence over all packed steps, in place (see csrc/cpu/rnn.h).");
  m.def(
      "gru_sequence_backward",
      [](py::array G, py::array Q, py::array w_hh, py::array Hs, std::optional<py::array> dH, py::array dh,
         py::array dG, py::array dGh, py::array batch_sizes) {
        const char* op = "gru_sequence_backward";
        const SequenceSizes s = sequence_sizes(op, 3, w_hh, G, dh, false, batch_sizes);
        const index_t H = s.H, N = s.N, B = s.B;
        const char kind = check_arrays(op, {{"G", &G, {N, 3 * H}, false},
                                            {"Q", &Q, {N, H}, false},
                                            {"w_hh", &w_hh, {3 * H, H}, false},
                                            {"Hs", &Hs, {B + N, H}, false},
                                            {"dh", &dh, {B, H}, true},
                                            {"dG", &dG, {N, 3 * H}, true},
                                            {"dGh", &dGh, {N, 3 * H}, true}});
        auto run = [&](auto tag) {
          using T = decltype(tag);
          const T *pg = cptr<T>(G), *pq = cptr<T>(Q), *pw = cptr<T>(w_hh), *ph = cptr<T>(Hs);
          const T* pdH = output_grad<T>(op, dH, "G", G, N, H);
          T *pdh = ptr<T>(dh), *pdg = ptr<T>(dG), *pdgh = ptr<T>(dGh);
          py::gil_scoped_release nogil;
          gru_sequence_backward<T>(pg, pq, pw, ph, pdH, pdh, pdg, pdgh, s.batch_sizes.data(), s.T, B, H);
        };
        if (kind == 'f') run(float{});
        else run(double{});
      },
      py::arg("G"), py::arg("Q"), py::arg("w_hh"), py::arg("Hs"), py::arg("dH"), py::arg("dh"), py::arg("dG"),
      py::arg("dGh"), py::arg("batch_sizes"),
      "Backward of gru_sequence_forward, in place (see csrc/cpu/rnn.h); dH None: no output gradient.");
  m.def(
      "rnn_sequence_forward",
      [](py::array G, py::array w_hh, py::array Hs, py::array batch_sizes, const std::string& nonlinearity) {
        const char* op = "rnn_sequence_forward";
        const bool relu = is_relu(nonlinearity, op);
        const SequenceSizes s = sequence_sizes(op, 1, w_hh, G, Hs, true, batch_sizes);
        const index_t H = s.H, N = s.N, B = s.B;
        const char kind = check_arrays(op, {{"G", &G, {N, H}, true},
                                            {"w_hh", &w_hh, {H, H}, false},
                                            {"Hs", &Hs, {B + N, H}, true}});
        auto run = [&](auto tag) {
          using T = decltype(tag);
          T *pg = ptr<T>(G), *ph = ptr<T>(Hs);
          const T* pw = cptr<T>(w_hh);
          py::gil_scoped_release nogil;
          rnn_sequence_forward<T>(pg, pw, ph, relu, s.batch_sizes.data(), s.T, B, H);
        };
        if (kind == 'f') run(float{});
        else run(double{});
      },
      py::arg("G"), py::arg("w_hh"), py::arg("Hs"), py::arg("batch_sizes"), py::arg("nonlinearity") = "tanh",
      "One Elman RNN layer's recurrence over all packed steps, in place (see csrc/cpu/rnn.h).");
  m.def(
      "rnn_sequence_backward",
      [](py::array w_hh, py::array Hs, std::optional<py::array> dH, py::array dh, py::array dG,
         py::array batch_sizes, const std::string& nonlinearity) {
        const char* op = "rnn_sequence_backward";
        const bool relu = is_relu(nonlinearity, op);
        const SequenceSizes s = sequence_sizes(op, 1, w_hh, dG, dh, false, batch_sizes);
        const index_t H = s.H, N = s.N, B = s.B;
        const char kind = check_arrays(op, {{"w_hh", &w_hh, {H, H}, false},
                                            {"Hs", &Hs, {B + N, H}, false},
                                            {"dh", &dh, {B, H}, true},
                                            {"dG", &dG, {N, H}, true}});
        auto run = [&](auto tag) {
          using T = decltype(tag);
          const T *pw = cptr<T>(w_hh), *ph = cptr<T>(Hs);
          const T* pdH = output_grad<T>(op, dH, "w_hh", w_hh, N, H);
          T *pdh = ptr<T>(dh), *pdg = ptr<T>(dG);
          py::gil_scoped_release nogil;
          rnn_sequence_backward<T>(pw, ph, pdH, pdh, pdg, relu, s.batch_sizes.data(), s.T, B, H);
        };
        if (kind == 'f') run(float{});
        else run(double{});
      },
      py::arg("w_hh"), py::arg("Hs"), py::arg("dH"), py::arg("dh"), py::arg("dG"), py::arg("batch_sizes"),
      py::arg("nonlinearity") = "tanh",
      "Backward of rnn_sequence_forward, in place (see csrc/cpu/rnn.h); dH None: no output gradient.");
}

}  // namespace pe
