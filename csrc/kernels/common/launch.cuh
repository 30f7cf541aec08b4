#pragma once
// The one place the launchers use CUDA's <<<grid, block, smem, stream>>>: the CPU emulator
// (tests/emulated) provides a header of this name that runs the same launcher code on the CPU.
#include <cuda_runtime.h>

#include <cstddef>

namespace headmix::kernels {

// Launches kernel<<<grid, block, smem_bytes, stream>>>(args...), first raising the kernel's
// dynamic shared-memory limit when it needs more than the default 48 KiB.
template <class... Params, class... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                          cudaStream_t stream, const Args&... args) {
  if (smem_bytes > 48 * 1024) {
    const cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_bytes));
    if (err != cudaSuccess) return err;
  }
  kernel<<<grid, block, smem_bytes, stream>>>(args...);
  return cudaGetLastError();
}

}  // namespace headmix::kernels
