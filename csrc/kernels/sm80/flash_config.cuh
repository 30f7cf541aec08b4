#pragma once
// Tile configuration shared by the portable flash-attention kernels: the mma.sync atom of the
// element type, a tiled MMA of kWarpsM x kWarpsN warps, 128-byte-swizzled shared
// layouts (conflict-free for 16-byte cp.async writes and ldmatrix reads), and the copies
// between global, shared and registers. Every (rows x d) tile is a stack of 8 x 64 swizzle
// atoms, so d must be a multiple of 64.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include <cute/tensor.hpp>
#include <cutlass/numeric_types.h>

namespace headmix::kernels::sm80 {

using namespace cute;

template <typename Element>
using MmaAtom = std::conditional_t<std::is_same_v<Element, cutlass::bfloat16_t>,
                                   SM80_16x8x16_F32BF16BF16F32_TN, SM80_16x8x16_F32F16F16F32_TN>;

template <typename Element_, int kHeadDim_, int kWarpsM, int kWarpsN>
struct FlashConfig {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static_assert(kHeadDim % 64 == 0, "tiles are stacks of 64-column swizzle atoms");

  // Each warp owns 16-row slabs of M and 16-column slabs of N, so one ldmatrix.x4 feeds two
  // 16x8x16 MMAs with B.
  using TiledMma = TiledMMA<MMA_Atom<MmaAtom<Element>>, Layout<Shape<Int<kWarpsM>, Int<kWarpsN>, _1>>,
                            Tile<Int<16 * kWarpsM>, Int<16 * kWarpsN>, _16>>;

  // 8 rows x 64 columns (128 bytes): Swizzle<3,3,3> spreads the 8 16-byte chunks of a row
  // over all banks for both the row-wise writes and the column-wise ldmatrix reads.
  using SmemAtom = decltype(composition(Swizzle<3, 3, 3>{}, Layout<Shape<_8, _64>, Stride<_64, _1>>{}));
  // kStages row-major (kRows x kCols) tiles, and their (kCols x kRows) transposed view: the
  // operand that a GEMM reduces along its rows (V in P V, K in dS K, Q and dO in dK and dV).
  template <int kRows, int kCols, int kStages>
  using SmemStages = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kRows>, Int<kCols>, Int<kStages>>{}));
  template <int kRows, int kCols, int kStages>
  using SmemStagesT = decltype(composition(
      SmemStages<kRows, kCols, kStages>{},
      make_layout(Shape<Int<kCols>, Int<kRows>, Int<kStages>>{}, Stride<Int<kRows>, _1, Int<kRows * kCols>>{})));
  template <int kRows, int kCols>
  using SmemTile = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kRows>, Int<kCols>>{}));
  template <int kRows, int kCols>
  using SmemTileT = decltype(composition(SmemTile<kRows, kCols>{},
                                         make_layout(Shape<Int<kCols>, Int<kRows>>{}, Stride<Int<kRows>, _1>{})));

  // Global -> shared: 16-byte cp.async (zero-filling masked rows), 8 threads per 64 columns.
  using GmemLoad = decltype(make_tiled_copy(
      Copy_Atom<SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<cute::uint128_t>, Element>{},
      Layout<Shape<Int<kThreads / 8>, _8>, Stride<_8, _1>>{}, Layout<Shape<_1, _8>>{}));
  // Shared -> global: 16-byte stores with the same thread arrangement.
  using GmemStore = decltype(make_tiled_copy(Copy_Atom<UniversalCopy<cute::uint128_t>, Element>{},
                                             Layout<Shape<Int<kThreads / 8>, _8>, Stride<_8, _1>>{},
                                             Layout<Shape<_1, _8>>{}));
  // Shared -> registers for the MMA operands.
  using LdsmAtom = Copy_Atom<SM75_U32x4_LDSM_N, Element>;
  using LdsmTransAtom = Copy_Atom<SM75_U16x8_LDSM_T, Element>;
  // Registers -> shared for the accumulator layout (pairs of elements).
  using StsAtom = Copy_Atom<AutoVectorizingCopyWithAssumedAlignment<32>, Element>;
};

}  // namespace headmix::kernels::sm80
