#pragma once
// Launchers of the mix_heads kernels (torch-free; called by csrc/cuda/mix_heads.cpp).
#include <cuda_runtime.h>

#include "params.h"

namespace headmix::kernels {

// Portable forward (sm_80 and later): y = rope(w-mix of x). Returns the launch error, if any.
cudaError_t launch_mix_heads_fwd_portable(const MixHeadsParams& params, cudaStream_t stream);

}  // namespace headmix::kernels
