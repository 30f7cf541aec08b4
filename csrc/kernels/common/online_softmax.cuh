#pragma once
// Online softmax over score tiles held in registers as (rows, columns) views, the layout of
// both mma.sync and wgmma accumulators: each row is spread over the 4 threads of a quad, so
// row reductions finish with two xor-shuffles. Scores stay raw (q.k); the softmax scale is
// folded into one FMA with log2(e) so every exponential is one exp2f (MUFU.EX2).
//
// Masked scores are -inf. A row that has seen no allowed key keeps max = -inf; it is shifted
// by 0 instead (exp2(-inf) = 0, never NaN), and finishes with sum 0: output 0, lse = -inf.
#include <cute/tensor.hpp>

#include <cmath>

namespace headmix::kernels {

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
}

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffff, x, 1);
  return x + __shfl_xor_sync(0xffffffff, x, 2);
}

// exp2 shift of a row whose running max is `row_max` (raw score units).
__device__ __forceinline__ float exp2_shift(float row_max, float scale_log2) {
  return row_max == -INFINITY ? 0.f : row_max * scale_log2;
}

template <int kRows>
struct OnlineSoftmax {
  float row_max[kRows];  // running max of the raw scores
  float row_sum[kRows];  // this thread's share of sum exp2(scale_log2 * (s - max))
  float scale;           // softmax scale
  float scale_log2;      // softmax scale * log2(e)

  __device__ explicit OnlineSoftmax(float softmax_scale)
      : scale(softmax_scale), scale_log2(softmax_scale * float(M_LOG2E)) {
    for (int r = 0; r < kRows; ++r) {
      row_max[r] = -INFINITY;
      row_sum[r] = 0.f;
    }
  }

  // Folds one score tile in: rescales the output rows by exp2 of the max change and turns
  // the scores into unnormalised probabilities in place. scores (rows, cols), out (rows, d).
  template <class Scores, class Out>
  __device__ __forceinline__ void update(Scores& scores, Out& out) {
    float rescale[kRows];
    exp_scores(scores, rescale);
    rescale_rows(out, rescale);
  }

  // The two halves of update(), for kernels whose output accumulator is still being written
  // by an asynchronous GEMM while the next tile's scores are exponentiated (Hopper): the new
  // row maxima, the probabilities and the row sums first, returning each row's rescale factor.
  template <class Scores>
  __device__ __forceinline__ void exp_scores(Scores& scores, float (&rescale)[kRows]) {
    static_assert(decltype(cute::size<0>(scores))::value == kRows);
    CUTE_UNROLL
    for (int r = 0; r < kRows; ++r) {
      float tile_max = row_max[r];
      CUTE_UNROLL
      for (int c = 0; c < cute::size<1>(scores); ++c) tile_max = fmaxf(tile_max, scores(r, c));
      tile_max = quad_max(tile_max);
      const float shift = exp2_shift(tile_max, scale_log2);
      rescale[r] = exp2f(row_max[r] * scale_log2 - shift);
      row_max[r] = tile_max;
      float sum = row_sum[r] * rescale[r];
      CUTE_UNROLL
      for (int c = 0; c < cute::size<1>(scores); ++c) {
        scores(r, c) = exp2f(fmaf(scores(r, c), scale_log2, -shift));
        sum += scores(r, c);
      }
      row_sum[r] = sum;
    }
  }

  // Then, once the output rows are no longer in flight, their rescale.
  template <class Out>
  __device__ __forceinline__ static void rescale_rows(Out& out, const float (&rescale)[kRows]) {
    CUTE_UNROLL
    for (int r = 0; r < kRows; ++r) {
      CUTE_UNROLL
      for (int c = 0; c < cute::size<1>(out); ++c) out(r, c) *= rescale[r];
    }
  }

  // Normalises the output rows and returns, per row, the natural-log lse (-inf: no keys).
  template <class Out>
  __device__ __forceinline__ void finish(Out& out, float (&lse)[kRows]) {
    CUTE_UNROLL
    for (int r = 0; r < kRows; ++r) {
      const float sum = quad_sum(row_sum[r]);
      const float inv = sum > 0.f ? 1.f / sum : 0.f;
      lse[r] = sum > 0.f ? row_max[r] * scale + logf(sum) : -INFINITY;
      CUTE_UNROLL
      for (int c = 0; c < cute::size<1>(out); ++c) out(r, c) *= inv;
    }
  }
};

}  // namespace headmix::kernels
