#pragma once
// The softmax scale of every attention op (flash_attn_fwd/bwd, vhead_decode, on every backend):
// the caller's, or 1/sqrt(d) as in FlashAttention. This is the source; the reference and the
// test baselines mirror it in python/headmix/reference.py attention_scale, and
// tests/test_shared_definitions.py checks that the two agree.
//
// A caller's scale must be positive and finite: the kernels' online softmax keeps the running
// max of the raw scores (max of scale * s only while scale > 0), and a zero or infinite scale
// turns masked -inf scores into NaN. The fakes state the same rule (_checks.check_softmax_scale).
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <optional>

namespace headmix {

inline double attention_scale(std::optional<double> scale, int64_t head_dim) {
  TORCH_CHECK(!scale || (std::isfinite(*scale) && *scale > 0.0),
              "scale must be a positive finite number (or None for 1/sqrt(d)), got ", *scale);
  return scale ? *scale : 1.0 / std::sqrt(double(head_dim));
}

}  // namespace headmix
