#pragma once
// Portable (sm_80+) flash-decoding over a KV cache of virtual heads: the split kernel of
// vhead_decode.
//
// Rows and latents. A CTA owns one (sequence b, latent, row tile, key split). Without w_k/w_v
// the latent is kv head g and the rows are its GQA group's query heads times the S_q query
// steps. With them w_k is absorbed into the queries: s_r(t) = sum_j w_k[j, G(r)] q_r . K'[t, j],
// so every query head scores against the same H'*d-wide latent row and one CTA takes all H*S_q
// rows (in 16- or 32-row tiles). The cache is streamed once per row tile instead of once per kv
// head, which is what rebuilding K_g = sum_j w_k[j, g] K'_j per tile would cost (or H_kv rebuilt
// tiles in shared memory); the absorbed GEMM does H'x the multiply-adds of a plain one, which
// decode, at a few FLOP per cached byte, has to spare. The weights are applied in fp32 to each
// head's score tile q_r . K'_j rather than to the queries before the bf16 MMA: rounding
// q' = w_k q to bf16 shifts every score by ~2^-9 of its size (an lse error 10^4 times
// PyTorch's), while bf16 q and K' multiply exactly in fp32. w_v goes onto P: o_r = sum_j (w_v[j, G(r)] p_r) V'_j, so the output
// accumulator stays d wide for any H' (and P is rounded once either way). Row r of a latent is
// query step r / heads_per_latent, head r % heads_per_latent.
//
// Warps split keys. Decode has too few rows to give each warp its own 16 (FlashAttention-2's
// split), so each of the 4 warps holds all of the CTA's rows and runs its own online softmax
// (common/online_softmax.cuh) over every 4th key block of the split (32 keys; 16 with 32 rows,
// whose output accumulators need the registers), streaming the K'_j then V'_j tiles (block x d, one per latent head)
// of each block through a private 3-stage cp.async ring, synchronised by __syncwarp alone. At
// the end the warps' (max, sum, output) merge through shared memory and the CTA writes out/lse
// directly (one split) or an fp32 partial for the combine kernel.
//
// MMAs (sm80/warp_mma.cuh): Q K'_j^T reads the staged query rows and K'_j with ldmatrix;
// P V'_j uses the S accumulators, scaled per row by w_v, as the A operand and reads V'_j with
// ldmatrix.trans.
//
// Stages, one function each: DecodeTile (the CTA's sequence, latent, rows and key blocks, with
// the mask band of common/attn_band.cuh over query steps), stage_rows (queries and weights to
// shared memory), WarpRing (a warp's cp.async ring), block_scores / scale_and_mask / block_pv
// (one key block: S, the band, O += P V), attend_warp_blocks (a warp's blocks through the
// softmax), stash_warp and merge_and_store (the warp merge and the output rows).
//
// Reads. Only cache rows inside the split's key range and below cache_seqlens[b] are loaded;
// the rest of a tile is zero-filled by cp.async without a global read and masked to -inf. A
// sequence whose length is outside [0, capacity], or whose pages are outside [0, num_blocks),
// gets NaN outputs: a loud answer without a host sync (the binding can also check on the host).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include <cute/tensor.hpp>

#include "common/attn_band.cuh"
#include "common/online_softmax.cuh"
#include "common/vec.cuh"
#include "params.h"
#include "sm80/warp_mma.cuh"
#include "vhead_decode_plan.h"

