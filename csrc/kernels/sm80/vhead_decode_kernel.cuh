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
// over every 4th key block of the split (32 keys; 16 with 32 rows, whose output accumulators
// need the registers), streaming the K'_j then V'_j tiles (block x d, one per latent head)
// of each block through a private 3-stage cp.async ring, synchronised by __syncwarp alone. At
// the end the warps' (max, sum, output) merge through shared memory and the CTA writes out/lse
// directly (one split) or an fp32 partial for the combine kernel.
//
// MMAs (sm80/warp_mma.cuh): Q K'_j^T reads the staged query rows and K'_j with ldmatrix;
// P V'_j uses the S accumulators, scaled per row by w_v, as the A operand and reads V'_j with
// ldmatrix.trans.
//
// Reads. Only cache rows inside the split's key range and below cache_seqlens[b] are loaded;
// the rest of a tile is zero-filled by cp.async without a global read and masked to -inf. A
// sequence whose length is outside [0, capacity], or whose pages are outside [0, num_blocks),
// gets NaN outputs: a loud answer without a host sync (the binding can also check on the host).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "common/vec.cuh"
#include "params.h"
#include "sm80/warp_mma.cuh"
#include "vhead_decode_plan.h"

namespace headmix::kernels::sm80 {

// Keys of a sequence with `length` cached rows that query step s sees: [first(s), end(s)).
// Step s sits at key position s + length - S_q (bottom-right alignment).
struct DecodeBand {
  int offset, length, left;
  bool causal;
  __device__ int first(int s) const { return left < 0 ? 0 : max(0, s + offset - left); }
  __device__ int end(int s) const { return causal ? min(length, max(0, s + offset + 1)) : length; }
};

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

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

template <typename T, int kHeadDim, int kMTiles>
struct DecodeKernel {
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
  static constexpr float kLog2e = 1.4426950408889634f;
  static constexpr float kLn2 = 0.6931471805599453f;
};

template <typename T, int kHeadDim, int kMTiles>
__global__ void __launch_bounds__(VheadDecodeTiles::kWarps * 32, 1)
    vhead_decode_kernel(const VheadDecodeParams p) {
  using K = DecodeKernel<T, kHeadDim, kMTiles>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* ring_all = reinterpret_cast<T*>(smem);                          // kWarps x kStages x (kBlockN x d)
  T* q_tile = reinterpret_cast<T*>(smem + K::kArena);                // kRows x d
  float* wk_rows = reinterpret_cast<float*>(q_tile + K::kRows * kHeadDim);  // latent_heads x kRows
  float* wv_rows = wk_rows + p.latent_heads * K::kRows;                    // latent_heads x kRows

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int row_tile = blockIdx.x % p.row_tiles;
  const int split = blockIdx.x / p.row_tiles % p.num_splits;
  const int64_t seq_latent = blockIdx.x / (int64_t(p.row_tiles) * p.num_splits);
  const int64_t b = seq_latent / p.latent_groups, latent = seq_latent % p.latent_groups;
  const int heads_per_latent = int(p.heads / p.latent_groups);
  const int group = int(p.heads / p.kv_heads);  // query heads per kv head
  const int rows = heads_per_latent * int(p.seqlen_q);
  const int row0 = row_tile * K::kRows;
  const int latent_heads = int(p.latent_heads);
  const bool mixed = p.w_k != nullptr;

  const int length = __ldg(p.cache_seqlens + b * p.seqlens_stride);
  bool bad = length < 0 || length > p.layout.capacity;
  const DecodeBand band{length - int(p.seqlen_q), length, int(p.window_left), p.causal};
  const int s_lo = row0 / heads_per_latent;
  const int s_hi = (min(rows, row0 + K::kRows) - 1) / heads_per_latent;
  // Keys any row of the CTA sees, and the key blocks of this split (aligned to kBlockN absolute).
  const int key_lo = band.first(s_lo), key_hi = max(key_lo, band.end(s_hi));
  const int block_lo = key_lo / K::kBlockN;
  const int blocks = key_hi > key_lo ? (key_hi + K::kBlockN - 1) / K::kBlockN - block_lo : 0;
  const int per_split = (blocks + p.num_splits - 1) / p.num_splits;
  const int split_lo = block_lo + min(blocks, split * per_split);
  const int split_blocks = bad ? 0 : min(blocks, (split + 1) * per_split) - (split_lo - block_lo);
  // Blocks inside [unmasked_lo, unmasked_hi) are allowed for every row of the CTA.
  const int unmasked_lo = band.first(s_hi), unmasked_hi = band.end(s_lo);

  // Stage the CTA's query rows (zero past the latent's) and, per latent head j and row r,
  // w_k[j, G(r)] and w_v[j, G(r)] (1 without w_k/w_v).
  using Chunk = Pack<T, 8>;
  for (int i = tid; i < K::kRows * K::kChunks; i += K::kThreads) {
    const int r = i / K::kChunks, c = i % K::kChunks, row = row0 + r;
    Chunk chunk{};
    if (row < rows && split_blocks > 0) {
      const int64_t h = latent * heads_per_latent + row % heads_per_latent;
      chunk = *reinterpret_cast<const Chunk*>(static_cast<const T*>(p.q) + b * p.q_batch_stride +
                                              (row / heads_per_latent) * p.q_row_stride + h * p.q_head_stride + c * 8);
    }
    *reinterpret_cast<Chunk*>(q_tile + swizzled<K::kChunks>(r, c)) = chunk;
  }
  for (int i = tid; i < latent_heads * K::kRows; i += K::kThreads) {
    const int j = i / K::kRows, row = row0 + i % K::kRows;
    const int64_t g_row = (latent * heads_per_latent + row % heads_per_latent) / group;
    const bool weighted = mixed && row < rows;
    wk_rows[i] = weighted ? load_weight<T>(p, p.w_k, j, g_row) : 1.f;
    wv_rows[i] = weighted ? load_weight<T>(p, p.w_v, j, g_row) : 1.f;
  }
  __syncthreads();

  // ---- this warp's key blocks: split_lo + warp, + kWarps, ...
  const int my_blocks = max(0, (split_blocks - warp + K::kWarps - 1) / K::kWarps);
  const int tiles_per_block = 2 * latent_heads;  // K'_0 .. K'_{L-1}, V'_0 .. V'_{L-1}
  const int my_tiles = my_blocks * tiles_per_block;
  T* ring = ring_all + warp * K::kStages * K::kTile;
  const int64_t head0 = latent * latent_heads;  // first cache head of the latent
  const T* k_cache = static_cast<const T*>(p.k_cache);
  const T* v_cache = static_cast<const T*>(p.v_cache);

  // Lane l tracks cache row l of the block being issued (kNoRow outside the key range); the
  // lanes copying a row fetch its offset by shuffle.
  uint32_t lane_row = kNoRow;
  bool saw_bad_page = false;
  int issued = 0;
  const int copy_chunk = lane % K::kChunks;
  const SwizzledLane<K::kChunks> copy_lane(lane / K::kChunks, copy_chunk);
  const auto issue_next = [&]() {
    if (issued < my_tiles) {
      const int blk = issued / tiles_per_block, u = issued % tiles_per_block;
      if (u == 0) {
        const int t = (split_lo + warp + blk * K::kWarps) * K::kBlockN + lane;
        const bool in_range = lane < K::kBlockN && t >= key_lo && t < key_hi;
        lane_row = in_range ? cache_row_chunk(p, b, t) : kNoRow;
        saw_bad_page |= in_range && lane_row == kNoRow;
      }
      const bool is_key = u < latent_heads;
      const T* src = (is_key ? k_cache : v_cache) +
                     (head0 + (is_key ? u : u - latent_heads)) * p.cache_head_stride + copy_chunk * 8;
      T* dst = ring + issued % K::kStages * K::kTile;
#pragma unroll
      for (int i = 0; i < K::kBlockN / K::kRowsPerCopy; ++i) {
        const uint32_t row_chunk = __shfl_sync(0xffffffffu, lane_row, i * K::kRowsPerCopy + lane / K::kChunks);
        cp_async_16(dst + copy_lane.at(i * K::kRowsPerCopy, 0),
                    src + (row_chunk == kNoRow ? 0 : int64_t(row_chunk) * 8), row_chunk != kNoRow);
      }
    }
    cute::cp_async_fence();  // an empty group past the end keeps the wait counts uniform
    ++issued;
  };

  float acc_o[kMTiles][K::kDTiles][4] = {};
  float row_max[kMTiles][2], row_sum[kMTiles][2] = {};
#pragma unroll
  for (int mi = 0; mi < kMTiles; ++mi) row_max[mi][0] = row_max[mi][1] = -INFINITY;
  const float scale_log2 = p.scale * K::kLog2e;
  const int g = lane / 4, q = lane % 4;
  // ldmatrix lanes (sm80/warp_mma.cuh): Q rows 0-15 by chunk pair; K' keys 0-7, 8-15 by chunk
  // pair (two key tiles); V' keys 0-15 by column pair, transposed.
  const SwizzledLane<K::kChunks> q_lane(lane & 15, lane >> 4);
  const SwizzledLane<K::kChunks> k_lane((lane & 7) + 8 * (lane >> 4), (lane >> 3) & 1);
  const SwizzledLane<K::kChunks> v_lane((lane & 7) + 8 * ((lane >> 3) & 1), lane >> 4);

#pragma unroll
  for (int s = 0; s < K::kStages - 1; ++s) issue_next();
  int tile = 0;
  for (int blk = 0; blk < my_blocks; ++blk) {
    const int key0 = (split_lo + warp + blk * K::kWarps) * K::kBlockN;

    // S = sum_j w_k[j, G(r)] (Q K'_j^T) over the block's keys, 16 at a time so the per-head
    // products need only 8 accumulators per row tile.
    float acc_s[kMTiles][K::kNTiles][4] = {};
    for (int j = 0; j < latent_heads; ++j, ++tile) {
      issue_next();
      cute::cp_async_wait<K::kStages - 1>();
      __syncwarp();
      const T* sk = ring + tile % K::kStages * K::kTile;
      float wk[kMTiles][2];
#pragma unroll
      for (int mi = 0; mi < kMTiles; ++mi) {
        wk[mi][0] = wk_rows[j * K::kRows + mi * 16 + g];
        wk[mi][1] = wk_rows[j * K::kRows + mi * 16 + g + 8];
      }
#pragma unroll
      for (int np = 0; np < K::kNTiles / 2; ++np) {
        float head_s[kMTiles][2][4] = {};  // key tiles 2np and 2np+1 of head j
#pragma unroll
        for (int ks = 0; ks < kHeadDim / 16; ++ks) {
          uint32_t bk[4];  // b0, b1 of key tiles 2np and 2np+1
          ldsm_x4(sk + k_lane.at(np * 16, 2 * ks), bk);
#pragma unroll
          for (int mi = 0; mi < kMTiles; ++mi) {
            uint32_t a[4];
            ldsm_x4(q_tile + q_lane.at(mi * 16, 2 * ks), a);
            mma_16x8x16<T>(head_s[mi][0], a, bk[0], bk[1]);
            mma_16x8x16<T>(head_s[mi][1], a, bk[2], bk[3]);
          }
        }
#pragma unroll
        for (int mi = 0; mi < kMTiles; ++mi) {
#pragma unroll
          for (int n = 0; n < 2; ++n) {
#pragma unroll
            for (int e = 0; e < 4; ++e) acc_s[mi][2 * np + n][e] += wk[mi][e / 2] * head_s[mi][n][e];
          }
        }
      }
      __syncwarp();
    }

    // Mask, then the online softmax in log2 units: S becomes P, O and the sums are rescaled.
    const bool masked = key0 < unmasked_lo || key0 + K::kBlockN > unmasked_hi;
#pragma unroll
    for (int mi = 0; mi < kMTiles; ++mi) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int s = min(rows - 1, row0 + mi * 16 + g + 8 * half) / heads_per_latent;
        const int first = band.first(s), end = band.end(s);
        float tile_max = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < K::kNTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int key = key0 + nt * 8 + 2 * q + e;
            float& x = acc_s[mi][nt][2 * half + e];
            x = masked && (key < first || key >= end) ? -INFINITY : x * scale_log2;
            tile_max = fmaxf(tile_max, x);
          }
        }
        const float new_max = fmaxf(row_max[mi][half], quad_max(tile_max));
        const float shift = new_max == -INFINITY ? 0.f : new_max;  // no key yet: exp2(-inf) = 0, not NaN
        const float rescale = exp2f(row_max[mi][half] - shift);
        row_max[mi][half] = new_max;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < K::kNTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& x = acc_s[mi][nt][2 * half + e];
            x = exp2f(x - shift);
            sum += x;
          }
        }
        row_sum[mi][half] = row_sum[mi][half] * rescale + sum;
