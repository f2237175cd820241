// Bindings of the attention kernel family (csrc/cpu/attention*.cpp).
#include "binding_utils.h"
#include "bindings.h"

namespace pe {
void register_attention(py::module_& m) { (void)m; }
}  // namespace pe
