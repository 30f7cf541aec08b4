// Host-side checks of the Hopper flash-attention forward's layouts, run by `make check-cuda`
// without a GPU (CuTe layout algebra is host-callable):
//  - the wgmma accumulator's (rows, cols) view gives every register the row/column the mask,
//    the softmax and the lse store assume, and a quad shares its rows;
//  - the score accumulator regrouped as an A operand (P reused in O += P V) matches the RS
//    tiled MMA's own A partition value for value;
//  - the transposed V view is the exact transpose of the K/V stages TMA writes.
#include <cstdio>

#include "sm90/flash_fwd_kernel.cuh"

using namespace cute;
using namespace headmix::kernels;

static int failures = 0;

static void expect(bool ok, const char* what) {
  if (!ok && failures++ < 10) std::printf("flash_layouts_sm90: FAILED %s\n", what);
}

template <class TiledMma, int kM, int kN>
static void check_rows_cols(int threads) {
  TiledMma mma;
  const auto coords = [&](int thread) {
    return mma.get_thread_slice(thread).partition_C(make_identity_tensor(Shape<Int<kM>, Int<kN>>{}));
  };
  for (int thread = 0; thread < threads; ++thread) {
    Tensor tC = coords(thread);
    Tensor rc = make_tensor(tC.data(), sm90::acc_as_rows_cols(tC.layout()));
    Tensor quad = coords(thread ^ 1);
    Tensor quad_rc = make_tensor(quad.data(), sm90::acc_as_rows_cols(quad.layout()));
    expect(size(rc) == size(tC), "rows x cols view covers the fragment");
    for (int r = 0; r < size<0>(rc); ++r) {
      expect(get<0>(quad_rc(r, 0)) == get<0>(rc(r, 0)), "a quad shares its rows");
      expect(get<0>(rc(r, 0)) / 64 == thread / 128, "a warpgroup owns its 64 rows");
      for (int c = 0; c < size<1>(rc); ++c) {
        expect(get<0>(rc(r, c)) == get<0>(rc(r, 0)) && get<1>(rc(r, c)) == get<1>(rc(0, c)), "rows x cols view");
      }
    }
    // Every column of the tile is in the quad's 4 threads exactly once per row.
    if (thread % 4 == 0) {
      for (int r = 0; r < size<0>(rc); ++r) {
        int seen[kN] = {};
        for (int lane = 0; lane < 4; ++lane) {
          Tensor other = coords(thread + lane);
          Tensor other_rc = make_tensor(other.data(), sm90::acc_as_rows_cols(other.layout()));
          for (int c = 0; c < size<1>(other_rc); ++c) ++seen[get<1>(other_rc(r, c))];
        }
        for (int c = 0; c < kN; ++c) expect(seen[c] == 1, "a quad holds whole rows");
      }
    }
  }
}

template <class Cfg>
static void check_forward() {
  constexpr int kM = Cfg::kBlockM, kN = Cfg::kBlockN, kD = Cfg::kHeadDim;
  check_rows_cols<typename Cfg::TiledMmaQK, kM, kN>(Cfg::kConsumerThreads);
  check_rows_cols<typename Cfg::TiledMmaPV, kM, kD>(Cfg::kConsumerThreads);
  typename Cfg::TiledMmaQK mma_qk;
  typename Cfg::TiledMmaPV mma_pv;
  for (int thread = 0; thread < Cfg::kConsumerThreads; ++thread) {
    Tensor tScS = mma_qk.get_thread_slice(thread).partition_C(make_identity_tensor(Shape<Int<kM>, Int<kN>>{}));
    Tensor regrouped = make_tensor(tScS.data(), sm90::acc_as_operand_a(tScS.layout()));
    Tensor tOcP = mma_pv.get_thread_slice(thread).partition_A(make_identity_tensor(Shape<Int<kM>, Int<kN>>{}));
    CUTE_STATIC_ASSERT_V(size<0>(regrouped) == size<0>(tOcP) && size<1>(regrouped) == size<1>(tOcP) &&
                         size<2>(regrouped) == size<2>(tOcP));
    for (int i = 0; i < size(tOcP); ++i) expect(regrouped(i) == tOcP(i), "scores as the A operand of P V");
  }
  const typename Cfg::SmemKV kv{};
  const typename Cfg::SmemVt vt{};
  for (int s = 0; s < Cfg::kStages; ++s) {
    for (int n = 0; n < kN; ++n) {
      for (int d = 0; d < kD; ++d) expect(kv(n, d, s) == vt(d, n, s), "V^T view is the transpose of V");
    }
  }
}

int main() {
  check_forward<sm90::FlashFwdSm90Config<cutlass::bfloat16_t, 64>>();
  check_forward<sm90::FlashFwdSm90Config<cutlass::half_t, 128>>();
  std::printf("flash_layouts_sm90: %s\n", failures ? "FAILED" : "OK");
  return failures ? 1 : 0;
}
