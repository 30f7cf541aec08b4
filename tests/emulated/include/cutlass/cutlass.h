#pragma once
// CUTLASS's thread-index helpers as on the device: their host branches answer 0 (thread 0,
// warp 0), which would make every emulated thread believe it is the first.
#include "cute_atoms.h"

#define thread0 thread0_on_gpu
#define canonical_lane_idx canonical_lane_idx_on_gpu
#define canonical_warp_idx_sync canonical_warp_idx_sync_on_gpu
#define canonical_warp_idx canonical_warp_idx_on_gpu
#define canonical_warp_group_idx canonical_warp_group_idx_on_gpu
#include_next <cutlass/cutlass.h>
#undef thread0
#undef canonical_lane_idx
#undef canonical_warp_idx_sync
#undef canonical_warp_idx
#undef canonical_warp_group_idx

namespace cutlass {

inline bool thread0() { return threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0; }
inline int canonical_lane_idx() { return int(threadIdx.x) % NumThreadsPerWarp; }
inline int canonical_warp_idx_sync() { return __shfl_sync(0xffffffffu, int(threadIdx.x) / NumThreadsPerWarp, 0); }
inline int canonical_warp_idx() { return int(threadIdx.x) / NumThreadsPerWarp; }
inline int canonical_warp_group_idx() {
  return __shfl_sync(0xffffffffu, int(threadIdx.x) / NumThreadsPerWarpGroup, 0);
}

}  // namespace cutlass
