#pragma once
// Launchers of the mix_heads kernels (torch-free; called by csrc/cuda/mix_heads.cpp).
#include <cuda_runtime.h>

#include "params.h"

namespace headmix::kernels {

// Portable head mix (sm_80 and later): the forward (rotate_inputs = false) or the input
// gradient (w transposed through its strides, rotate_inputs = true).
cudaError_t launch_mix_heads_portable(const MixHeadsParams& params, cudaStream_t stream);

// Token chunks of the split-K weight gradient: enough CTAs to fill the GPU a few times over.
// The caller sizes `partial` as chunks x H_in x H_out floats.
int64_t mix_heads_dw_chunks(int64_t total_tokens, int64_t heads_in, int64_t heads_out, int num_sms);

// Portable weight gradient, deterministic two-stage split-K.
cudaError_t launch_mix_heads_dw_portable(const MixHeadsWeightGradParams& params, cudaStream_t stream);

}  // namespace headmix::kernels
