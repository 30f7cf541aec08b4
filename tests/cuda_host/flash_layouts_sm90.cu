// Host-side checks of the Hopper flash-attention kernels' layouts, run by `make check-cuda`
// without a GPU (CuTe layout algebra is host-callable):
//  - the wgmma accumulator's (rows, cols) view gives every register the row/column the mask,
//    the softmax, lse/D and the lse store assume, and a quad shares its rows;
//  - score accumulators regrouped as A operands (P in O += P V; P^T and dS^T in dV += P^T dO,
//    dK += dS^T Q) match the RS tiled MMA's own A partition value for value;
//  - every transposed shared-memory view (V^T; Q^T, dO^T; K^T; dS from dS^T) is the exact
//    transpose of the tile TMA or stmatrix writes.

#include "sm90/flash_bwd_kernel.cuh"
#include "sm90/flash_fwd_kernel.cuh"
#include "host_check.h"

using namespace cute;
using host_check::check_transposed;
using host_check::expect;
using namespace headmix::kernels;

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

// The accumulator of Producer (kM x kN) regrouped as the A operand of Consumer, value for value.
template <class Producer, class Consumer, int kM, int kN>
static void check_reuse_as_a(int threads) {
  Producer producer;
  Consumer consumer;
  for (int thread = 0; thread < threads; ++thread) {
    Tensor tC = producer.get_thread_slice(thread).partition_C(make_identity_tensor(Shape<Int<kM>, Int<kN>>{}));
    Tensor regrouped = make_tensor(tC.data(), sm90::acc_as_operand_a(tC.layout()));
    Tensor tA = consumer.get_thread_slice(thread).partition_A(make_identity_tensor(Shape<Int<kM>, Int<kN>>{}));
    CUTE_STATIC_ASSERT_V(size<0>(regrouped) == size<0>(tA) && size<1>(regrouped) == size<1>(tA) &&
                         size<2>(regrouped) == size<2>(tA));
    for (int i = 0; i < size(tA); ++i) expect(regrouped(i) == tA(i), "accumulator as the next A operand");
  }
}

template <class Cfg>
static void check_backward() {
  constexpr int kM = Cfg::kBlockM, kN = Cfg::kBlockN, kD = Cfg::kHeadDim;
  check_rows_cols<typename Cfg::TiledMmaKQ, kN, kM>(Cfg::kConsumerThreads);
  check_reuse_as_a<typename Cfg::TiledMmaKQ, typename Cfg::TiledMmaDkDv, kN, kM>(Cfg::kConsumerThreads);
  check_transposed<typename Cfg::SmemQdO, typename Cfg::SmemQdOt, Cfg::kStages>();
  check_transposed<typename Cfg::SmemKV, typename Cfg::SmemKt, 0>();
  check_transposed<typename Cfg::SmemDsT, typename Cfg::SmemDs, 0>();
  // dQ: the two warpgroups split d, every (query, d) element exactly once.
  typename Cfg::TiledMmaDq mma_dq;
  int seen[kM * kD] = {};
  for (int thread = 0; thread < Cfg::kConsumerThreads; ++thread) {
    Tensor tC = mma_dq.get_thread_slice(thread).partition_C(make_identity_tensor(Shape<Int<kM>, Int<kD>>{}));
    for (int i = 0; i < size(tC); ++i) ++seen[get<0>(tC(i)) * kD + get<1>(tC(i))];
  }
  for (int e = 0; e < kM * kD; ++e) expect(seen[e] == 1, "dQ tile covered once");
}

template <class Cfg>
static void check_forward() {
  constexpr int kM = Cfg::kBlockM, kN = Cfg::kBlockN, kD = Cfg::kHeadDim;
  check_rows_cols<typename Cfg::TiledMmaQK, kM, kN>(Cfg::kConsumerThreads);
  check_rows_cols<typename Cfg::TiledMmaPV, kM, kD>(Cfg::kConsumerThreads);
  check_reuse_as_a<typename Cfg::TiledMmaQK, typename Cfg::TiledMmaPV, kM, kN>(Cfg::kConsumerThreads);
  check_transposed<typename Cfg::SmemKV, typename Cfg::SmemVt, Cfg::kStages>();
}

int main() {
  check_forward<sm90::FlashFwdSm90Config<cutlass::bfloat16_t, 64>>();
  check_forward<sm90::FlashFwdSm90Config<cutlass::half_t, 128>>();
  check_backward<sm90::FlashBwdSm90Config<cutlass::bfloat16_t, 64>>();
  check_backward<sm90::FlashBwdSm90Config<cutlass::half_t, 128>>();
  return host_check::finish("flash_layouts_sm90");
}
