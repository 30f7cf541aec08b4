#pragma once
// Whether a CUDA cache op validates cache_seqlens / block_table / pos on the host now
// (check_cache_ranges). The rule is cache_range_checks_enabled (HEADMIX_CACHE_RANGE_CHECKS);
// while the stream is capturing a CUDA graph nothing is read on the host (a sync is not
// allowed there), and the kernels guard every access themselves.
#include <c10/cuda/CUDAGraphsC10Utils.h>

#include "cache_range_checks.h"

namespace headmix::cuda {

inline bool host_range_checks() {
  if (c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None) return false;
  return cache_range_checks_enabled();
}

}  // namespace headmix::cuda
