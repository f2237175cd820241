// Bindings of the optim kernel family (csrc/cpu/optim*.cpp).
#include "binding_utils.h"
#include "bindings.h"

namespace pe {
void register_optim(py::module_& m) { (void)m; }
}  // namespace pe
