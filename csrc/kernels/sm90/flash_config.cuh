#pragma once
// Pieces shared by the Hopper (sm_90a) flash-attention kernels: the 128-byte-swizzled shared
// layouts that TMA writes and wgmma reads, the TMA descriptor types of [B, S, heads, d]
// operands, wgmma tiled MMAs (one 64-row atom per consumer warpgroup), the register views of
// the wgmma accumulator, and the warpgroup GEMM call. Host-callable where it is layout
// algebra, so tests/cuda_host checks it without a GPU.
#include <cute/tensor.hpp>
#include <cutlass/numeric_conversion.h>
#include <cutlass/numeric_types.h>

namespace headmix::kernels::sm90 {

using namespace cute;

// ---- warp specialisation ----

// setmaxnreg only moves registers between the warps of a CTA: the launch grants every thread
// 64K / threads registers (in steps of 8, with __launch_bounds__(threads, 1)), so whatever the
// consumers raise to, the producer must give up. A split that does not add up hangs at launch.
template <int kThreads, int kProducerRegisters, int kConsumerRegisters, int kConsumerWarpGroups>
constexpr bool register_split_fits() {
  constexpr int kLaunch = 65536 / kThreads / 8 * 8;
  return kProducerRegisters + kConsumerWarpGroups * kConsumerRegisters <= (1 + kConsumerWarpGroups) * kLaunch &&
         kProducerRegisters % 8 == 0 && kConsumerRegisters % 8 == 0;
}

// ---- shared-memory layouts ----

// (kRows, kCols[, kStages]) tiles with kCols contiguous, tiled from 8 x 64 atoms with the
// 128-byte swizzle: TMA's box layout and a K-major wgmma operand when the GEMM reduces kCols.
template <typename Element, int kRows, int kCols>
using SmemTile = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Element>{}, Shape<Int<kRows>, Int<kCols>>{}));
template <typename Element, int kRows, int kCols, int kStages>
using SmemStages =
    decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Element>{}, Shape<Int<kRows>, Int<kCols>, Int<kStages>>{}));

// The same buffers seen transposed, (kCols, kRows[, kStages]): an MN-major wgmma operand for a
// GEMM that reduces the tile's rows (V in O = P V, dO in dV = P^T dO, Q in dK = dS^T Q).
template <typename Element, int kRows, int kCols>
using SmemTileT = decltype(composition(SmemTile<Element, kRows, kCols>{},
                                       make_layout(Shape<Int<kCols>, Int<kRows>>{}, Stride<Int<kRows>, _1>{})));
template <typename Element, int kRows, int kCols, int kStages>
using SmemStagesT = decltype(composition(
    SmemStages<Element, kRows, kCols, kStages>{},
    make_layout(Shape<Int<kCols>, Int<kRows>, Int<kStages>>{}, Stride<Int<kRows>, _1, Int<kRows * kCols>>{})));

// ---- TMA ----

// A [B, S, heads, d] operand as TMA sees it: (S, d, heads, batch), d contiguous, int64 strides
// in elements (16-byte multiples, which the bindings guarantee).
using GmemShape = Shape<int32_t, int32_t, int32_t, int32_t>;     // (S,d,heads,B)
using GmemStride = Stride<int64_t, _1, int64_t, int64_t>;        // elements

template <typename Pointer>
CUTE_HOST_DEVICE auto make_gmem_operand(Pointer ptr, int64_t rows, int64_t head_dim, int64_t heads, int64_t batch,
                                        int64_t row_stride, int64_t head_stride, int64_t batch_stride) {
  return make_tensor(make_gmem_ptr(ptr),
                     make_layout(GmemShape(int32_t(rows), int32_t(head_dim), int32_t(heads), int32_t(batch)),
                                 GmemStride(row_stride, _1{}, head_stride, batch_stride)));  // (S,d,heads,B)
}

// TMA of one (kRows, kCols) box per copy between a [B, S, heads, d] operand and one stage of
// SmemLayout. Rows past S read as zero (loads) or are not written (stores).
template <class CopyOp, typename Element, class SmemLayout, int kRows, int kCols>
using TmaCopy = decltype(make_tma_copy(
    CopyOp{}, make_tensor(make_gmem_ptr(static_cast<Element*>(nullptr)), make_layout(GmemShape{}, GmemStride{})),
    SmemLayout{}, Shape<Int<kRows>, Int<kCols>>{}, _1{}));

// ---- wgmma ----

// kWarpGroups consumer warpgroups stacked along M, each issuing 64 x kN x 16 wgmma atoms; A and
// B from shared memory (SS) or A from registers (RS, the reuse of P and dS).
template <typename Element, int kWarpGroups, int kN, int kK, GMMA::Major kMajorB = GMMA::Major::K,
          GMMA::Major kMajorA = GMMA::Major::K>
