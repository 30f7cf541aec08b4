#pragma once
// Launcher of the kv_cache_append kernel (torch-free; called by csrc/cuda/kv_cache_append.cpp).
#include <cuda_runtime.h>

#include "params.h"

namespace headmix::kernels {

// Portable append (sm_80 and later): float32, float16 or bfloat16, any head dims and strides
// (16-byte vectors where sizes, strides and pointers allow, single elements otherwise).
cudaError_t launch_kv_cache_append_portable(const KvCacheAppendParams& params, cudaStream_t stream);

}  // namespace headmix::kernels
