#pragma once
// HEADMIX_CACHE_RANGE_CHECKS, one rule for both CUDA cache ops (kv_cache_append, vhead_decode):
// unless it is "0", they read cache_seqlens / block_table / pos on the host before launching
// and raise a clear error for a sequence that does not fit its cache, a page id out of range
// or a position past the RoPE tables. That read is a device-to-host copy, one sync per call;
// "0" skips it for loops that keep lengths right themselves, and then the kernels' own guards
// answer (append skips rows it cannot place, decode gives NaN out and lse). Under CUDA-graph
// capture the kernel paths read nothing on the host whatever it says (cuda/cache_checks.h).
// Plain C++, so headmix._C reports it in a CPU-only build too (tests/test_cache_range_checks.py).
#include <cstdlib>
#include <cstring>

namespace headmix {

inline bool cache_range_checks_enabled() {
  const char* env = std::getenv("HEADMIX_CACHE_RANGE_CHECKS");
  return env == nullptr || std::strcmp(env, "0") != 0;
}

}  // namespace headmix
