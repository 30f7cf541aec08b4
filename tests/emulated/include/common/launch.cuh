#pragma once
// The emulator's launch_kernel (csrc/kernels/common/launch.cuh on a GPU): every CTA of the grid
// runs on the CPU emulator of cuda_emu.h before the call returns.
#include <cstddef>

#include "cuda_emu.h"

namespace headmix::kernels {

template <class... Params, class... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t,
                          const Args&... args) {
  emu::launch(grid, block, smem_bytes, [&] { kernel(args...); });
  return cudaSuccess;
}

}  // namespace headmix::kernels
