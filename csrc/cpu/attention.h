#pragma once
// Blockwise attention on the host (online softmax, O(S * block) memory), shared by
// flash_attn_fwd/bwd and vhead_decode.
#include <ATen/ATen.h>

#include <tuple>

namespace headmix::cpu {

// Which keys a query row sees (docs/math.md "Attention and its masks"): queries are
// bottom-right aligned, row i sits at key position i + offset with offset = S_k - S_q; causal
// forces right = 0.
struct KeyBand {
  int64_t seqlen_q, seqlen_k, offset, left, right;  // left/right: -1 = unbounded
  KeyBand(int64_t sq, int64_t sk, bool causal, int64_t window_left, int64_t window_right)
      : seqlen_q(sq), seqlen_k(sk), offset(sk - sq), left(window_left),
        right(causal ? 0 : window_right) {}
  // First / last key row i may see, before clamping to [0, S_k).
  int64_t first_key(int64_t i) const { return left < 0 ? 0 : i + offset - left; }
  int64_t last_key(int64_t i) const { return right < 0 ? seqlen_k - 1 : i + offset + right; }
  // First / last query row that sees key j (the inverse bands), before clamping to [0, S_q).
  int64_t first_query(int64_t j) const { return right < 0 ? 0 : j - offset - right; }
  int64_t last_query(int64_t j) const { return left < 0 ? seqlen_q - 1 : j - offset + left; }
};

// out [B, S_q, H, d_v] in q's dtype and lse [B, H, S_q] (float32, float64 for float64 inputs).
std::tuple<at::Tensor, at::Tensor> attention_forward(const at::Tensor& q, const at::Tensor& k,
                                                     const at::Tensor& v, double scale,
                                                     bool causal, int64_t window_left,
                                                     int64_t window_right);

}  // namespace headmix::cpu
