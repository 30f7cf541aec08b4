// Host-side checks of the flash-attention kernels' index logic, run by `make check-cuda` on
// machines without a GPU (CuTe layouts and the band are host-callable):
//  - the attention band's key/query ranges cover every allowed (query, key) pair, tiles it
//    calls unmasked hold only allowed pairs, and its per-row key range is the definition;
//  - the accumulator's (rows, cols) view gives every register the row/column the mask and the
//    softmax assume, a quad shares its rows, and the accumulator regrouped as an A operand
//    (P reused in P V) matches the MMA's own A partition value for value;
//  - each transposed shared-memory view is the exact transpose of its tile.
#include <algorithm>
#include <random>

#include "sm80/flash_bwd_kernel.cuh"
#include "sm80/flash_fwd_kernel.cuh"
#include "host_check.h"

using namespace cute;
using host_check::check_transposed;
using host_check::expect;
using namespace headmix::kernels;

static void check_band(std::mt19937& rng) {
  for (int trial = 0; trial < 2000; ++trial) {
    FlashAttnParams p{};
    p.seqlen_q = 1 + rng() % 300;
    p.seqlen_k = rng() % 300;
    p.window_left = rng() % 3 == 0 ? -1 : int(rng() % 80);
    p.window_right = rng() % 4 == 0 ? 0 : (rng() % 3 == 0 ? -1 : int(rng() % 80));
    const AttnBand band(p);
    const int offset = int(p.seqlen_k - p.seqlen_q);
    const auto allowed = [&](int i, int j) {
      return j < p.seqlen_k && (p.window_left < 0 || j >= i + offset - p.window_left) &&
             (p.window_right < 0 || j <= i + offset + p.window_right);
    };
    const auto tiles = [](int2 range, int block) {
      const int first = range.x / block;
      return make_int2(first, range.y > range.x ? (range.y + block - 1) / block : first);
    };
    for (const int block_m : {64, 128}) {
      constexpr int kBlockN = 64;
      for (int m0 = 0; m0 < p.seqlen_q; m0 += block_m) {  // forward / dq: key tiles of a query tile
        const int m1 = std::min<int>(m0 + block_m, p.seqlen_q);
        const int2 n_tiles = tiles(band.keys_of_rows(m0, m1), kBlockN);
        for (int i = m0; i < m1; ++i) {
          for (int j = 0; j < p.seqlen_k; ++j) {
            const bool visited = j >= n_tiles.x * kBlockN && j < n_tiles.y * kBlockN;
            expect(!allowed(i, j) || visited, "key tiles cover the band");
            expect(allowed(i, j) == (j >= band.first_key(i) && j < band.key_end(i)), "per-row key range");
          }
        }
        for (int n = n_tiles.x; n < n_tiles.y; ++n) {
          if (band.tile_needs_mask(m0, m1, n * kBlockN, (n + 1) * kBlockN)) continue;
          for (int i = m0; i < m1; ++i) {
            for (int j = n * kBlockN; j < (n + 1) * kBlockN; ++j) expect(allowed(i, j), "unmasked tile");
          }
        }
      }
      for (int n0 = 0; n0 < p.seqlen_k; n0 += kBlockN) {  // dk/dv: query tiles of a key tile
        const int n1 = std::min<int>(n0 + kBlockN, p.seqlen_k);
        const int2 m_tiles = tiles(band.queries_of_keys(n0, n1), block_m);
        for (int j = n0; j < n1; ++j) {
          for (int i = 0; i < p.seqlen_q; ++i) {
            expect(!allowed(i, j) || (i >= m_tiles.x * block_m && i < m_tiles.y * block_m), "query tiles cover");
          }
        }
        for (int m = m_tiles.x; m < m_tiles.y; ++m) {
          const int m0 = m * block_m, m1 = std::min<int>(m0 + block_m, p.seqlen_q);
          if (band.tile_needs_mask(m0, m1, n0, n0 + kBlockN)) continue;
          for (int i = m0; i < m1; ++i) {
            for (int j = n0; j < n0 + kBlockN; ++j) expect(allowed(i, j), "unmasked tile (dk/dv)");
          }
        }
      }
    }
  }
}

// (rows, cols) view and, when the kernel reuses the accumulator as an A operand, the regroup.
template <class Cfg, int kM, int kN, bool kReusedAsA>
static void check_accumulator() {
  typename Cfg::TiledMma mma;
  const auto coords = [&](int thread) {
    return mma.get_thread_slice(thread).partition_C(make_identity_tensor(Shape<Int<kM>, Int<kN>>{}));
  };
  for (int thread = 0; thread < Cfg::kThreads; ++thread) {
    Tensor tScS = coords(thread);
    Tensor rc = make_tensor(tScS.data(), sm80::acc_as_rows_cols(tScS.layout()));
    Tensor quad = coords(thread ^ 1);
    Tensor quad_rc = make_tensor(quad.data(), sm80::acc_as_rows_cols(quad.layout()));
    for (int r = 0; r < size<0>(rc); ++r) {
      expect(get<0>(quad_rc(r, 0)) == get<0>(rc(r, 0)), "a quad shares its rows");
      for (int c = 0; c < size<1>(rc); ++c) {
        expect(get<0>(rc(r, c)) == get<0>(rc(r, 0)) && get<1>(rc(r, c)) == get<1>(rc(0, c)), "rows x cols view");
      }
    }
    if constexpr (kReusedAsA) {
      Tensor tOcA = mma.get_thread_slice(thread).partition_A(make_identity_tensor(Shape<Int<kM>, Int<kN>>{}));
      Tensor regrouped = make_tensor(tScS.data(), sm80::acc_as_operand_a(tScS.layout()));
      CUTE_STATIC_ASSERT_V(size<0>(regrouped) == size<0>(tOcA) && size<1>(regrouped) == size<1>(tOcA) &&
                           size<2>(regrouped) == size<2>(tOcA));
      for (int i = 0; i < size(tOcA); ++i) expect(regrouped(i) == tOcA(i), "accumulator as A operand");
    }
  }
}

int main() {
  std::mt19937 rng(1);
  check_band(rng);
  using Fwd64 = sm80::FlashFwdConfig<cutlass::bfloat16_t, 64>;
  using Fwd128 = sm80::FlashFwdConfig<cutlass::bfloat16_t, 128>;
  using Bwd64 = sm80::FlashBwdConfig<cutlass::half_t, 64>;
  using Bwd128 = sm80::FlashBwdConfig<cutlass::half_t, 128>;
  check_accumulator<Fwd64, Fwd64::kBlockM, Fwd64::kBlockN, true>();
  check_accumulator<Fwd128, Fwd128::kBlockM, Fwd128::kBlockN, true>();
  check_accumulator<Bwd64, Bwd64::kBlockM, Bwd64::kBlockN, false>();
  check_accumulator<Bwd128, Bwd128::kBlockM, Bwd128::kBlockN, false>();
  check_transposed<Fwd128::SmemKV, Fwd128::SmemVt, Fwd128::kStages>();
  check_transposed<Bwd128::SmemStream, Bwd128::SmemStreamT, Bwd128::kStages>();
  check_transposed<Bwd64::SmemFixed, Bwd64::SmemFixedT, 0>();
  check_transposed<Bwd128::SmemScores, Bwd128::SmemScoresT, 0>();
  return host_check::finish("flash_layouts");
}
