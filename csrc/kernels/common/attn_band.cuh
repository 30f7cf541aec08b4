#pragma once
// The causal / sliding-window band of flash attention (docs/math.md): query row i sits at key
// position i + S_k - S_q and sees keys [first_key(i), key_end(i)). Kernels use it three ways:
// the key range of a query tile (forward and dq loop bounds, so blocks outside the band are
// never visited), the query range of a key tile (dk/dv loop bounds), and a per-element test
// for the few tiles that straddle the band edge or the sequence tails.
#include <cuda_runtime.h>

#include <cute/tensor.hpp>

#include "params.h"

namespace headmix::kernels {

struct AttnBand {
  int seqlen_q, seqlen_k;
  int offset;  // S_k - S_q: key position of query row 0
  int left;    // -1 = unbounded
  int right;   // -1 = unbounded, 0 = causal

  __host__ __device__ AttnBand(int seqlen_q_, int seqlen_k_, int left_, int right_)
      : seqlen_q(seqlen_q_), seqlen_k(seqlen_k_), offset(seqlen_k_ - seqlen_q_), left(left_), right(right_) {}
  __host__ __device__ explicit AttnBand(const FlashAttnParams& p)
      : AttnBand(int(p.seqlen_q), int(p.seqlen_k), int(p.window_left), int(p.window_right)) {}

  // Keys of query row i, clamped to [0, S_k); empty when first_key(i) >= key_end(i).
  __host__ __device__ int first_key(int i) const { return left < 0 ? 0 : max(0, i + offset - left); }
  __host__ __device__ int key_end(int i) const { return right < 0 ? seqlen_k : min(seqlen_k, i + offset + right + 1); }
  // Queries that see key j, clamped to [0, S_q).
  __host__ __device__ int first_query(int j) const { return right < 0 ? 0 : max(0, j - offset - right); }
  __host__ __device__ int query_end(int j) const { return left < 0 ? seqlen_q : min(seqlen_q, j - offset + left + 1); }

  // Keys any row of [m_begin, m_end) sees: rows' ranges are monotone in i, so the ends suffice.
  __host__ __device__ int2 keys_of_rows(int m_begin, int m_end) const {
    return make_int2(first_key(m_begin), key_end(m_end - 1));
  }
  // Queries any key of [n_begin, n_end) is seen by.
  __host__ __device__ int2 queries_of_keys(int n_begin, int n_end) const {
    return make_int2(first_query(n_begin), query_end(n_end - 1));
  }

  // True when some (row, key) pair of the tile is outside the band or past S_k; rows past S_q
  // are never stored, so they need no mask.
  __host__ __device__ bool tile_needs_mask(int m_begin, int m_end, int n_begin, int n_end) const {
    return n_end > seqlen_k || (left >= 0 && first_key(m_end - 1) > n_begin) ||
           (right >= 0 && key_end(m_begin) < n_end);
  }
};

// Sets the scores outside the band (or past S_k) to -inf. scores is a (rows, cols) register
// view of the tile at (m_begin, n_begin); coords the identity tensor partitioned and viewed
// the same way, giving each register's (row, col) inside the tile.
template <class Scores, class Coords>
__device__ __forceinline__ void mask_to_band(Scores& scores, const Coords& coords, const AttnBand& band,
                                             int m_begin, int n_begin) {
  CUTE_UNROLL
  for (int r = 0; r < cute::size<0>(scores); ++r) {
    const int i = m_begin + cute::get<0>(coords(r, 0));
    const int lo = band.first_key(i) - n_begin, hi = band.key_end(i) - n_begin;
    CUTE_UNROLL
    for (int c = 0; c < cute::size<1>(scores); ++c) {
      const int j = cute::get<1>(coords(0, c));
      if (j < lo || j >= hi) scores(r, c) = -INFINITY;
    }
  }
}

}  // namespace headmix::kernels
