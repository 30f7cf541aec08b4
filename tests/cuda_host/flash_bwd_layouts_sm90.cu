// Host-side checks of the Hopper flash-attention backward's index logic that
// flash_layouts_sm90.cu (its accumulator views, A-operand regroups and transposed
// shared-memory views) leaves out, run by `make check-cuda` without a GPU:
//  - the kernel's own key-tile ranges (BwdTile, at its 128-key / 64-query tiles): every query
//    that sees a key of the tile lies in a visited query tile, no visited tile starts past
//    S_q (TMA coordinates stay in range), and the GQA group is the heads h with h / (H/H_kv) =
//    the kv head;
//  - the stmatrix copies (dS^T for dQ, dK and dV in the epilogue) read the accumulator
//    registers as the tile coordinates the MMA gave them, and write every element of the
//    shared tile exactly once.
#include <algorithm>
#include <random>
#include <vector>

#include "sm90/flash_bwd_kernel.cuh"
#include "host_check.h"

using namespace cute;
using host_check::expect;
using namespace headmix::kernels;

template <class Cfg>
static void check_tile_ranges(std::mt19937& rng) {
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN;
  for (int trial = 0; trial < 1000; ++trial) {
    FlashAttnParams p{};
    p.seqlen_q = 1 + rng() % 400;
    p.seqlen_k = 1 + rng() % 400;
    p.kv_heads = 1 + rng() % 3;
    p.heads = p.kv_heads * (1 + rng() % 4);
    p.window_left = rng() % 3 == 0 ? -1 : int(rng() % 150);
    p.window_right = rng() % 4 == 0 ? 0 : (rng() % 3 == 0 ? -1 : int(rng() % 150));
    const AttnBand band(p);
    const int offset = int(p.seqlen_k - p.seqlen_q);
    const auto allowed = [&](int i, int j) {
      return (p.window_left < 0 || j >= i + offset - p.window_left) &&
             (p.window_right < 0 || j <= i + offset + p.window_right);
    };
    const int m_blocks = int((p.seqlen_q + kBlockM - 1) / kBlockM);
    for (int n_block = 0; n_block * kBlockN < p.seqlen_k; ++n_block) {
      const int kv_head = int(rng() % p.kv_heads);
      const sm90::BwdTile<Cfg> t(p, band, n_block, kv_head, 0);
      expect(t.n_begin == n_block * kBlockN, "first key of the tile");
      expect(t.head_end - t.head_begin == p.heads / p.kv_heads, "GQA group size");
      for (int h = t.head_begin; h < t.head_end; ++h) {
        expect(h / (p.heads / p.kv_heads) == kv_head, "GQA group reads this kv head");
      }
      expect(t.m_block_begin <= t.m_block_end, "query tile range ordered");
      expect(t.m_block_begin == t.m_block_end || t.m_block_end <= m_blocks, "query tiles inside S_q");
      const int n_end = std::min<int>(t.n_begin + kBlockN, p.seqlen_k);
      for (int j = t.n_begin; j < n_end; ++j) {
        for (int i = 0; i < p.seqlen_q; ++i) {
          const bool visited = i / kBlockM >= t.m_block_begin && i / kBlockM < t.m_block_end;
          expect(!allowed(i, j) || visited, "query tiles of a key tile cover the band");
        }
      }
    }
  }
}

// make_tiled_copy_C(StsAtom, TiledMma) as the kernel builds it, on a kM x kN tile.
template <class Cfg, class TiledMma, class SmemLayout, int kM, int kN>
static void check_stmatrix(int threads) {
  TiledMma mma;
  auto sts = make_tiled_copy_C(typename Cfg::StsAtom{}, mma);
  auto tile = make_identity_tensor(Shape<Int<kM>, Int<kN>>{});
  std::vector<int> written(kM * kN, 0);
  for (int thread = 0; thread < threads; ++thread) {
    auto sts_thr = sts.get_thread_slice(thread);
    Tensor tCcC = mma.get_thread_slice(thread).partition_C(tile);  // (MMA,MMA_M,MMA_N)->(m,n)
    Tensor source = sts_thr.retile_S(tCcC);                         // (CPY,CPY_M,CPY_N)->(m,n)
    Tensor expected = sts_thr.partition_S(tile);                    // (CPY,CPY_M,CPY_N)->(m,n)
    expect(size(source) == size(expected), "stmatrix source covers the fragment");
    for (int e = 0; e < size(source); ++e) expect(source(e) == expected(e), "stmatrix reads the accumulator");
    Tensor target = sts_thr.partition_D(tile);                      // (CPY,CPY_M,CPY_N)->(m,n)
    for (int e = 0; e < size(target); ++e) ++written[get<0>(target(e)) * kN + get<1>(target(e))];
  }
  for (int e = 0; e < kM * kN; ++e) expect(written[e] == 1, "stmatrix writes the tile once");
  // The shared layout takes 16-byte vectors: stmatrix's rows of 8 elements are contiguous.
  const SmemLayout smem{};
  for (int m = 0; m < kM; ++m) {
    for (int n = 0; n < kN; n += 8) {
      for (int v = 1; v < 8; ++v) expect(smem(m, n + v) == smem(m, n) + v, "8-element rows contiguous");
    }
  }
}

template <class Cfg>
static void check_backward(std::mt19937& rng) {
  constexpr int kM = Cfg::kBlockM, kN = Cfg::kBlockN, kD = Cfg::kHeadDim;
  check_tile_ranges<Cfg>(rng);
  check_stmatrix<Cfg, typename Cfg::TiledMmaKQ, typename Cfg::SmemDsT, kN, kM>(Cfg::kConsumerThreads);
  check_stmatrix<Cfg, typename Cfg::TiledMmaDkDv, typename Cfg::SmemKV, kN, kD>(Cfg::kConsumerThreads);
}

int main() {
  std::mt19937 rng(1);
  check_backward<sm90::FlashBwdSm90Config<cutlass::bfloat16_t, 64>>(rng);
  check_backward<sm90::FlashBwdSm90Config<cutlass::half_t, 128>>(rng);
  return host_check::finish("flash_bwd_layouts_sm90");
}
