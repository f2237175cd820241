#include "common.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__linux__)
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <strings.h>
#include <unistd.h>
#endif

namespace pe {

static int default_threads() {
#if defined(PYENGINE_OPENMP)
  return std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

static int g_threads = default_threads();
int num_threads() { return g_threads; }
void set_num_threads(int n) { g_threads = std::max(1, n); }

// ---------------------------------------------------------------- load-adapted thread count
// The window's verdict: the second-largest of its n samples (the largest count seen at least twice).
int window_busy(const int* samples, int n) {
  int first = 0, second = 0;
  for (int i = 0; i < n; ++i) {
    if (samples[i] > first) {
      second = first;
      first = samples[i];
    } else if (samples[i] > second) {
      second = samples[i];
    }
  }
  return second;
}

namespace {

constexpr std::int64_t kSampleNs = 50'000'000;  // at most one sample per 50 ms
constexpr int kWindow = 4;                      // a core is busy if busy in 2 of the last 4 samples

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool env_adapt() {
  const char* env = std::getenv("PYENGINE_ADAPT_THREADS");
  return !(env && !std::strcmp(env, "0"));
}

// Whether libgomp's idle workers spin for long, as this process's environment says when _C loads
// (pyengine/backend/cpu/_lib.py corrects it when another library loaded libgomp first). libgomp spins
// 300000 rounds by default (~15 ms on the EPYC VM, ~50 ns a round), "infinite" with OMP_WAIT_POLICY=ACTIVE,
// not at all with PASSIVE, and GOMP_SPINCOUNT rounds when that is set (a number, optionally k / M / G / T,
// or "infinite"). A spin of at most kBriefSpin rounds (pyengine's default is 3000, ~0.15 ms) keeps a worker
// awake across the Python between two kernels and then sleeps: the adaptation treats it as sleeping.
constexpr long long kBriefSpin = 10000;

long long gomp_spincount(const char* c) {
  if (!strncasecmp(c, "inf", 3)) return LLONG_MAX;
  char* end = nullptr;
  const long long n = std::strtoll(c, &end, 10);
  if (n <= 0) return 0;
  long long unit = 1;
  switch (end ? *end : 0) {
    case 'k': case 'K': unit = 1000LL; break;
    case 'm': case 'M': unit = 1000000LL; break;
    case 'g': case 'G': unit = 1000000000LL; break;
    case 't': case 'T': unit = 1000000000000LL; break;
    default: break;
  }
  return n > LLONG_MAX / unit ? LLONG_MAX : n * unit;
}

bool env_spin() {
  if (const char* c = std::getenv("GOMP_SPINCOUNT")) return gomp_spincount(c) > kBriefSpin;
  if (const char* w = std::getenv("OMP_WAIT_POLICY")) return strcasecmp(w, "passive") != 0;
  return true;
}

std::atomic<bool> g_adapt{env_adapt()};
std::atomic<bool> g_spin{env_spin()};
std::atomic<int> g_busy{0};                // runnable threads of other processes (max over the window)
std::atomic<int> g_cores{INT_MAX};         // cores this process may use
std::atomic<index_t> g_busy_min_grains{16};
std::atomic<std::int64_t> g_next_sample{0};
std::mutex g_sample_mutex;                 // one sampler at a time; the others use the last sample
int g_others[kWindow];                     // runnable threads of other processes, last kWindow samples
int g_filled = 0, g_pos = 0;
std::int64_t g_last_sample = 0;

#if defined(__linux__)
// Reads a small /proc file (one read: these files are generated whole); returns the bytes read or -1.
int read_proc(const char* path, char* buf, int cap) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = ::read(fd, buf, cap - 1);
  ::close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  return static_cast<int>(n);
}

// Cores this process may run on: its affinity mask, and a cgroup v2 CPU quota if one is set (read once).
int allowed_cores() {
  static const int quota = [] {
    char buf[128];
    long q = 0, p = 0;
    if (read_proc("/sys/fs/cgroup/cpu.max", buf, sizeof buf) > 0 && std::sscanf(buf, "%ld %ld", &q, &p) == 2 &&
        q > 0 && p > 0)
      return static_cast<int>(std::max<long>(1, (q + p - 1) / p));
    return INT_MAX;  // "max": no quota
  }();
  cpu_set_t set;
  int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
  if (n <= 0) n = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  return std::max(1, std::min(n, quota));
}

// Runnable threads on the machine now: the 4th field of /proc/loadavg ("0.50 0.40 0.30 3/181 12345").
int runnable_total() {
  char buf[128];
  if (read_proc("/proc/loadavg", buf, sizeof buf) <= 0) return -1;
  const char* p = buf;
  for (int field = 0; field < 3; ++field) {
    p = std::strchr(p, ' ');
    if (!p) return -1;
    ++p;
  }
  return static_cast<int>(std::strtol(p, nullptr, 10));
}

// This process's threads in state R (running or waiting for a core), the caller included: our own
// spinning OpenMP workers (OMP_WAIT_POLICY=ACTIVE, GOMP_SPINCOUNT) must not count as someone else's load.
int runnable_own() {
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return 1;
  int count = 0;
  char path[320], buf[512];
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
    if (read_proc(path, buf, sizeof buf) <= 0) continue;
    const char* paren = std::strrchr(buf, ')');  // the name may hold spaces and ')'; the state follows the last
    if (paren && paren[1] == ' ' && paren[2] == 'R') ++count;
  }
  ::closedir(dir);
  return std::max(count, 1);
}

// One sample of the other processes' runnable threads, and the window's verdict. Two kinds of false
// alarm, each of which ran a 2-thread kernel on one thread for the window's 200 ms (measured on a 2-vCPU
// VM: busy_threads() read 1 in 3% of 10 ms reads while the machine was idle and in 17% while 2-thread
// GEMMs ran back to back, and such GEMMs ran at one thread's speed, 110 against 205 GFLOP/s):
//  - our own threads change state between the two reads: a worker that had just finished its share was
//    still R in /proc/loadavg and asleep a moment later in /proc/self/task. Our threads are counted before
//    and after the loadavg read, and the larger count is taken (a thread R in either may be in the total).
//  - a kernel thread or a daemon is runnable for a moment (loadavg's count is instantaneous). A core counts
//    as taken only when a sample saw it taken at least twice in the window (the second-largest of the
//    samples), so a competitor is followed after 2 samples (<= 100 ms) and a single reading is not.
void sample_load() {
  const int own_before = runnable_own();
  const int total = runnable_total();
  if (total < 0) return;  // no /proc: no adaptation
  const int others = std::max(0, total - std::max(own_before, runnable_own()));
  const std::int64_t t = now_ns();
  if (t - g_last_sample > kWindow * kSampleNs) g_filled = 0;  // the history is stale: start again
  g_last_sample = t;
  g_others[g_pos] = others;
  g_pos = (g_pos + 1) % kWindow;
  g_filled = std::min(g_filled + 1, kWindow);
  g_busy.store(window_busy(g_others, g_filled), std::memory_order_relaxed);
  g_cores.store(allowed_cores(), std::memory_order_relaxed);
}
#else
void sample_load() {}
#endif

void refresh_load() {
  const std::int64_t t = now_ns();
  if (t < g_next_sample.load(std::memory_order_relaxed)) return;
  std::unique_lock<std::mutex> lock(g_sample_mutex, std::try_to_lock);
  if (!lock.owns_lock()) return;  // another thread is sampling: use the last decision
  if (t < g_next_sample.load(std::memory_order_relaxed)) return;
  sample_load();
  g_next_sample.store(now_ns() + kSampleNs, std::memory_order_relaxed);
}

}  // namespace

