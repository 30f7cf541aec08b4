#pragma once
// When the CUDA cache ops validate cache_seqlens / block_table / pos on the host
// (check_cache_ranges: a device-to-host copy, so one sync per call). HEADMIX_CACHE_RANGE_CHECKS:
//   unset  kv_cache_append checks, so an overflowing append is rejected before anything is
//          written; vhead_decode does not (its kernel answers NaN for a bad sequence instead),
//          so a decode step costs no sync;
//   "0"    neither checks (serving loops that track lengths on the host, like KVCache);
//   other  both check (debugging).
// Nothing is read on the host while the stream is capturing a CUDA graph; the kernels guard
// every access themselves.
#include <c10/cuda/CUDAGraphsC10Utils.h>

#include <cstdlib>
#include <string>

namespace headmix::cuda {

enum class CacheOp { kAppend, kDecode };

inline bool host_range_checks(CacheOp op) {
  if (c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None) return false;
  const char* env = std::getenv("HEADMIX_CACHE_RANGE_CHECKS");
  if (env == nullptr || *env == '\0') return op == CacheOp::kAppend;
  return std::string(env) != "0";
}

}  // namespace headmix::cuda
