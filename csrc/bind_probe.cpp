// Bindings of the machine probes (csrc/cpu/probe.cpp), used by bench/.
#include "binding_utils.h"
#include "bindings.h"
#include "cpu/probe.h"

namespace pe {
void register_probe(py::module_& m) {
  m.def("probe_peak_gflops", [](int threads) {
      if (threads < 1) throw py::value_error("probe_peak_gflops: threads must be >= 1");
      double sink = 0;
      double g;
      {
        py::gil_scoped_release release;
        g = probe_peak_gflops(threads, &sink);
      }
      return g;
    }, py::arg("threads"), "Peak float32 FMA GFLOP/s on `threads` threads at the current SIMD level.");
  m.def("probe_bandwidth_gbs", [](int threads, std::int64_t n) {
      if (threads < 1 || n < 1) throw py::value_error("probe_bandwidth_gbs: threads and n must be >= 1");
      py::gil_scoped_release release;
      return probe_bandwidth_gbs(threads, n);
    }, py::arg("threads"), py::arg("n") = 1 << 24, "STREAM-triad memory bandwidth in GB/s.");
  m.def("probe_roundtrip_ns", [](std::int64_t rounds) {
      if (rounds < 1) throw py::value_error("probe_roundtrip_ns: rounds must be >= 1");
      py::gil_scoped_release release;
      return probe_roundtrip_ns(rounds);
    }, py::arg("rounds") = 100000,
    "ns per round trip of a cache line between two threads (two cores); 0.0 on a machine with one CPU.");
}
}  // namespace pe
