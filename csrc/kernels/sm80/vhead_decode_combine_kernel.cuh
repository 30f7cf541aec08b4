#pragma once
// Second stage of split-KV decode: merges the num_splits partial rows (each normalised over its
// own keys, with its lse) into out and lse, weighting split s by exp(lse_s - max lse) in split
// order, so the result is bitwise reproducible. One warp per output row (b, h, s); lanes own
// columns lane, lane + 32, ..., so every partial read is a coalesced 128-byte line. Splits that
// saw no key (lse = -inf) add nothing; a NaN lse (a sequence the split kernel found invalid)
// makes the row NaN.
#include <cmath>
#include <cstdint>

#include "common/vec.cuh"
#include "params.h"

namespace headmix::kernels::sm80 {

constexpr int kCombineWarps = 4;

template <typename T, int kHeadDim>
__global__ void __launch_bounds__(kCombineWarps * 32) vhead_decode_combine_kernel(const VheadDecodeParams p) {
  constexpr int kCols = kHeadDim / 32;
  const int lane = threadIdx.x % 32;
  const int64_t rows = p.batch * p.heads * p.seqlen_q;  // also the stride between splits
  const int64_t row = int64_t(blockIdx.x) * kCombineWarps + threadIdx.x / 32;  // index into lse [B, H, S_q]
  if (row >= rows) return;

  float m = -INFINITY;
  bool nan = false;
  for (int s = lane; s < p.num_splits; s += 32) {
    const float lse = p.partial_lse[s * rows + row];
    nan |= isnan(lse);
    m = fmaxf(m, lse);
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  nan = __any_sync(0xffffffffu, nan);

  float sum = 0.f, o[kCols] = {};
  if (m != -INFINITY) {  // else no split saw a key: output 0, lse -inf
    for (int s = 0; s < p.num_splits; ++s) {
      const float lse = p.partial_lse[s * rows + row];
      const float weight = lse == -INFINITY ? 0.f : expf(lse - m);
      sum += weight;
      const float* partial = p.partial_out + (s * rows + row) * kHeadDim + lane;
#pragma unroll
      for (int c = 0; c < kCols; ++c) o[c] += weight * partial[32 * c];
    }
  }
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  const int64_t s_q = row % p.seqlen_q, h = row / p.seqlen_q % p.heads, b = row / (p.seqlen_q * p.heads);
  T* out = static_cast<T*>(p.out) + ((b * p.seqlen_q + s_q) * p.heads + h) * kHeadDim + lane;
#pragma unroll
  for (int c = 0; c < kCols; ++c) out[32 * c] = from_float<T>(nan ? NAN : o[c] * inv);
  if (lane == 0) p.lse[row] = nan ? NAN : sum > 0.f ? m + logf(sum) : -INFINITY;
}

}  // namespace headmix::kernels::sm80
