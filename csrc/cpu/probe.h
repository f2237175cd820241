#pragma once
#include "common.h"

namespace pe {
// GFLOP/s of a pure FMA stream on `threads` threads at the current SIMD level.
double probe_peak_gflops(int threads, double* sink);
// Best GB/s of the STREAM triad over 3 arrays of n doubles.
double probe_bandwidth_gbs(int threads, std::int64_t n);
}  // namespace pe
