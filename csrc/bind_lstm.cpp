// Bindings of the lstm kernel family (csrc/cpu/lstm*.cpp).
#include "binding_utils.h"
#include "bindings.h"

namespace pe {
void register_lstm(py::module_& m) { (void)m; }
}  // namespace pe