namespace headmix::kernels::sm80 {

constexpr uint32_t kNoRow = 0xffffffffu;

// Offset of cache row t of sequence b (without the head) in 16-byte chunks, so that it fits the
// 32-bit shuffles of the tile loads (the binding keeps caches under 64 GiB); kNoRow when its
// page id is out of range.
__device__ __forceinline__ uint32_t cache_row_chunk(const VheadDecodeParams& p, int64_t b, int t) {
  const CacheLayout& c = p.layout;
  if (c.block_table == nullptr) return uint32_t((b * p.cache_batch_stride + t * p.cache_row_stride) / 8);
  const int page = __ldg(c.block_table + b * c.table_stride + t / c.block_size);
  if (page < 0 || page >= c.num_blocks) return kNoRow;
  return uint32_t((page * p.cache_batch_stride + (t % c.block_size) * p.cache_row_stride) / 8);
}

template <typename T>
__device__ __forceinline__ float load_weight(const VheadDecodeParams& p, const void* w, int64_t j, int64_t g) {
  const int64_t i = j * p.kv_heads + g;
  return p.w_fp32 ? __ldg(static_cast<const float*>(w) + i) : to_float(static_cast<const T*>(w)[i]);
}

// m16n8 accumulator tiles acc[kMTiles][kTiles][4] (sm80/warp_mma.cuh: c[2 half + e] is row
// g + 8 half, column 2q + e) as the (rows, cols) register view of common/online_softmax.cuh:
// thread row (half, mi), column (e, tile).
template <int kMTiles, int kTiles>
__device__ __forceinline__ auto acc_rows_cols(float (&acc)[kMTiles][kTiles][4]) {
  using namespace cute;
  return make_tensor(&acc[0][0][0],
                     make_layout(make_shape(make_shape(_2{}, Int<kMTiles>{}), make_shape(_2{}, Int<kTiles>{})),
                                 make_stride(make_stride(_2{}, Int<kTiles * 4>{}), make_stride(_1{}, _4{}))));
}

template <typename T_, int kHeadDim_, int kMTiles_>
struct DecodeKernel {
  using T = T_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kMTiles = kMTiles_;
  using Tiles = VheadDecodeTiles;
  static constexpr int kWarps = Tiles::kWarps;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kRows = 16 * kMTiles;          // query rows of the CTA
  static constexpr int kBlockN = Tiles::block_keys(kRows);  // keys per block
  static constexpr int kStages = Tiles::kStages;
  static constexpr int kChunks = kHeadDim / 8;        // 16-byte chunks per row
  static constexpr int kRowsPerCopy = 32 / kChunks;   // rows a warp's cp.async instruction covers
  static constexpr int kTile = kBlockN * kHeadDim;    // elements of one ring stage
  static constexpr int kNTiles = kBlockN / 8;         // 8-key accumulator tiles of S
  static constexpr int kDTiles = kHeadDim / 8;        // 8-column accumulator tiles of O
  static constexpr int kMergeRow = kHeadDim + Tiles::kMergePad;  // floats; keeps float2 stores conflict-free
  static_assert(kHeadDim == 64 || kHeadDim == 128, "d must be 64 or 128");
  static_assert(kBlockN % 16 == 0 && kBlockN <= 32 && kBlockN % kRowsPerCopy == 0,
                "a block is whole 16-key MMA steps, one lane per key");
  static constexpr int64_t kArena = Tiles::arena_bytes(kRows, kHeadDim);  // rings, then the merge
  using Softmax = OnlineSoftmax<2 * kMTiles>;  // a thread's rows: g and g + 8 of each row tile
};

// The CTA's share: sequence b, latent, row tile and key split from blockIdx; the sequence's
// band; the key blocks of the split, aligned to kBlockN keys and dealt to the splits in runs.
template <class K>
struct DecodeTile {
  int64_t b, latent;
  int split;
  int heads_per_latent;  // query heads of the latent: row r is step r / it, head r % it
  int rows, row0;        // the latent's rows; the CTA's first
  int length;            // cache_seqlens[b]
  bool bad;              // length outside [0, capacity]: NaN out, nothing read
  AttnBand band;         // over query steps: step s sits at key position s + length - S_q
  int key_lo, key_hi;    // keys any row of the CTA sees
  int split_lo;          // first key block of the split
  int split_blocks;      // key blocks of the split
  int unmasked_lo, unmasked_hi;  // keys every row of the CTA sees

