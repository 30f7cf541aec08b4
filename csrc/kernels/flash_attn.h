#pragma once
// Launchers of the flash-attention kernels (torch-free; called by csrc/cuda/flash_attn.cpp).
// Both kernel families take bf16/fp16, d = d_v in {64, 128}, and 16-byte aligned operands;
// other element types and head dims return cudaErrorInvalidValue.
#include <cuda_runtime.h>

#include "params.h"

namespace headmix::kernels {

// Portable forward (sm_80 and later): out and lse.
cudaError_t launch_flash_attn_fwd_portable(const FlashAttnFwdParams& params, cudaStream_t stream);

// Portable backward: D = rowsum(dout * out) - dlse, then dk/dv (and dq through fp32 atomics
// into dq_accum, or a deterministic dq pass when dq_accum is null), then dq in `dtype`.
cudaError_t launch_flash_attn_bwd_portable(const FlashAttnBwdParams& params, cudaStream_t stream);

// The memory-bound ends of every backward, shared with the Hopper one: the row-dot pass
// (row_dot = rowsum(dout * out) - dlse) before it, and after it dq in `dtype`, either
// converted from dq_accum or, when dq_accum is null, by the deterministic dq pass.
cudaError_t launch_flash_attn_bwd_row_dot(const FlashAttnBwdParams& params, cudaStream_t stream);
cudaError_t launch_flash_attn_bwd_dq_finish(const FlashAttnBwdParams& params, cudaStream_t stream);

#if HEADMIX_WITH_SM90_KERNELS
// Hopper kernels (sm_90a only: TMA + wgmma, warp-specialised), built when HEADMIX_CUDA_ARCHS
// lists 90a. Same contract and coverage as the portable kernels.
cudaError_t launch_flash_attn_fwd_sm90(const FlashAttnFwdParams& params, cudaStream_t stream);
cudaError_t launch_flash_attn_bwd_sm90(const FlashAttnBwdParams& params, cudaStream_t stream);
#endif

}  // namespace headmix::kernels
