#pragma once
// Stand-in for CuTe's cp.async atoms (tests/emulated/cuda_emu.h): a 16-byte copy joins the
// thread's open commit group and lands when cp.async.wait_group retires the group; without
// `pred` it zero-fills and reads nothing. The source must lie in a registered global buffer.
#include "cuda_emu.h"
#include "cute/numeric/int.hpp"

namespace cute {

template <class TS, class TD = TS>
struct SM80_CP_ASYNC_CACHEGLOBAL_ZFILL {
  static void copy(TS const& gmem_src, TD& smem_dst, bool pred) {
    static_assert(sizeof(TS) == 16 && sizeof(TD) == 16);
    emu::check_shared(&smem_dst, 16, "cp.async destination");
    const char* src = reinterpret_cast<const char*>(&gmem_src);
    if (pred) {
      if (reinterpret_cast<uintptr_t>(src) % 16 != 0) emu::fail("cp.async source not 16-byte aligned");
      bool inside = false;
      for (const auto& [base, bytes] : emu::rt().global_reads) inside |= src >= base && src + 16 <= base + bytes;
      if (!inside) emu::fail("cp.async reads outside the cache");
      if (emu::rt().count_nans) emu::rt().nans_read += emu::rt().count_nans(src);
    }
    emu::rt().current->open_group.push_back({&smem_dst, &gmem_src, pred});
  }
};

inline void cp_async_fence() {
  auto* f = emu::rt().current;
  f->committed.push_back(std::move(f->open_group));
  f->open_group.clear();
}

template <int N>
inline void cp_async_wait() {
  auto* f = emu::rt().current;
  while (f->committed.size() > size_t(N)) {
    for (const auto& c : f->committed.front()) emu::land(c);
    f->committed.pop_front();
  }
}

}  // namespace cute
