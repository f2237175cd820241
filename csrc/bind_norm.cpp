// Bindings of the norm kernel family (csrc/cpu/norm*.cpp).
#include "binding_utils.h"
#include "bindings.h"

namespace pe {
void register_norm(py::module_& m) { (void)m; }
}  // namespace pe