  __device__ explicit DecodeTile(const VheadDecodeParams& p)
      : b(blockIdx.x / (int64_t(p.row_tiles) * p.num_splits) / p.latent_groups),
        latent(blockIdx.x / (int64_t(p.row_tiles) * p.num_splits) % p.latent_groups),
        split(int(blockIdx.x / p.row_tiles % p.num_splits)),
        heads_per_latent(int(p.heads / p.latent_groups)),
        rows(heads_per_latent * int(p.seqlen_q)),
        row0(int(blockIdx.x % p.row_tiles) * K::kRows),
        length(__ldg(p.cache_seqlens + b * p.seqlens_stride)),
        bad(length < 0 || length > p.layout.capacity),
        band(int(p.seqlen_q), length, int(p.window_left), p.causal ? 0 : -1) {
    const int s_lo = step(row0), s_hi = step(min(rows, row0 + K::kRows) - 1);
    key_lo = band.first_key(s_lo);
    key_hi = max(key_lo, band.key_end(s_hi));
    const int block_lo = key_lo / K::kBlockN;
    const int blocks = key_hi > key_lo ? (key_hi + K::kBlockN - 1) / K::kBlockN - block_lo : 0;
    const int per_split = (blocks + p.num_splits - 1) / p.num_splits;
    split_lo = block_lo + min(blocks, split * per_split);
    split_blocks = bad ? 0 : min(blocks, (split + 1) * per_split) - (split_lo - block_lo);
    unmasked_lo = band.first_key(s_hi);
    unmasked_hi = band.key_end(s_lo);
  }

  __device__ int step(int row) const { return row / heads_per_latent; }
  __device__ int64_t head(int row) const { return latent * heads_per_latent + row % heads_per_latent; }
  // First key of block `blk` of a warp: the warps take every kWarps-th block of the split.
  __device__ int block_key0(int warp, int blk) const { return (split_lo + warp + blk * K::kWarps) * K::kBlockN; }
  __device__ int warp_blocks(int warp) const { return max(0, (split_blocks - warp + K::kWarps - 1) / K::kWarps); }
};

// The CTA's query rows (zero past the latent's, and all of them when the split has no keys)
// and, per latent head j and row r, w_k[j, G(r)] and w_v[j, G(r)] (1 without w_k/w_v).
template <class K>
__device__ __forceinline__ void stage_rows(const VheadDecodeParams& p, const DecodeTile<K>& tile,
                                           typename K::T* q_tile, float* wk_rows, float* wv_rows) {
  using T = typename K::T;
  using Chunk = Pack<T, 8>;
  for (int i = threadIdx.x; i < K::kRows * K::kChunks; i += K::kThreads) {
    const int r = i / K::kChunks, c = i % K::kChunks, row = tile.row0 + r;
    Chunk chunk{};
    if (row < tile.rows && tile.split_blocks > 0) {
      chunk = *reinterpret_cast<const Chunk*>(static_cast<const T*>(p.q) + tile.b * p.q_batch_stride +
                                              tile.step(row) * p.q_row_stride + tile.head(row) * p.q_head_stride +
                                              c * 8);
    }
    *reinterpret_cast<Chunk*>(q_tile + swizzled<K::kChunks>(r, c)) = chunk;
  }
  const int group = int(p.heads / p.kv_heads);  // query heads per kv head
  const bool mixed = p.w_k != nullptr;
  for (int i = threadIdx.x; i < int(p.latent_heads) * K::kRows; i += K::kThreads) {
    const int j = i / K::kRows, row = tile.row0 + i % K::kRows;
    const int64_t g = tile.head(row) / group;
    const bool weighted = mixed && row < tile.rows;
    wk_rows[i] = weighted ? load_weight<T>(p, p.w_k, j, g) : 1.f;
    wv_rows[i] = weighted ? load_weight<T>(p, p.w_v, j, g) : 1.f;
  }
}

// One warp's cp.async ring over its key blocks: per block the tiles K'_0 .. K'_{L-1}, then
// V'_0 .. V'_{L-1} (block x d each) of the latent's L cache heads, kStages - 1 ahead of use.
// Lane l tracks cache row l of the block being issued (kNoRow outside the key range); the
// lanes copying a row fetch its offset by shuffle. Only __syncwarp orders it.
template <class K>
struct WarpRing {
  using T = typename K::T;
  const VheadDecodeParams& p;
  const DecodeTile<K>& tile;
  T* ring;                   // kStages x (kBlockN x d)
  int warp, lane;
  int tiles;                 // this warp's: blocks x 2 latent heads
  int issued = 0;
  uint32_t lane_row = kNoRow;
  bool saw_bad_page = false;

