// Bindings of the loss kernel family (csrc/cpu/loss*.cpp).
#include "binding_utils.h"
#include "bindings.h"

namespace pe {
void register_loss(py::module_& m) { (void)m; }
}  // namespace pe
