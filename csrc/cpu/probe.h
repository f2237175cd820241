#pragma once
#include "common.h"

namespace pe {
// GFLOP/s of a pure FMA stream on `threads` threads at the current SIMD level.
double probe_peak_gflops(int threads, double* sink);
// Best GB/s of the STREAM triad over 3 arrays of n doubles.
double probe_bandwidth_gbs(int threads, std::int64_t n);
// ns per round trip of a cache line between two threads (two cores when the OS gives them two); 0 on one CPU.
double probe_roundtrip_ns(std::int64_t rounds);
}  // namespace pe
