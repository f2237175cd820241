// pybind11 entry point of pyengine._C. Only pyengine/backend/cpu/ imports _C.
#include "bindings.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common.h"

#if defined(__GLIBC__)
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#endif

namespace py = pybind11;

// Keep freed memory in the heap instead of handing it back to the OS. A training step allocates and
// frees the same activation-sized arrays (0.1-30 MB) every step; glibc serves those with fresh mmap
// pages, and first-touch page faults then cost ~20% of a small GPT step on this VM (measured: 15.8k
// faults per step -> 0 with this tuning; 177 -> 141 ms CPU per step). Opt out: PYENGINE_MALLOC_TUNING=0.
static bool tune_malloc() {
#if defined(__GLIBC__)
  const char* env = std::getenv("PYENGINE_MALLOC_TUNING");
  if (env && std::strcmp(env, "0") == 0) return false;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest value glibc accepts on 64-bit
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  return true;
#else
  return false;
#endif
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyengine compiled CPU kernels (use through pyengine.backend, not directly)";
  m.attr("malloc_tuned") = tune_malloc();

  m.def("num_threads", &pe::num_threads, "Threads the kernels use.");
  m.def("set_num_threads", [](int n) {
      if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
      pe::set_num_threads(n);
    }, py::arg("n"), "Set the number of threads the kernels use.");
  m.def("usable_threads", [] { return pe::usable_threads(); },
        "Threads a large kernel would use now: num_threads(), lowered while other processes take cores.");
  m.def("set_busy_min_grains", &pe::set_busy_min_grains, py::arg("grains"),
        "While other processes take every core, kernels of fewer grains of work run on one thread.");
  m.def("busy_min_grains", &pe::busy_min_grains);
  m.def("set_adapt_threads", &pe::set_adapt_threads, py::arg("on"),
        "Turn the load-adapted thread count on or off (default on; PYENGINE_ADAPT_THREADS=0 starts it off).");
  m.def("adapt_threads", &pe::adapt_threads, "Whether the thread count adapts to the cores other processes use.");
  m.def("set_workers_spin", &pe::set_workers_spin, py::arg("on"),
        "Tell the adaptation whether idle OpenMP workers spin (libgomp's default) or sleep (PASSIVE).");
  m.def("workers_spin", &pe::workers_spin, "Whether the adaptation takes idle OpenMP workers to spin.");
  m.def("busy_threads", &pe::busy_threads,
        "Runnable threads of other processes, as the thread-count adaptation sees them (samples when stale).");
  m.def("window_busy", [](const std::vector<int>& samples) {
      return pe::window_busy(samples.data(), static_cast<int>(samples.size()));
    }, py::arg("samples"),
        "The adaptation's rule on a window of load samples: the largest count seen in at least two of them.");
  m.def("isa", [] { return std::string(pe::isa_name(pe::isa())); }, "SIMD level in use: generic|avx2|avx512.");
  m.def("isa_supported", [] { return std::string(pe::isa_name(pe::isa_supported())); },
        "Best SIMD level this CPU supports.");
  m.def("set_isa", [](const std::string& name) {
      if (name == "generic") pe::set_isa(pe::Isa::generic);
      else if (name == "avx2") pe::set_isa(pe::Isa::avx2);
      else if (name == "avx512") pe::set_isa(pe::Isa::avx512);
      else throw py::value_error("set_isa: expected 'generic', 'avx2' or 'avx512', got '" + name + "'");
      return std::string(pe::isa_name(pe::isa()));
    }, py::arg("name"), "Force a SIMD level (clamped to what the CPU supports); returns the level in use.");
  m.def("has_openmp", [] {
#if defined(PYENGINE_OPENMP)
    return true;
#else
    return false;
#endif
  });

  pe::register_gemm(m);
  pe::register_attention(m);
  pe::register_activation(m);
  pe::register_loss(m);
  pe::register_norm(m);
  pe::register_embedding(m);
  pe::register_optim(m);
  pe::register_lstm(m);
  pe::register_rnn(m);
  pe::register_reduce(m);
  pe::register_elementwise(m);
  pe::register_mask(m);
  pe::register_probe(m);
  pe::register_conv(m);
  pe::register_gemm_bf16(m);
}
