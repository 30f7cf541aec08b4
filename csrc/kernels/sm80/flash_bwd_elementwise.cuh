#pragma once
// The memory-bound steps around the flash-attention backward: D = rowsum(dO * O) - dlse
// before it (one warp per row, so each thread reads d/32 contiguous elements), and the
// conversion of the fp32 dQ workspace to dq = scale * dq_accum after it (atomic mode).
#include <cstdint>

#include "common/vec.cuh"
#include "params.h"

namespace headmix::kernels {

constexpr int kRowDotThreads = 256;

// D[b, h, i] for the row (b, i, h) of warp w; rows are numbered in [B, S_q, H] order.
template <typename T, int kHeadDim>
__global__ void __launch_bounds__(kRowDotThreads) flash_bwd_row_dot_kernel(const FlashAttnBwdParams p) {
  constexpr int kVec = kHeadDim / 32;
  const int64_t row = (int64_t(blockIdx.x) * kRowDotThreads + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const FlashAttnParams& a = p.attn;
  if (row >= a.batch * a.seqlen_q * a.heads) return;
  const int64_t h = row % a.heads, i = row / a.heads % a.seqlen_q, b = row / (a.heads * a.seqlen_q);
  float dout[kVec], out[kVec];
  load_floats<T, kVec>(static_cast<const T*>(p.dout) + b * p.dout_batch_stride + i * p.dout_row_stride +
                           h * p.dout_head_stride + lane * kVec, dout);
  load_floats<T, kVec>(static_cast<const T*>(p.out) + b * p.out_batch_stride + i * p.out_row_stride +
                           h * p.out_head_stride + lane * kVec, out);
  float dot = 0.f;
#pragma unroll
  for (int c = 0; c < kVec; ++c) dot = fmaf(dout[c], out[c], dot);
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffff, dot, offset);
  if (lane == 0) {
    const int64_t index = (b * a.heads + h) * a.seqlen_q + i;
    p.row_dot[index] = p.dlse != nullptr ? dot - p.dlse[index] : dot;
  }
}

constexpr int kDqConvertThreads = 256;
constexpr int kDqConvertVec = 4;

// dq = scale * dq_accum, both [B, S_q, H, d] contiguous (d is a multiple of kDqConvertVec).
template <typename T>
__global__ void __launch_bounds__(kDqConvertThreads) flash_bwd_dq_convert_kernel(const FlashAttnBwdParams p) {
  const FlashAttnParams& a = p.attn;
  const int64_t first = (int64_t(blockIdx.x) * kDqConvertThreads + threadIdx.x) * kDqConvertVec;
  if (first >= a.batch * a.seqlen_q * a.heads * a.head_dim) return;
  float values[kDqConvertVec];
  load_floats<float, kDqConvertVec>(p.dq_accum + first, values);
#pragma unroll
  for (int c = 0; c < kDqConvertVec; ++c) values[c] *= a.scale;
  store_floats<T, kDqConvertVec>(static_cast<T*>(p.dq) + first, values);
}

}  // namespace headmix::kernels
