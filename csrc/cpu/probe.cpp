// Machine probes for the benchmarks: peak FMA throughput and memory bandwidth.
// Every benchmark case reports its fraction of one of these ceilings.
#include "probe.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#if PE_X86
#include <immintrin.h>
#endif

namespace pe {

namespace {

// Peak FMA rate: many independent accumulators so that the FMA units' latency
// (4 cycles on recent x86) is hidden and throughput (2 FMAs/cycle on most
// server cores) is the limit. 16 chains x 16 lanes x 2 flops per iteration.
#if PE_X86
PE_TARGET_AVX512 double fma_avx512(std::int64_t iters) {
  __m512 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_set1_ps(0.001f * j);
  const __m512 mul = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
  for (std::int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(acc[j], mul, add);
  __m512 s = acc[0];
  for (int j = 1; j < 16; ++j) s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}

PE_TARGET_AVX2 double fma_avx2(std::int64_t iters) {
  __m256 acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_ps(0.001f * j);
  const __m256 mul = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
  for (std::int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_fmadd_ps(acc[j], mul, add);
  float out[8];
  __m256 s = acc[0];
  for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, acc[j]);
  _mm256_storeu_ps(out, s);
  double r = 0;
  for (float v : out) r += v;
  return r;
}
#endif

double fma_generic(std::int64_t iters) {
  float acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = 0.001f * j;
  for (std::int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 8; ++j) acc[j] = acc[j] * 0.999999f + 1e-7f;
  double r = 0;
  for (float v : acc) r += v;
  return r;
}

}  // namespace

double probe_peak_gflops(int threads, double* sink) {
  Isa level = isa();
  int lanes = level == Isa::avx512 ? 16 * 16 : level == Isa::avx2 ? 12 * 8 : 8;
  const std::int64_t iters = level == Isa::generic ? 20'000'000 : 50'000'000;
  double total = 0;
  auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for num_threads(threads) reduction(+ : total)
  for (int t = 0; t < threads; ++t) {
#if PE_X86
    if (level == Isa::avx512) total += fma_avx512(iters);
    else if (level == Isa::avx2) total += fma_avx2(iters);
    else total += fma_generic(iters);
#else
    total += fma_generic(iters);
#endif
  }
  double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  *sink = total;
  return 2.0 * lanes * static_cast<double>(iters) * threads / sec / 1e9;
}

// Memory bandwidth: the STREAM triad a = b + s c over arrays far larger than the
// caches; bytes counted as 3 x 8 per element (two reads, one write).
double probe_bandwidth_gbs(int threads, std::int64_t n) {
  std::vector<double> a(n), b(n, 1.0), c(n, 2.0);
#pragma omp parallel for num_threads(threads)
  for (std::int64_t i = 0; i < n; ++i) a[i] = 0.0;  // first touch by the worker threads
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for num_threads(threads)
    for (std::int64_t i = 0; i < n; ++i) a[i] = b[i] + 0.5 * c[i];
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double gbs = 3.0 * 8.0 * static_cast<double>(n) / sec / 1e9;
    if (gbs > best) best = gbs;
  }
  return best + 0.0 * a[n / 2];
}

// Core-to-core latency: two threads hand a cache line back and forth (one writes 1, the other answers 0);
// the time per round trip is two transfers of the line between the cores they run on. On one die of a
// recent x86 part that is 50-80 ns; across dies or sockets several hundred, and every cache line one
// thread writes and another reads then costs that much (a VM's vCPUs can move between the two cases).
double probe_roundtrip_ns(std::int64_t rounds) {
  if (std::thread::hardware_concurrency() < 2 || rounds < 1) return 0.0;
  alignas(64) std::atomic<int> flag{0};
  std::atomic<bool> ready{false}, stop{false};
  std::thread peer([&] {
    ready.store(true, std::memory_order_release);
    while (!stop.load(std::memory_order_relaxed)) {
      if (flag.load(std::memory_order_acquire) == 1) flag.store(0, std::memory_order_release);
    }
  });
  while (!ready.load(std::memory_order_acquire)) {
  }
  // at most 0.2 s: where both threads share one CPU (an affinity mask, a busy machine) a round trip waits for
  // the scheduler, and the time per round says so
  const auto t0 = std::chrono::steady_clock::now(), limit = t0 + std::chrono::milliseconds(200);
  std::int64_t done = 0;
  for (; done < rounds; ++done) {
    flag.store(1, std::memory_order_release);
    while (flag.load(std::memory_order_acquire) != 0) {
    }
    if ((done & 63) == 63 && std::chrono::steady_clock::now() > limit) break;
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stop.store(true, std::memory_order_relaxed);
  peer.join();
  return sec * 1e9 / static_cast<double>(std::min(done + 1, rounds));
}

}  // namespace pe
