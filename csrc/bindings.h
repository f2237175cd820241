// Each kernel family registers its functions in its own bind_<family>.cpp.
#pragma once
#include <pybind11/pybind11.h>

namespace pe {
void register_gemm(pybind11::module_& m);
void register_attention(pybind11::module_& m);
void register_activation(pybind11::module_& m);
void register_loss(pybind11::module_& m);
void register_norm(pybind11::module_& m);
void register_embedding(pybind11::module_& m);
void register_optim(pybind11::module_& m);
void register_lstm(pybind11::module_& m);
void register_rnn(pybind11::module_& m);
void register_reduce(pybind11::module_& m);
void register_elementwise(pybind11::module_& m);
void register_mask(pybind11::module_& m);
void register_probe(pybind11::module_& m);
void register_conv(pybind11::module_& m);
void register_gemm_bf16(pybind11::module_& m);
}  // namespace pe
