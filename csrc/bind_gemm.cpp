// Bindings of the gemm kernel family (csrc/cpu/gemm*.cpp).
#include "binding_utils.h"
#include "bindings.h"

namespace pe {
void register_gemm(py::module_& m) { (void)m; }
}  // namespace pe