  __device__ WarpRing(const VheadDecodeParams& params, const DecodeTile<K>& t, T* rings)
      : p(params), tile(t), warp(int(threadIdx.x / 32)), lane(int(threadIdx.x % 32)) {
    ring = rings + warp * K::kStages * K::kTile;
    tiles = tile.warp_blocks(warp) * 2 * int(p.latent_heads);
  }

  // The next tile, or past the end an empty group, which keeps the wait counts uniform.
  __device__ void issue_next() {
    const int latent_heads = int(p.latent_heads);
    if (issued < tiles) {
      const int blk = issued / (2 * latent_heads), u = issued % (2 * latent_heads);
      if (u == 0) {
        const int t = tile.block_key0(warp, blk) + lane;
        const bool in_range = lane < K::kBlockN && t >= tile.key_lo && t < tile.key_hi;
        lane_row = in_range ? cache_row_chunk(p, tile.b, t) : kNoRow;
        saw_bad_page |= in_range && lane_row == kNoRow;
      }
      const bool is_key = u < latent_heads;
      const int64_t head = tile.latent * latent_heads + (is_key ? u : u - latent_heads);
      const int copy_chunk = lane % K::kChunks;
      const T* src = static_cast<const T*>(is_key ? p.k_cache : p.v_cache) + head * p.cache_head_stride +
                     copy_chunk * 8;
      T* dst = ring + issued % K::kStages * K::kTile;
      const SwizzledLane<K::kChunks> copy_lane(lane / K::kChunks, copy_chunk);
#pragma unroll
      for (int i = 0; i < K::kBlockN / K::kRowsPerCopy; ++i) {
        const uint32_t row_chunk = __shfl_sync(0xffffffffu, lane_row, i * K::kRowsPerCopy + lane / K::kChunks);
        cp_async_16(dst + copy_lane.at(i * K::kRowsPerCopy, 0),
                    src + (row_chunk == kNoRow ? 0 : int64_t(row_chunk) * 8), row_chunk != kNoRow);
      }
    }
    cute::cp_async_fence();
    ++issued;
  }

