#pragma once
// Host side shared by the sm90 launchers: operands described for TMA descriptors, the
// (element type, head dim) dispatch, and the launch of a warp-specialised kernel.
#include <cuda_runtime.h>

#include <cstdint>

#include "params.h"

#include "sm90/flash_config.cuh"

namespace headmix::kernels::sm90 {

// TMA wants every global stride to be a multiple of 16 bytes, even along a dim of size 1
// (whose stride the bindings leave free); any such value is right there, index 0 only.
inline int64_t tma_stride(int64_t stride, int64_t size, int64_t element_bytes) {
  return size <= 1 ? 16 / element_bytes : stride;
}

// (S, d, heads, B) view of ptr with the given element strides, ready for make_tma_copy.
template <typename Element, int kHeadDim, typename Pointer>
auto tma_operand(Pointer ptr, int64_t rows, int64_t heads, int64_t batch, int64_t row_stride, int64_t head_stride,
                 int64_t batch_stride) {
  constexpr int64_t kBytes = sizeof(Element);
  return make_gmem_operand(static_cast<Element*>(ptr), rows, kHeadDim, heads, batch,
                           tma_stride(row_stride, rows, kBytes), tma_stride(head_stride, heads, kBytes),
                           tma_stride(batch_stride, batch, kBytes));
}

// fn(Element{}, Int<kHeadDim>{}) for the instantiated bf16/fp16 x d 64/128 combinations.
template <class Fn>
cudaError_t with_element_and_head_dim(DType dtype, int64_t head_dim, Fn&& fn) {
  if (dtype == DType::kBFloat16) {
    return head_dim == 64 ? fn(cutlass::bfloat16_t{}, Int<64>{}) : fn(cutlass::bfloat16_t{}, Int<128>{});
  }
  return head_dim == 64 ? fn(cutlass::half_t{}, Int<64>{}) : fn(cutlass::half_t{}, Int<128>{});
}

// kernel<<<grid, Cfg::kThreads, sizeof(Cfg::SharedStorage), stream>>>(args), after raising the
// kernel's dynamic shared-memory limit to that size.
template <class Cfg, class Kernel, class Args>
cudaError_t launch_kernel(Kernel kernel, dim3 grid, const Args& args, cudaStream_t stream) {
  constexpr int kSmem = sizeof(typename Cfg::SharedStorage);
  const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (err != cudaSuccess) return err;
  kernel<<<grid, Cfg::kThreads, kSmem, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace headmix::kernels::sm90
