#pragma once
// Hopper's async proxy as the PTX ISA's memory consistency model describes it: TMA and wgmma
// access shared memory through the async proxy, plain loads and stores (and stmatrix) through
// the generic proxy, and a generic-proxy write becomes visible to a later async-proxy read only
// through `fence.proxy.async` executed by the writer after the write and before whatever
// orders it before the read (a barrier). Writes that land through the async proxy (TMA loads)
// complete on an mbarrier and need no fence.
//
// The emulator records, per thread, its own clock at each fence.proxy.async (the fence also
// starts a new clock value, so writes after it are not covered). An async-proxy read of a
// byte whose last write was generic is reported unless the reader is ordered after a fence of
// the writer that came after the write.
#include <algorithm>
#include <string>
#include <vector>

#include "cuda_emu.h"

namespace emu {

inline void fence_proxy_async() {
  const int me = thread_id();
  rt().proxy_fences[me].push_back(my_clock()[me]);
  ++my_clock()[me];
}

// Whether a fence of `w.thread` at or after its write `w` is ordered before the current thread.
inline bool proxy_fenced_before_me(const Access& w) {
  const std::vector<uint32_t>& fences = rt().proxy_fences[w.thread];
  const auto fence = std::lower_bound(fences.begin(), fences.end(), w.clock);
  return fence != fences.end() && *fence < my_clock()[w.thread];
}

// An async-proxy read of `bytes` shared bytes issued by the current thread (a TMA store's
// source, a wgmma operand): bounds, order after the writer, and a proxy fence between.
inline void async_proxy_read(const void* p, size_t bytes, const char* what) {
  const size_t offset = shared_offset(p, bytes, what);
  for (size_t i = offset; i < offset + bytes; ++i) {
    const ByteState& s = rt().shadow[i];
    if (s.writer.thread >= 0 && !s.async_write && !proxy_fenced_before_me(s.writer)) {
      fail(std::string(what) + " reads shared offset " + std::to_string(i) + " through the async proxy after a plain " +
           "write by thread " + std::to_string(s.writer.thread) + " with no fence.proxy.async between (" + where() +
           ")");
    }
  }
  shared_read(p, bytes, what);
}

// An async-proxy write that lands (a TMA load): issued by `by` whose clock at issue was `issued`,
// so it must be ordered after every earlier access of the bytes as seen from that issue.
inline void async_proxy_write(size_t offset, size_t bytes, const char* what, const Access& by, const Clock& issued) {
  for (size_t i = offset; i < offset + bytes; ++i) {
    ByteState& s = rt().shadow[i];
    const auto unordered = [&](const Access& a) { return a.thread >= 0 && !ordered_after(a, by.thread, issued); };
    if (unordered(s.writer)) race(what, i, "a write", s.writer.thread);
    for (const Access& a : s.readers) {
      if (unordered(a)) race(what, i, "a read", a.thread);
    }
    if (s.more_readers >= 0) {
      const Clock& reads = rt().read_sets[s.more_readers];
      for (int32_t t = 0; t < int32_t(reads.size()); ++t) {
        if (reads[t] != 0 && unordered(Access{t, reads[t]})) race(what, i, "a read", t);
      }
    }
    s.writer = by;
    s.readers.fill(Access{});
    s.more_readers = -1;
    s.written = true;
    s.async_write = true;
  }
}

}  // namespace emu
