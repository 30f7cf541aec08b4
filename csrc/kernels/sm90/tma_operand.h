#pragma once
// Host side of the sm90 launchers: a [B, S, heads, d] operand described for a TMA descriptor.
#include <cstdint>

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

}  // namespace headmix::kernels::sm90
