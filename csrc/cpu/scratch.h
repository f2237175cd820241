// Scratch: thread-private, 64-byte aligned, grow-only work buffers, kept between calls.
//
// A kernel that packs or pads its operands into buffers of the calling thread's Scratch pays no allocation per
// call once warm, and OpenMP's worker threads keep theirs between calls too (the GEMM's packing buffers, the
// stride-2 convolution's). Buffers of kHugeMin bytes or more are 2 MiB aligned and asked to be backed by transparent huge
// pages (the kernel here has THP in `madvise` mode: plain allocations get 4 KiB pages): a 768 KiB packed GEMM
// B block is then one TLB entry instead of 192, a 24 MiB shared B 12 instead of 6144 (more than the
// second-level TLB holds). NumPy asks the same for its large arrays. Measured: 2 threads ~+5-10% GFLOP per
// CPU-second at 2048^3 and M4096 K768 N3072, 1 thread within noise (dev/gemm_notes.md).
// The contents are not initialised; one Scratch serves one buffer at a time (a kernel that needs two at once
// keeps two).
#pragma once

#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "common.h"

namespace pe {

class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(p_); }

  // At least `bytes` bytes; null on allocation failure (for callers inside an OpenMP region, which must not
  // throw).
  void* get(size_t bytes) {
    if (bytes > cap_) {
      std::free(p_);
      const bool huge = bytes >= kHugeMin;
      const size_t align = huge ? kHugePage : 64;
      const size_t rounded = (bytes + align - 1) / align * align;
      p_ = std::aligned_alloc(align, rounded);
      cap_ = p_ ? rounded : 0;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      if (p_ && huge) madvise(p_, rounded, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
    }
    return p_;
  }

  // n values of T (at least one); throws std::bad_alloc on failure.
  template <class T>
  T* values(index_t n) {
    void* p = get(static_cast<size_t>(n > 1 ? n : 1) * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }

 private:
  static constexpr size_t kHugePage = size_t(2) << 20, kHugeMin = size_t(512) << 10;
  void* p_ = nullptr;
  size_t cap_ = 0;
};

}  // namespace pe
