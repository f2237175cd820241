// Dev-only per-thread timing of the multi-thread GEMM drivers (gemm.cpp), for finding where the
// 2-thread time goes on a VM without hardware counters (dev/gemm_notes.md, "Two threads, third pass").
//
// Off unless the environment has PE_GEMM_TRACE=<file> when the first GEMM runs (read once). Then every
// call of a traced driver appends one line per thread to <file>:
//   plan M N K threads tid start end cpu pack_a pack_b kernel own_b barrier sum (the 6 phases' CPU time) units
// (times in microseconds)
// start / end: the thread's entry to and exit from the parallel region, from the call's start (a late
// start is a worker that woke late); cpu: the thread's CPU time in the region (CLOCK_THREAD_CPUTIME_ID:
// wall minus cpu is time the OS held the thread back); the phases are steady-clock sums, then the same
// phases' thread CPU time (on a busy machine the CPU time is what tells how fast the code runs); units: work
// units the thread ran. own_b: B micro-panels a thread of run_shared_b packed into its own buffer because the
// shared block was claimed but not yet written by a peer, or its slab buffer was still read by an earlier slab
// (before: the time it waited for the peer's block). dev/gemm_trace.py runs shapes with this on and summarises the lines.
// When off, each timed span costs one test of a null pointer.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#if defined(__linux__)
#include <time.h>
#endif

#include "common.h"

namespace pe {
namespace gemm_trace {

enum Phase : int { kPackA = 0, kPackB, kKernel, kPackBOwn, kBarrier, kSum, kPhases };
constexpr int kMaxThreads = 64;

// The file an environment variable names (dev-only traces), or null when it is unset or empty.
inline const char* env_file(const char* var) {
  const char* e = std::getenv(var);
  return e && *e ? e : nullptr;
}

inline const char* path() {
  static const char* p = env_file("PE_GEMM_TRACE");  // read once
  return p;
}

// Appends to the trace file at `file` what write(FILE*) prints, one writer at a time (the traced calls may
// end on several threads).
template <class Write>
void append(const char* file, const Write& write) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  FILE* f = std::fopen(file, "a");
  if (!f) return;
  write(f);
  std::fclose(f);
}

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline std::int64_t thread_cpu_ns() {
#if defined(__linux__)
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
#else
  return 0;
#endif
}

struct Thread {
  std::int64_t start = 0, end = 0, cpu0 = 0, cpu = 0;
  std::int64_t phase[kPhases] = {};      // wall
  std::int64_t phase_cpu[kPhases] = {};  // the thread's CPU time
  int units = 0;
  bool used = false;
};

// One traced call: the driver creates it (null when tracing is off), each thread brackets its part of
// the region with enter / leave and its phases with Span.
class Call {
 public:
  Call(const char* plan, index_t M, index_t N, index_t K, int threads)
      : plan_(plan), M_(M), N_(N), K_(K), threads_(threads), t0_(now_ns()) {}
  Thread* enter(int tid) {
    if (tid < 0 || tid >= kMaxThreads) return nullptr;
    Thread& t = th_[tid];
    t.used = true;
    t.start = now_ns() - t0_;
    t.cpu0 = thread_cpu_ns();
    return &t;
  }
  // As enter, for a thread that runs several pieces (units) of a region: start and the CPU-time origin
  // are those of its first piece.
  Thread* resume(int tid) {
    if (tid < 0 || tid >= kMaxThreads) return nullptr;
    return th_[tid].used ? &th_[tid] : enter(tid);
  }
  static void leave(Thread* t, std::int64_t t0) {
    if (!t) return;
    t->end = now_ns() - t0;
    t->cpu = thread_cpu_ns() - t->cpu0;  // (resume: up to the end of the thread's last piece)
  }
  std::int64_t t0() const { return t0_; }
  ~Call() {
    append(path(), [this](FILE* f) {
      for (int i = 0; i < kMaxThreads; ++i) {
        const Thread& t = th_[i];
        if (!t.used) continue;
        std::fprintf(f, "%s %lld %lld %lld %d %d", plan_, static_cast<long long>(M_), static_cast<long long>(N_),
                     static_cast<long long>(K_), threads_, i);
        const std::int64_t v[] = {t.start, t.end, t.cpu, t.phase[kPackA], t.phase[kPackB], t.phase[kKernel],
                                  t.phase[kPackBOwn], t.phase[kBarrier], t.phase[kSum]};
        for (std::int64_t x : v) std::fprintf(f, " %.1f", static_cast<double>(x) / 1e3);
        for (std::int64_t x : t.phase_cpu) std::fprintf(f, " %.1f", static_cast<double>(x) / 1e3);
        std::fprintf(f, " %d\n", t.units);
      }
    });
  }

 private:
  const char* plan_;
  index_t M_, N_, K_;
  int threads_;
  std::int64_t t0_;
  Thread th_[kMaxThreads];
};

// Adds the time from construction to destruction to one phase of a thread (nothing when t is null).
class Span {
 public:
  Span(Thread* t, Phase p)
      : acc_(t ? &t->phase[p] : nullptr), cacc_(t ? &t->phase_cpu[p] : nullptr), s_(t ? now_ns() : 0),
        c_(t ? thread_cpu_ns() : 0) {}
  ~Span() {
    if (!acc_) return;
    *acc_ += now_ns() - s_;
    *cacc_ += thread_cpu_ns() - c_;
  }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

 private:
  std::int64_t *acc_, *cacc_;
  std::int64_t s_, c_;
};

// The thread's entry to a traced region: its Thread, or null when tracing is off.
inline Thread* enter(Call* call, int tid) { return call ? call->enter(tid) : nullptr; }

}  // namespace gemm_trace
}  // namespace pe
