#pragma once
// The softmax scale of every attention op (flash_attn_fwd/bwd, vhead_decode, on every backend):
// the caller's, or 1/sqrt(d) as in FlashAttention. This is the source; the reference and the
// test baselines mirror it in python/headmix/reference.py attention_scale, and
// tests/test_shared_definitions.py checks that the two agree.
#include <cmath>
#include <cstdint>
#include <optional>

namespace headmix {

inline double attention_scale(std::optional<double> scale, int64_t head_dim) {
  return scale ? *scale : 1.0 / std::sqrt(double(head_dim));
}

}  // namespace headmix
