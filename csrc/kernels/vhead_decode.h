#pragma once
// Launchers of the vhead_decode kernels (torch-free; called by csrc/cuda/vhead_decode.cpp).
#include <cuda_runtime.h>

#include "params.h"
#include "vhead_decode_plan.h"

namespace headmix::kernels {

// Portable split-KV decode (sm_80 and later): bfloat16/float16 caches, d = d_v in {64, 128},
// 16-byte aligned rows. p.rows_per_cta, p.row_tiles and p.num_splits come from
// plan_vhead_decode; with more than one split p.partial_out / p.partial_lse hold
// plan.workspace_floats floats and a combine kernel follows on the same stream.
cudaError_t launch_vhead_decode_portable(const VheadDecodeParams& params, cudaStream_t stream);

}  // namespace headmix::kernels