#pragma unroll
        for (int dt = 0; dt < K::kDTiles; ++dt) {
          acc_o[mi][dt][2 * half] *= rescale;
          acc_o[mi][dt][2 * half + 1] *= rescale;
        }
      }
    }

    // O += sum_j (w_v[j, G(r)] P) V'_j.
    for (int j = 0; j < latent_heads; ++j, ++tile) {
      issue_next();
      cute::cp_async_wait<K::kStages - 1>();
      __syncwarp();
      const T* sv = ring + tile % K::kStages * K::kTile;
      float w[kMTiles][2];
#pragma unroll
      for (int mi = 0; mi < kMTiles; ++mi) {
        w[mi][0] = wv_rows[j * K::kRows + mi * 16 + g];
        w[mi][1] = wv_rows[j * K::kRows + mi * 16 + g + 8];
      }
#pragma unroll
      for (int kk = 0; kk < K::kBlockN / 16; ++kk) {
        uint32_t a[kMTiles][4];
#pragma unroll
        for (int mi = 0; mi < kMTiles; ++mi) {
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
          for (int mi = 0; mi < kMTiles; ++mi) {
            mma_16x8x16<T>(acc_o[mi][2 * dp], a[mi], bv[0], bv[1]);
            mma_16x8x16<T>(acc_o[mi][2 * dp + 1], a[mi], bv[2], bv[3]);
          }
        }
      }
      __syncwarp();
    }
  }
  cute::cp_async_wait<0>();

  // ---- merge the warps: each writes (max, sum) per row and its unnormalised O to shared memory.
  bad = __syncthreads_or(bad || saw_bad_page);  // also: every warp is done with its ring
  float* merge_o = reinterpret_cast<float*>(smem);               // kWarps x kRows x kMergeRow
  float* merge_stats = merge_o + K::kWarps * K::kRows * K::kMergeRow;  // kWarps x kRows x (max, sum)
