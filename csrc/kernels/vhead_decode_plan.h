#pragma once
// Host-side plan of the portable vhead_decode: rows per CTA, key splits, shared memory and
// workspace size, all from shapes and the device's SM count (never from cache_seqlens values,
// so one CUDA graph replays for any sequence lengths up to the capacity). The launcher owns
// these choices; a caller plans once per launch (plan_vhead_decode), allocates the plan's
// workspace and hands both to launch_vhead_decode_portable. Plain C++ without CUDA headers, so
// the CUDA binding and the CPU emulator's harness include it.
#include <algorithm>
#include <cstdint>

namespace headmix::kernels {

// Tile constants of the sm80 decode kernel (sm80/vhead_decode_kernel.cuh).
struct VheadDecodeTiles {
  static constexpr int kWarps = 4;       // each warp streams its own key blocks
  static constexpr int kStages = 3;      // per-warp cp.async ring of (block keys x d) tiles
  static constexpr int kMaxSplits = 128;
  static constexpr int kMergePad = 8;    // floats of padding per row of the warp-merge buffer
  // Keys per block: 32 for 16-row CTAs, 16 for 32-row ones, so a thread's score accumulators
  // stay at 16 and the 32-row output accumulators fit in registers.
  static constexpr int block_keys(int rows_per_cta) { return 512 / rows_per_cta; }
  // The warps' cp.async rings, reused by the warp merge at the end: the larger of the two.
  static constexpr int64_t arena_bytes(int rows_per_cta, int64_t head_dim) {
    const int64_t ring = int64_t(kWarps) * kStages * block_keys(rows_per_cta) * head_dim * 2;
    const int64_t merge = int64_t(kWarps) * rows_per_cta * (head_dim + kMergePad + 2) * 4;
    return ring > merge ? ring : merge;
  }
};

// Sizes of one decode call as the kernel sees them (see VheadDecodeParams).
struct VheadDecodeShape {
  int64_t batch, seqlen_q, heads, latent_groups, latent_heads, head_dim, capacity;
};

// The workspace holds partial outputs [num_splits, B, H, S_q, d], then partial lse
// [num_splits, B, H, S_q]: partial_rows * (d + 1) floats.
struct VheadDecodePlan {
  int rows_per_cta;          // 16 or 32 query rows (1 or 2 MMA row tiles)
  int row_tiles;             // CTAs along one latent's rows
  int num_splits;            // key-range splits per sequence
  int64_t smem_bytes;        // dynamic shared memory per CTA
  int64_t partial_rows;      // num_splits * B * H * S_q partial rows (0 with one split)
  int64_t workspace_floats;  // fp32 workspace: partial outputs and lse (0 with one split)
};

// The rings / merge arena, the staged query rows and the per-row w_k and w_v of every latent head.
inline int64_t vhead_decode_smem_bytes(int rows_per_cta, int64_t latent_heads, int64_t head_dim) {
  const int64_t queries = int64_t(rows_per_cta) * head_dim * 2;
  const int64_t weights = 2 * latent_heads * rows_per_cta * 4;
  return VheadDecodeTiles::arena_bytes(rows_per_cta, head_dim) + queries + weights;
}

// Rows per CTA: 32 when a latent has more than 16 rows (each CTA streams the latent once, so
// fewer row tiles mean fewer re-reads from L2) and the CTA fits in shared memory.
// Splits: enough CTAs for about two per SM, but at least kWarps 32-key blocks of the capacity
// per split so every warp can have work.
inline VheadDecodePlan plan_vhead_decode(const VheadDecodeShape& s, int num_sms, int64_t max_smem) {
  using T = VheadDecodeTiles;
  const int64_t rows = s.heads / std::max<int64_t>(1, s.latent_groups) * s.seqlen_q;
  VheadDecodePlan plan{};
  plan.rows_per_cta =
      rows > 16 && vhead_decode_smem_bytes(32, s.latent_heads, s.head_dim) <= max_smem ? 32 : 16;
  plan.row_tiles = int(std::max<int64_t>(1, (rows + plan.rows_per_cta - 1) / plan.rows_per_cta));
  plan.smem_bytes = vhead_decode_smem_bytes(plan.rows_per_cta, s.latent_heads, s.head_dim);
  const int64_t ctas = std::max<int64_t>(1, s.batch * s.latent_groups * plan.row_tiles);
  const int64_t key_blocks = (s.capacity + 31) / 32;
  const int64_t useful = std::max<int64_t>(1, key_blocks / T::kWarps);
  const int64_t wanted = (2 * int64_t(num_sms) + ctas - 1) / ctas;
  plan.num_splits = int(std::clamp<int64_t>(wanted, 1, std::min<int64_t>(T::kMaxSplits, useful)));
  plan.partial_rows = plan.num_splits > 1 ? plan.num_splits * s.batch * s.heads * s.seqlen_q : 0;
  plan.workspace_floats = plan.partial_rows * (s.head_dim + 1);
  return plan;
}

}  // namespace headmix::kernels
