// Bindings of the embedding kernel family (csrc/cpu/embedding*.cpp).
#include "binding_utils.h"
#include "bindings.h"

namespace pe {
void register_embedding(py::module_& m) { (void)m; }
}  // namespace pe
