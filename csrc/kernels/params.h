#pragma once
// Plain parameter structs passed from the torch bindings (csrc/cuda) to the torch-free
// launchers. Strides are in elements, int64; every pointer's layout is named beside it.
#include <cstdint>

namespace headmix::kernels {

enum class DType : int { kFloat32, kFloat16, kBFloat16 };

struct MixHeadsParams {
  const void* x;      // B x N x H_in x d, element type `dtype`, last dim contiguous
  const float* w;     // H_in x H_out, fp32, contiguous
  void* y;            // B x N x H_out x d, element type `dtype`, contiguous
  const float* cos;   // max_pos x rotary_half, fp32, contiguous; nullptr = no RoPE
  const float* sin;   // max_pos x rotary_half, fp32, contiguous; nullptr = no RoPE
  DType dtype;
  int64_t batch;       // B
  int64_t tokens;      // N
  int64_t heads_in;    // H_in
  int64_t heads_out;   // H_out
  int64_t head_dim;    // d
  int64_t x_batch_stride, x_token_stride, x_head_stride;  // elements
  int64_t pseudo;       // P: head j of token n sits at position pos_offset + n*P + j/(H_out/P)
  int64_t pos_offset;   // position of token 0's first pseudo-token
  int64_t rotary_half;  // r/2: features [0, r/2) pair with [r/2, r); 0 = no RoPE
};

}  // namespace headmix::kernels
