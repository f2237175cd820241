// Prefetching what the next piece of work will touch, a share at a time between micro-kernel calls.
//
// A kernel that knows what its next step or tile reads (or writes) lists it here as ranges of rows (rows of
// row_bytes, stride_bytes apart; a contiguous range is one row), and between its micro-kernel calls issues
// the next lines in order, a few dozen at a time: a burst of hundreds of prefetches before a call held up the
// call's own loads (dev/gemm_notes.md). Prefetches only, so the bits of any result are the same with or
// without them. Users: the GEMM's row tiles (gemm.cpp, block_kernel: the next tile's C and A rows), the
// recurrences' steps (recurrence.h, StepGemm::ahead: the next step's G, dG and state rows) and attention's
// tasks (attention.cpp: the next head's or query block's q, k, v, out and dout rows).
#pragma once
#include <algorithm>
#include <cstdint>

#include "common.h"

namespace pe {

struct Ahead {
  static constexpr int kMax = 6;
  std::uintptr_t first[kMax] = {};  // first line of the first row (addresses as integers: a line may start
                                    // before or end past the array, which a prefetch may touch)
  index_t lines[kMax] = {};         // lines a row
  index_t nrows[kMax] = {};
  index_t stride[kMax] = {};        // bytes from a row to the next
  bool write[kMax] = {};            // the work will write the range: prefetch for ownership
  int n = 0;
  bool l2 = false;  // read ranges into L2 only (prefetcht1) instead of L1 (prefetcht0)
  // the walk: next line j of row r (starting at line `at`) of range i
  int i = 0;
  index_t r = 0, j = 0;
  std::uintptr_t at = 0;

  // bytes [a, a + nbytes)
  void add(const void* a, index_t nbytes, bool w = false) { add_rows(a, nbytes, 1, 0, w); }
  // rows rows of row_bytes each, the first at a, one every stride_bytes (lines counted from the first row's
  // alignment: where the stride is not a multiple of 64 bytes a later row may miss its last line)
  void add_rows(const void* a, index_t row_bytes, index_t rows, index_t stride_bytes, bool w = false) {
    if (n == kMax || row_bytes <= 0 || rows <= 0 || !a) return;
    const auto addr = reinterpret_cast<std::uintptr_t>(a);
    const std::uintptr_t line0 = addr & ~std::uintptr_t(63), end = addr + static_cast<std::uintptr_t>(row_bytes);
    first[n] = line0;
    if (n == 0) at = line0;
    lines[n] = static_cast<index_t>((end - line0 + 63) / 64);
    nrows[n] = rows, stride[n] = stride_bytes, write[n] = w;
    ++n;
  }
  index_t total() const {
    index_t s = 0;
    for (int k = 0; k < n; ++k) s += lines[k] * nrows[k];
    return s;
  }
  // Restarts the walk at the first line of the first range.
  void rewind() { i = 0, r = 0, j = 0, at = first[0]; }
  // Issues the next `count` lines of the walk (fewer at its end), a row's run of lines at a time.
  void touch(index_t count) {
    while (count > 0 && i < n) {
      const index_t len = std::min(count, lines[i] - j);
      const std::uintptr_t q = at + static_cast<std::uintptr_t>(j) * 64;
      if (write[i])
        issue<1, 3>(q, len);
      else if (l2)
        issue<0, 2>(q, len);
      else
        issue<0, 3>(q, len);
      count -= len, j += len;
      if (j == lines[i]) {
        j = 0, at += static_cast<std::uintptr_t>(stride[i]);
        if (++r == nrows[i]) {
          r = 0;
          if (++i < n) at = first[i];
        }
      }
    }
  }

 private:
  template <int RW, int Locality>
  static void issue(std::uintptr_t q, index_t len) {
    for (index_t k = 0; k < len; ++k, q += 64) __builtin_prefetch(reinterpret_cast<const void*>(q), RW, Locality);
  }
};

}  // namespace pe