  // Tile `n` once it has landed, after issuing the one kStages - 1 ahead of it.
  __device__ const T* next_tile(int n) {
    issue_next();
    cute::cp_async_wait<K::kStages - 1>();
    __syncwarp();
    return ring + n % K::kStages * K::kTile;
  }
};

// w[j, G(r)] of the thread's rows g and g + 8 of each row tile.
template <class K>
__device__ __forceinline__ void thread_weights(const float* w_rows, int j, int g, float (&w)[K::kMTiles][2]) {
#pragma unroll
  for (int mi = 0; mi < K::kMTiles; ++mi) {
    w[mi][0] = w_rows[j * K::kRows + mi * 16 + g];
    w[mi][1] = w_rows[j * K::kRows + mi * 16 + g + 8];
  }
}

// S = sum_j w_k[j, G(r)] (Q K'_j^T) over one key block, 16 keys at a time so the per-head
// products need only 8 accumulators per row tile.
template <class K>
__device__ __forceinline__ void block_scores(WarpRing<K>& ring, int& n, const typename K::T* q_tile,
                                             const float* wk_rows, float (&acc_s)[K::kMTiles][K::kNTiles][4]) {
  using T = typename K::T;
  const int lane = ring.lane, g = lane / 4;
  // ldmatrix lanes (sm80/warp_mma.cuh): Q rows 0-15 by chunk pair; K' keys 0-7, 8-15 by chunk
  // pair (two key tiles).
  const SwizzledLane<K::kChunks> q_lane(lane & 15, lane >> 4);
  const SwizzledLane<K::kChunks> k_lane((lane & 7) + 8 * (lane >> 4), (lane >> 3) & 1);
  for (int j = 0; j < int(ring.p.latent_heads); ++j, ++n) {
    const T* sk = ring.next_tile(n);
    float wk[K::kMTiles][2];
    thread_weights<K>(wk_rows, j, g, wk);
#pragma unroll
    for (int np = 0; np < K::kNTiles / 2; ++np) {
      float head_s[K::kMTiles][2][4] = {};  // key tiles 2np and 2np+1 of head j
#pragma unroll
      for (int ks = 0; ks < K::kHeadDim / 16; ++ks) {
        uint32_t bk[4];  // b0, b1 of key tiles 2np and 2np+1
        ldsm_x4(sk + k_lane.at(np * 16, 2 * ks), bk);
#pragma unroll
        for (int mi = 0; mi < K::kMTiles; ++mi) {
          uint32_t a[4];
          ldsm_x4(q_tile + q_lane.at(mi * 16, 2 * ks), a);
          mma_16x8x16<T>(head_s[mi][0], a, bk[0], bk[1]);
          mma_16x8x16<T>(head_s[mi][1], a, bk[2], bk[3]);
        }
      }
#pragma unroll
      for (int mi = 0; mi < K::kMTiles; ++mi) {
#pragma unroll
        for (int t = 0; t < 2; ++t) {
#pragma unroll
          for (int e = 0; e < 4; ++e) acc_s[mi][2 * np + t][e] += wk[mi][e / 2] * head_s[mi][t][e];
        }
      }
    }
    __syncwarp();
  }
}

// The softmax scale applied, and -inf for keys outside a row's band when the block at key0
// straddles a band edge (`masked`). The band is asked per row, through the row's query step.
// Scaling before the softmax (which then runs with scale 1) keeps its running max the max of
// the scaled scores, whatever the sign of the scale.
template <class K>
__device__ __forceinline__ void scale_and_mask(const DecodeTile<K>& tile, int key0, bool masked, float scale,
                                               int lane, float (&acc_s)[K::kMTiles][K::kNTiles][4]) {
  const int g = lane / 4, q = lane % 4;
#pragma unroll
  for (int mi = 0; mi < K::kMTiles; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int s = tile.step(min(tile.rows - 1, tile.row0 + mi * 16 + g + 8 * half));
      const int first = tile.band.first_key(s), end = tile.band.key_end(s);
#pragma unroll
      for (int nt = 0; nt < K::kNTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = key0 + nt * 8 + 2 * q + e;
          float& x = acc_s[mi][nt][2 * half + e];
          x = masked && (key < first || key >= end) ? -INFINITY : x * scale;
        }
      }
    }
  }
}

// O += sum_j (w_v[j, G(r)] P) V'_j over one key block: P stays in registers as the A operand.
template <class K>
__device__ __forceinline__ void block_pv(WarpRing<K>& ring, int& n, const float* wv_rows,
                                         const float (&acc_s)[K::kMTiles][K::kNTiles][4],
                                         float (&acc_o)[K::kMTiles][K::kDTiles][4]) {
  using T = typename K::T;
  const int lane = ring.lane, g = lane / 4;
  // ldmatrix lanes: V' keys 0-15 by column pair, transposed.
  const SwizzledLane<K::kChunks> v_lane((lane & 7) + 8 * ((lane >> 3) & 1), lane >> 4);
  for (int j = 0; j < int(ring.p.latent_heads); ++j, ++n) {
    const T* sv = ring.next_tile(n);
    float w[K::kMTiles][2];
    thread_weights<K>(wv_rows, j, g, w);
#pragma unroll
    for (int kk = 0; kk < K::kBlockN / 16; ++kk) {
      uint32_t a[K::kMTiles][4];
#pragma unroll
      for (int mi = 0; mi < K::kMTiles; ++mi) {
        const float(&lo)[4] = acc_s[mi][2 * kk];
        const float(&hi)[4] = acc_s[mi][2 * kk + 1];
        a[mi][0] = pack_pair<T>(lo[0] * w[mi][0], lo[1] * w[mi][0]);
        a[mi][1] = pack_pair<T>(lo[2] * w[mi][1], lo[3] * w[mi][1]);
        a[mi][2] = pack_pair<T>(hi[0] * w[mi][0], hi[1] * w[mi][0]);
        a[mi][3] = pack_pair<T>(hi[2] * w[mi][1], hi[3] * w[mi][1]);
      }
#pragma unroll
      for (int dp = 0; dp < K::kDTiles / 2; ++dp) {
        uint32_t bv[4];  // b0, b1 of column tiles 2dp and 2dp+1
        ldsm_x4_trans(sv + v_lane.at(kk * 16, 2 * dp), bv);
#pragma unroll
        for (int mi = 0; mi < K::kMTiles; ++mi) {
          mma_16x8x16<T>(acc_o[mi][2 * dp], a[mi], bv[0], bv[1]);
          mma_16x8x16<T>(acc_o[mi][2 * dp + 1], a[mi], bv[2], bv[3]);
        }
      }
    }
    __syncwarp();
  }
}

