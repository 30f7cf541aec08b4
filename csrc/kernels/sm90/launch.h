#pragma once
// Host side shared by the sm90 launchers: operands described for TMA descriptors.
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "params.h"

#include "sm90/flash_config.cuh"

namespace headmix::kernels::sm90 {

// A [B, S, heads, d] operand (d contiguous, strides in elements) as a TMA descriptor will
// describe it. cuTensorMapEncodeTiled refuses a base address that is not 16-byte aligned, a dim
// outside [1, 2^32] or a stride that is not a multiple of 16 bytes below 2^40, and CuTe's
// make_tma_copy then only prints and leaves a zeroed descriptor, on which the kernel would wait
// forever: the launchers check encodable() first and return an error instead.
struct TmaOperand {
  const void* ptr;
  int64_t rows, heads, batch;
  int64_t row_stride, head_stride, batch_stride;

  // A size-1 dim is never stepped along, so the tensor's stride there is arbitrary (PyTorch
  // leaves it free), yet the driver validates it: such a dim gets its packed stride instead.
  TmaOperand(const void* p, int64_t rows_, int64_t heads_, int64_t batch_, int64_t row_stride_,
             int64_t head_stride_, int64_t batch_stride_, int64_t head_dim)
      : ptr(p), rows(rows_), heads(heads_), batch(batch_),
        row_stride(rows_ <= 1 ? heads_ * head_dim : row_stride_),
        head_stride(heads_ <= 1 ? head_dim : head_stride_),
        batch_stride(batch_ <= 1 ? rows_ * heads_ * head_dim : batch_stride_) {}

  bool encodable(int64_t head_dim, int64_t element_bytes) const {
    constexpr int64_t kMaxDim = int64_t(1) << 32, kMaxStride = int64_t(1) << 40;
    bool ok = reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
    for (const int64_t dim : {rows, head_dim, heads, batch}) ok = ok && dim >= 1 && dim <= kMaxDim;
    for (const int64_t stride : {row_stride, head_stride, batch_stride}) {
      const int64_t bytes = stride * element_bytes;
      ok = ok && bytes > 0 && bytes % 16 == 0 && bytes < kMaxStride;
    }
    return ok;
  }

  // The (S, d, heads, B) tensor for make_tma_copy.
  template <typename Element, int kHeadDim>
  auto tensor() const {
    return make_gmem_operand(static_cast<Element*>(const_cast<void*>(ptr)), rows, kHeadDim, heads, batch, row_stride,
                             head_stride, batch_stride);
  }
};

// True when every operand can be described by a TMA descriptor.
template <int kHeadDim, typename Element, class... Operands>
bool all_encodable(const Operands&... operands) {
  return (operands.encodable(kHeadDim, sizeof(Element)) && ...);
}

}  // namespace headmix::kernels::sm90