using TiledMmaSS = decltype(make_tiled_mma(
    GMMA::ss_op_selector<Element, Element, float, Shape<_64, Int<kN>, Int<kK>>, kMajorA, kMajorB>(),
    Layout<Shape<Int<kWarpGroups>, _1, _1>>{}));
template <typename Element, int kWarpGroups, int kN, int kK, GMMA::Major kMajorB = GMMA::Major::K>
using TiledMmaRS = decltype(make_tiled_mma(
    GMMA::rs_op_selector<Element, Element, float, Shape<_64, Int<kN>, Int<kK>>, GMMA::Major::K, kMajorB>(),
    Layout<Shape<Int<kWarpGroups>, _1, _1>>{}));

// The wgmma accumulator holds per thread ((2 columns, 2 rows 8 apart, kN/8 column groups),
// MMA_M, MMA_N); viewed as ((2, MMA_M) rows, (2, kN/8, MMA_N) columns). Like mma.sync's, a
// row lives in the 4 threads of a quad, which is what OnlineSoftmax's shuffles assume.
template <class Layout>
CUTE_HOST_DEVICE auto acc_as_rows_cols(Layout acc) {
  static_assert(decltype(rank(acc))::value == 3 && decltype(rank<0>(acc))::value == 3);
  return make_layout(make_layout(get<0, 1>(acc), get<1>(acc)),
                     make_layout(get<0, 0>(acc), get<0, 2>(acc), get<2>(acc)));
}

// 16 accumulator columns hold exactly the values a thread feeds one 64 x N x 16 A operand from
// registers, so ((2, 2, kN/8), MMA_M, MMA_N) regroups to ((2, 2, 2), MMA_M, (kN/16, MMA_N)).
template <class Layout>
CUTE_HOST_DEVICE auto acc_as_operand_a(Layout acc) {
  static_assert(decltype(size<0, 2>(acc))::value % 2 == 0);
  auto groups = logical_divide(get<0, 2>(acc), cute::Layout<_2>{});  // (2, kN/16)
  return make_layout(make_layout(get<0, 0>(acc), get<0, 1>(acc), get<0>(groups)), get<1>(acc),
                     make_layout(get<1>(groups), get<2>(acc)));
}

// Element-wise conversion of a register fragment into one of the same layout (packed cvt
// instructions for bf16/fp16).
template <class SrcEngine, class SrcLayout, class DstEngine, class DstLayout>
__device__ __forceinline__ void convert_fragment_into(const Tensor<SrcEngine, SrcLayout>& src,
                                                      Tensor<DstEngine, DstLayout>& dst) {
  using From = typename SrcEngine::value_type;
  using To = typename DstEngine::value_type;
  constexpr int kSize = decltype(size(src))::value;
  static_assert(decltype(size(dst))::value == kSize);
  const cutlass::NumericArrayConverter<To, From, kSize> convert;
  *reinterpret_cast<cutlass::Array<To, kSize>*>(dst.data()) =
      convert(*reinterpret_cast<const cutlass::Array<From, kSize>*>(src.data()));
}

template <typename To, class Engine, class Layout>
__device__ __forceinline__ auto convert_fragment(const Tensor<Engine, Layout>& src) {
  Tensor dst = make_tensor<To>(src.layout());
  convert_fragment_into(src, dst);
  return dst;
}

// Issues acc (+)= A B over the k mode as one asynchronous wgmma batch of this warpgroup and
// returns without waiting: the caller overlaps other work, then warpgroup_wait<n>(). The
// fences keep the compiler from touching the accumulator (and a register A) while in flight.
template <bool kZeroInit, class TiledMma, class FragA, class FragB, class Acc>
__device__ __forceinline__ void wgmma_async(TiledMma& mma, FragA& a, const FragB& b, Acc& acc) {
  // A is either shared-memory descriptors (SS) or 16-bit registers (RS).
  constexpr bool kRegisterA = !is_same_v<typename FragA::value_type, GmmaDescriptor>;
  if constexpr (kRegisterA) warpgroup_fence_operand(a);
  warpgroup_fence_operand(acc);
  warpgroup_arrive();
  mma.accumulate_ = kZeroInit ? GMMA::ScaleOut::Zero : GMMA::ScaleOut::One;
  CUTE_UNROLL
  for (int k = 0; k < size<2>(a); ++k) {
    gemm(mma, a(_, _, k), b(_, _, k), acc);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
  warpgroup_commit_batch();
  warpgroup_fence_operand(acc);
  if constexpr (kRegisterA) warpgroup_fence_operand(a);
}

// Waits until at most kPending of this warpgroup's wgmma batches are in flight, then fences
// the fragments it is about to touch so the compiler cannot move their uses above the wait.
template <int kPending, class... Frags>
__device__ __forceinline__ void wgmma_wait(Frags&... frags) {
  warpgroup_wait<kPending>();
  (warpgroup_fence_operand(frags), ...);
}

}  // namespace headmix::kernels::sm90