// The warp's key blocks through the online softmax: its running (max, sum) per row and its
// unnormalised O.
template <class K>
__device__ __forceinline__ void attend_warp_blocks(const VheadDecodeParams& p, const DecodeTile<K>& tile,
                                                   WarpRing<K>& ring, const typename K::T* q_tile,
                                                   const float* wk_rows, const float* wv_rows,
                                                   typename K::Softmax& softmax,
                                                   float (&acc_o)[K::kMTiles][K::kDTiles][4]) {
#pragma unroll
  for (int s = 0; s < K::kStages - 1; ++s) ring.issue_next();
  auto out = acc_rows_cols(acc_o);
  int n = 0;  // tiles consumed
  const int blocks = tile.warp_blocks(ring.warp);
  for (int blk = 0; blk < blocks; ++blk) {
    const int key0 = tile.block_key0(ring.warp, blk);
    float acc_s[K::kMTiles][K::kNTiles][4] = {};
    block_scores<K>(ring, n, q_tile, wk_rows, acc_s);
    const bool masked = key0 < tile.unmasked_lo || key0 + K::kBlockN > tile.unmasked_hi;
    scale_and_mask<K>(tile, key0, masked, p.scale, ring.lane, acc_s);
    auto scores = acc_rows_cols(acc_s);
    softmax.update(scores, out);
    block_pv<K>(ring, n, wv_rows, acc_s, acc_o);
  }
  cute::cp_async_wait<0>();
}

// Each warp's (max, sum) per row and unnormalised O to shared memory (over the rings, which
// the caller's barrier has freed), for merge_and_store.
template <class K>
__device__ __forceinline__ void stash_warp(unsigned char* smem, int warp, int lane, typename K::Softmax& softmax,
                                           const float (&acc_o)[K::kMTiles][K::kDTiles][4]) {
  float* merge_o = reinterpret_cast<float*>(smem);                     // kWarps x kRows x kMergeRow
  float* merge_stats = merge_o + K::kWarps * K::kRows * K::kMergeRow;  // kWarps x kRows x (max, sum)
  const int g = lane / 4, q = lane % 4;
#pragma unroll
  for (int mi = 0; mi < K::kMTiles; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = mi * 16 + g + 8 * half;
      float* o_row = merge_o + (warp * K::kRows + r) * K::kMergeRow;
#pragma unroll
      for (int dt = 0; dt < K::kDTiles; ++dt) {
        *reinterpret_cast<float2*>(o_row + dt * 8 + 2 * q) =
            make_float2(acc_o[mi][dt][2 * half], acc_o[mi][dt][2 * half + 1]);
      }
      const int row = half + 2 * mi;  // the softmax's row index (acc_rows_cols)
      const float sum = quad_sum(softmax.row_sum[row]);
      if (q == 0) {
        merge_stats[(warp * K::kRows + r) * 2] = softmax.row_max[row];
        merge_stats[(warp * K::kRows + r) * 2 + 1] = sum;
      }
    }
  }
}