// Free cores: all of them when no other process runs. When others leave some free, those: a team larger
// than that waits at every join for a thread the scheduler put behind someone else's. When others take
// every core, our threads time-share with theirs whatever we do: sleeping workers (PASSIVE) then keep
// their share (on 2 cores under load 6-10, 2 threads ran the GPT step ~2x faster than 1), spinning ones
// burn the cores they wait on and the team drops to one thread.
int usable_threads(index_t grains) {
  const int n = g_threads;
  if (n <= 1 || !g_adapt.load(std::memory_order_relaxed)) return n;
  refresh_load();
  const int busy = g_busy.load(std::memory_order_relaxed), cores = g_cores.load(std::memory_order_relaxed);
  if (busy == 0) return n;
  if (busy >= cores) {
    if (g_spin.load(std::memory_order_relaxed)) return 1;
    return grains >= g_busy_min_grains.load(std::memory_order_relaxed) ? n : 1;
  }
  return std::max(1, std::min(n, cores - busy));
}

void set_busy_min_grains(index_t g) { g_busy_min_grains.store(std::max<index_t>(1, g), std::memory_order_relaxed); }
index_t busy_min_grains() { return g_busy_min_grains.load(std::memory_order_relaxed); }

void set_adapt_threads(bool on) { g_adapt.store(on, std::memory_order_relaxed); }
bool adapt_threads() { return g_adapt.load(std::memory_order_relaxed); }
void set_workers_spin(bool on) { g_spin.store(on, std::memory_order_relaxed); }
bool workers_spin() { return g_spin.load(std::memory_order_relaxed); }

int busy_threads() {
  refresh_load();
  return g_busy.load(std::memory_order_relaxed);
}

Isa isa_supported() {
#if PE_X86
  static const Isa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
      return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
    return Isa::generic;
  }();
  return best;
#else
  return Isa::generic;
#endif
}

static Isa initial_isa() {
  Isa level = isa_supported();
  if (const char* env = std::getenv("PYENGINE_ISA")) {
    if (!std::strcmp(env, "generic")) level = std::min(level, Isa::generic);
    else if (!std::strcmp(env, "avx2")) level = std::min(level, Isa::avx2);
  }
  return level;
}

static Isa g_isa = initial_isa();
Isa isa() { return g_isa; }
void set_isa(Isa level) { g_isa = std::min(level, isa_supported()); }

const char* isa_name(Isa level) {
  switch (level) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace pe