#pragma unroll
  for (int mi = 0; mi < kMTiles; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = mi * 16 + g + 8 * half;
      float* o_row = merge_o + (warp * K::kRows + r) * K::kMergeRow;
#pragma unroll
      for (int dt = 0; dt < K::kDTiles; ++dt) {
        *reinterpret_cast<float2*>(o_row + dt * 8 + 2 * q) =
            make_float2(acc_o[mi][dt][2 * half], acc_o[mi][dt][2 * half + 1]);
      }
      const float sum = quad_sum(row_sum[mi][half]);
      if (q == 0) {
        merge_stats[(warp * K::kRows + r) * 2] = row_max[mi][half];
        merge_stats[(warp * K::kRows + r) * 2 + 1] = sum;
      }
    }
  }
  __syncthreads();

  // ---- final rows: 4 columns per thread.
  for (int i = tid; i < K::kRows * (kHeadDim / 4); i += K::kThreads) {
    const int r = i / (kHeadDim / 4), c = i % (kHeadDim / 4) * 4;
    const int row = row0 + r;
    if (row >= rows) continue;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < K::kWarps; ++w) m = fmaxf(m, merge_stats[(w * K::kRows + r) * 2]);
    float sum = 0.f, o[4] = {};
#pragma unroll
    for (int w = 0; w < K::kWarps; ++w) {
      const float wm = merge_stats[(w * K::kRows + r) * 2];
      const float weight = wm == -INFINITY ? 0.f : exp2f(wm - m);  // a warp without keys adds nothing
      sum += weight * merge_stats[(w * K::kRows + r) * 2 + 1];
      const float4 ow = *reinterpret_cast<const float4*>(merge_o + (w * K::kRows + r) * K::kMergeRow + c);
      o[0] += weight * ow.x;
      o[1] += weight * ow.y;
      o[2] += weight * ow.z;
      o[3] += weight * ow.w;
    }
    const float inv = sum > 0.f ? 1.f / sum : 0.f;  // no key: output 0, lse -inf
    float lse = sum > 0.f ? (m + log2f(sum)) * K::kLn2 : -INFINITY;
#pragma unroll
    for (int e = 0; e < 4; ++e) o[e] = bad ? NAN : o[e] * inv;
    if (bad) lse = NAN;
    const int s = row / heads_per_latent;
    const int64_t h = latent * heads_per_latent + row % heads_per_latent;
    const int64_t lse_index = (b * p.heads + h) * p.seqlen_q + s;  // [B, H, S_q]
    if (p.num_splits == 1) {
      store_floats<T, 4>(static_cast<T*>(p.out) + ((b * p.seqlen_q + s) * p.heads + h) * kHeadDim + c, o);
      if (c == 0) p.lse[lse_index] = lse;
    } else {
      const int64_t partial = split * p.batch * p.heads * p.seqlen_q + lse_index;
      *reinterpret_cast<float4*>(p.partial_out + partial * kHeadDim + c) = make_float4(o[0], o[1], o[2], o[3]);
      if (c == 0) p.partial_lse[partial] = lse;
    }
  }
}

}  // namespace headmix::kernels::sm80