// The final rows, 4 columns per thread: the warps' partial softmaxes merged, normalised and
// written to out/lse (one split) or to the split's fp32 partial for the combine kernel.
template <class K>
__device__ __forceinline__ void merge_and_store(const VheadDecodeParams& p, const DecodeTile<K>& tile,
                                                const unsigned char* smem, const typename K::Softmax& softmax,
                                                bool bad) {
  using T = typename K::T;
  constexpr int kHeadDim = K::kHeadDim;
  const float* merge_o = reinterpret_cast<const float*>(smem);
  const float* merge_stats = merge_o + K::kWarps * K::kRows * K::kMergeRow;
  for (int i = threadIdx.x; i < K::kRows * (kHeadDim / 4); i += K::kThreads) {
    const int r = i / (kHeadDim / 4), c = i % (kHeadDim / 4) * 4;
    const int row = tile.row0 + r;
    if (row >= tile.rows) continue;
    float m = -INFINITY;  // max over the warps
#pragma unroll
    for (int w = 0; w < K::kWarps; ++w) m = fmaxf(m, merge_stats[(w * K::kRows + r) * 2]);
    const float shift = exp2_shift(m, softmax.scale_log2);
    float sum = 0.f, o[4] = {};
#pragma unroll
    for (int w = 0; w < K::kWarps; ++w) {
      const float wm = merge_stats[(w * K::kRows + r) * 2];
      const float weight = exp2f(fmaf(wm, softmax.scale_log2, -shift));  // a warp without keys (-inf) adds 0
      sum += weight * merge_stats[(w * K::kRows + r) * 2 + 1];
      const float4 ow = *reinterpret_cast<const float4*>(merge_o + (w * K::kRows + r) * K::kMergeRow + c);
      o[0] += weight * ow.x;
      o[1] += weight * ow.y;
      o[2] += weight * ow.z;
      o[3] += weight * ow.w;
    }
    const float inv = sum > 0.f ? 1.f / sum : 0.f;  // no key: output 0, lse -inf
    float lse = sum > 0.f ? m * softmax.scale + logf(sum) : -INFINITY;  // OnlineSoftmax::finish's
#pragma unroll
    for (int e = 0; e < 4; ++e) o[e] = bad ? NAN : o[e] * inv;
    if (bad) lse = NAN;
    const int s = tile.step(row);
    const int64_t h = tile.head(row);
    const int64_t lse_index = (tile.b * p.heads + h) * p.seqlen_q + s;  // [B, H, S_q]
    if (p.num_splits == 1) {
      store_floats<T, 4>(static_cast<T*>(p.out) + ((tile.b * p.seqlen_q + s) * p.heads + h) * kHeadDim + c, o);
      if (c == 0) p.lse[lse_index] = lse;
    } else {
      const int64_t partial = tile.split * p.batch * p.heads * p.seqlen_q + lse_index;
      *reinterpret_cast<float4*>(p.partial_out + partial * kHeadDim + c) = make_float4(o[0], o[1], o[2], o[3]);
      if (c == 0) p.partial_lse[partial] = lse;
    }
  }
}

template <typename T, int kHeadDim, int kMTiles>
__global__ void __launch_bounds__(VheadDecodeTiles::kWarps * 32, 1)
    vhead_decode_kernel(const VheadDecodeParams p) {
  using K = DecodeKernel<T, kHeadDim, kMTiles>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* rings = reinterpret_cast<T*>(smem);                                    // kWarps x kStages x (kBlockN x d)
  T* q_tile = reinterpret_cast<T*>(smem + K::kArena);                       // kRows x d
  float* wk_rows = reinterpret_cast<float*>(q_tile + K::kRows * kHeadDim);  // latent_heads x kRows
  float* wv_rows = wk_rows + p.latent_heads * K::kRows;                     // latent_heads x kRows

  const DecodeTile<K> tile(p);
  stage_rows<K>(p, tile, q_tile, wk_rows, wv_rows);
  __syncthreads();

  WarpRing<K> ring(p, tile, rings);
  typename K::Softmax softmax(1.f);  // on scores scale_and_mask has scaled
  float acc_o[kMTiles][K::kDTiles][4] = {};
  attend_warp_blocks<K>(p, tile, ring, q_tile, wk_rows, wv_rows, softmax, acc_o);

  const bool bad = __syncthreads_or(tile.bad || ring.saw_bad_page);  // also: every warp is done with its ring
  stash_warp<K>(smem, ring.warp, ring.lane, softmax, acc_o);
  __syncthreads();
  merge_and_store<K>(p, tile, smem, softmax, bad);
}

}  // namespace headmix::kernels::sm80
