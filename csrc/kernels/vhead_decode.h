#pragma once
// Launchers of the vhead_decode kernels (torch-free; called by csrc/cuda/vhead_decode.cpp).
#include <cuda_runtime.h>

#include "params.h"
#include "vhead_decode_plan.h"

namespace headmix::kernels {

// Portable split-KV decode (sm_80 and later): bfloat16/float16 caches, d = d_v in {64, 128},
// 16-byte aligned rows. `plan` is plan_vhead_decode of the same shapes (its smem_bytes within the
// device's limit); with more than one split `workspace` holds plan.workspace_floats floats,
// 16-byte aligned, and a combine kernel follows on the same stream.
cudaError_t launch_vhead_decode_portable(const VheadDecodeParams& params, const VheadDecodePlan& plan,
                                         float* workspace, cudaStream_t stream);

}  // namespace headmix::kernels
