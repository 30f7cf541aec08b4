#pragma once
// Emulated cluster intrinsics for one-CTA clusters: elect.sync elects lane 0 of a full warp
// (CuTe's host branch would elect every lane), the cluster barrier is the CTA barrier, and the
// cluster id is the block id.
#include "cute_atoms.h"
#include "sync_sm90.h"

#define elect_one_sync elect_one_sync_on_gpu
#define cluster_sync cluster_sync_on_gpu
#define cluster_id_in_grid cluster_id_in_grid_on_gpu
#include_next <cute/arch/cluster_sm90.hpp>
#undef elect_one_sync
#undef cluster_sync
#undef cluster_id_in_grid

namespace cute {

inline uint32_t elect_one_sync() { return emu::elect_one() ? 1u : 0u; }
inline void cluster_sync() { __syncthreads(); }
inline dim3 cluster_id_in_grid() { return dim3(blockIdx.x, blockIdx.y, blockIdx.z); }

}  // namespace cute
