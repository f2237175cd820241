// Bindings of the activation kernel family (csrc/cpu/activation*.cpp).
#include "binding_utils.h"
#include "bindings.h"

namespace pe {
void register_activation(py::module_& m) { (void)m; }
}  // namespace pe
