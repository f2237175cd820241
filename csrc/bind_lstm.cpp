// Bindings of the lstm kernel family (csrc/cpu/lstm*.cpp). Every size is checked
// here; the kernels then trust their inputs. Errors name the op and all shapes.
#include "bind_recurrence.h"
#include "binding_utils.h"
#include "bindings.h"
#include <pybind11/stl.h>
#include <string>
#include <vector>

#include "cpu/lstm.h"

namespace pe {
namespace {

// Raises ValueError naming the op and every argument's shape unless each array is
// 2-D with shape (B, 4H) for the gate arrays and (B, H) for the state arrays.
struct LstmShapes {
  index_t B = 0, H = 0;
};

LstmShapes check_lstm_shapes(const char* op, std::initializer_list<std::pair<const char*, const py::array*>> gate_args,
                             std::initializer_list<std::pair<const char*, const py::array*>> state_args) {
  auto fail = [&](const std::string& why) {
    std::string s = std::string(op) + ": " + why + "; expected ";
    bool first = true;
    for (auto& a : gate_args) s += (first ? "" : ", ") + std::string(a.first), first = false;
    s += " (B, 4H) and ";
    first = true;
    for (auto& a : state_args) s += (first ? "" : ", ") + std::string(a.first), first = false;
    s += " (B, H); got";
    first = true;
    for (auto* list : {&gate_args, &state_args})
      for (auto& a : *list) s += (first ? " " : ", ") + std::string(a.first) + " " + shape_str(*a.second), first = false;
    throw py::value_error(s);
  };
  const py::array& g0 = *gate_args.begin()->second;
  if (g0.ndim() != 2) fail(std::string(gate_args.begin()->first) + " must be 2-D");
  LstmShapes s;
  s.B = g0.shape(0);
  if (g0.shape(1) % 4 != 0) fail(std::string(gate_args.begin()->first) + " has a last dim not divisible by 4");
  s.H = g0.shape(1) / 4;
  for (auto& a : gate_args)
    if (a.second->ndim() != 2 || a.second->shape(0) != s.B || a.second->shape(1) != 4 * s.H)
      fail(std::string(a.first) + " does not match");
  for (auto& a : state_args)
    if (a.second->ndim() != 2 || a.second->shape(0) != s.B || a.second->shape(1) != s.H)
      fail(std::string(a.first) + " does not match");
  return s;
}

template <class T>
void forward_typed(py::array& gates, const py::array& c_prev, py::array& h, py::array& c, LstmShapes s) {
  const char* op = "lstm_cell_forward";
  T* pg = out_ptr<T>(gates, op, "gates");
  const T* pcp = in_ptr<T>(c_prev, op, "c_prev");
  T* ph = out_ptr<T>(h, op, "h");
  T* pc = out_ptr<T>(c, op, "c");
  py::gil_scoped_release nogil;
  lstm_cell_forward<T>(pg, pcp, ph, pc, s.B, s.H);
}

template <class T>
void backward_typed(const py::array& gates, const py::array& c_prev, const py::array& c, const py::array& dh,
                    py::array& dc, py::array& dgates, LstmShapes s) {
  const char* op = "lstm_cell_backward";
  const T* pg = in_ptr<T>(gates, op, "gates");
  const T* pcp = in_ptr<T>(c_prev, op, "c_prev");
  const T* pc = in_ptr<T>(c, op, "c");
  const T* pdh = in_ptr<T>(dh, op, "dh");
  T* pdc = out_ptr<T>(dc, op, "dc");
  T* pdg = out_ptr<T>(dgates, op, "dgates");
  py::gil_scoped_release nogil;
  lstm_cell_backward<T>(pg, pcp, pc, pdh, pdc, pdg, s.B, s.H);
}

}  // namespace

void register_lstm(py::module_& m) {
  m.def(
      "lstm_cell_forward",
      [](py::array gates, py::array c_prev, py::array h, py::array c) {
        const char* op = "lstm_cell_forward";
        LstmShapes s = check_lstm_shapes(op, {{"gates", &gates}}, {{"c_prev", &c_prev}, {"h", &h}, {"c", &c}});
        const char kind = float_kind(gates, op, "gates");
        check_same_dtype(gates, c_prev, op, "gates", "c_prev");
        check_same_dtype(gates, h, op, "gates", "h");
        check_same_dtype(gates, c, op, "gates", "c");
        if (kind == 'f') forward_typed<float>(gates, c_prev, h, c, s);
        else forward_typed<double>(gates, c_prev, h, c, s);
      },
      py::arg("gates"), py::arg("c_prev"), py::arg("h"), py::arg("c"),
      "One LSTM step after its GEMMs. gates (B, 4H): pre-activations in, activations out (in place);\n"
      "c_prev (B, H); writes h, c (B, H). See pyengine/backend/reference/lstm.py.");
  m.def(
      "lstm_cell_backward",
      [](py::array gates, py::array c_prev, py::array c, py::array dh, py::array dc, py::array dgates) {
        const char* op = "lstm_cell_backward";
        LstmShapes s = check_lstm_shapes(op, {{"gates", &gates}, {"dgates", &dgates}},
                                         {{"c_prev", &c_prev}, {"c", &c}, {"dh", &dh}, {"dc", &dc}});
        const char kind = float_kind(gates, op, "gates");
        check_same_dtype(gates, c_prev, op, "gates", "c_prev");
        check_same_dtype(gates, c, op, "gates", "c");
        check_same_dtype(gates, dh, op, "gates", "dh");
        check_same_dtype(gates, dc, op, "gates", "dc");
        check_same_dtype(gates, dgates, op, "gates", "dgates");
        if (kind == 'f') backward_typed<float>(gates, c_prev, c, dh, dc, dgates, s);
        else backward_typed<double>(gates, c_prev, c, dh, dc, dgates, s);
      },
      py::arg("gates"), py::arg("c_prev"), py::arg("c"), py::arg("dh"), py::arg("dc"), py::arg("dgates"),
      "Backward of one LSTM step: writes dgates (B, 4H) and replaces dc (B, H) by dL/dc_prev.\n"
      "See pyengine/backend/reference/lstm.py.");
  m.def(
      "lstm_sequence_forward",
      [](py::array G, py::array w_hh, py::array Hs, py::array Cs, py::array batch_sizes, bool batch_major) {
        const char* op = "lstm_sequence_forward";
        const SequenceSizes s = sequence_sizes(op, 4, w_hh, G, Hs, true, batch_sizes);
        if (batch_major) check_dense(op, s);
        const index_t H = s.H, N = s.N, B = s.B;
        const char kind = check_arrays(op, {{"G", &G, {N, 4 * H}, true},
                                            {"w_hh", &w_hh, {4 * H, H}, false},
                                            {"Hs", &Hs, {B + N, H}, true},
                                            {"Cs", &Cs, {B + N, H}, true}});
        auto run = [&](auto tag) {
          using T = decltype(tag);
          T* pg = static_cast<T*>(G.mutable_data());
          const T* pw = static_cast<const T*>(w_hh.data());
          T* ph = static_cast<T*>(Hs.mutable_data());
          T* pc = static_cast<T*>(Cs.mutable_data());
          py::gil_scoped_release nogil;
          lstm_sequence_forward<T>(pg, pw, ph, pc, s.batch_sizes.data(), s.T, B, H, batch_major);
        };
        if (kind == 'f') run(float{});
        else run(double{});
      },
      py::arg("G"), py::arg("w_hh"), py::arg("Hs"), py::arg("Cs"), py::arg("batch_sizes"),
      py::arg("batch_major") = false,
      "One LSTM layer's recurrence over all packed steps, in place (see csrc/cpu/lstm.h); batch_major: G's rows "
      "in (b, t) order, a dense batch only.");
  m.def(
      "lstm_sequence_backward",
      [](py::array G, py::array w_hh, py::array Cs, std::optional<py::array> dH, py::array dh, py::array dc,
         py::array dG, py::array batch_sizes, bool batch_major) {
        const char* op = "lstm_sequence_backward";
        const SequenceSizes s = sequence_sizes(op, 4, w_hh, G, dh, false, batch_sizes);
        if (batch_major) check_dense(op, s);
        const index_t H = s.H, N = s.N, B = s.B;
        const char kind = check_arrays(op, {{"G", &G, {N, 4 * H}, false},
                                            {"w_hh", &w_hh, {4 * H, H}, false},
                                            {"Cs", &Cs, {B + N, H}, false},
                                            {"dh", &dh, {B, H}, true},
                                            {"dc", &dc, {B, H}, true},
                                            {"dG", &dG, {N, 4 * H}, true}});
        auto run = [&](auto tag) {
          using T = decltype(tag);
          const T* pg = static_cast<const T*>(G.data());
          const T* pw = static_cast<const T*>(w_hh.data());
          const T* pc = static_cast<const T*>(Cs.data());
          const T* pdH = output_grad<T>(op, dH, "G", G, N, H);
          T* pdh = static_cast<T*>(dh.mutable_data());
          T* pdc = static_cast<T*>(dc.mutable_data());
          T* pdg = static_cast<T*>(dG.mutable_data());
          py::gil_scoped_release nogil;
          lstm_sequence_backward<T>(pg, pw, pc, pdH, pdh, pdc, pdg, s.batch_sizes.data(), s.T, B, H, batch_major);
        };
        if (kind == 'f') run(float{});
        else run(double{});
      },
      py::arg("G"), py::arg("w_hh"), py::arg("Cs"), py::arg("dH"), py::arg("dh"), py::arg("dc"), py::arg("dG"),
      py::arg("batch_sizes"), py::arg("batch_major") = false,
      "Backward of lstm_sequence_forward, in place (see csrc/cpu/lstm.h); dH None: no gradient from the output.");
  m.def("set_recurrence_prefetch", [](bool on) { return set_recurrence_prefetch(on); }, py::arg("on"),
        "Whether the sequence recurrences prefetch the next step's rows (on by default; same bits). Returns the "
        "previous setting.");
}

}  // namespace pe
