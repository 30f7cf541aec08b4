#pragma once
// mma.sync building blocks of the portable flash-attention kernels: shared-to-register GEMMs
// that prefetch the next k-slice while the current one multiplies, and the register-layout
// views of the SM80 16x8x16 accumulator (as rows x columns for the softmax, and as the A
// operand of the next GEMM, which is how P and dS are reused without a trip through memory).
#include <cute/tensor.hpp>
#include <cutlass/numeric_conversion.h>

namespace headmix::kernels::sm80 {

using namespace cute;

// acc += A * B over the k mode, both operands read from shared memory through ldmatrix.
// rA (MMA,MMA_M,MMA_K) / rB (MMA,MMA_N,MMA_K) are register fragments; tXsA / tXsB the same
// tiles partitioned by the matching smem tiled copies.
template <class TiledMma, class Acc, class RegA, class RegB, class SmemA, class SmemB, class CopyA, class CopyB>
__device__ __forceinline__ void gemm_ss(const TiledMma& mma, Acc& acc, RegA& rA, RegB& rB,
                                        const SmemA& tXsA, const SmemB& tXsB, const CopyA& copy_a,
                                        const CopyB& copy_b) {
  Tensor tXrA = make_tensor(rA.data(), CopyA::retile(rA.layout()));  // (CPY,CPY_M,CPY_K)
  Tensor tXrB = make_tensor(rB.data(), CopyB::retile(rB.layout()));  // (CPY,CPY_N,CPY_K)
  copy(copy_a, tXsA(_, _, 0), tXrA(_, _, 0));
  copy(copy_b, tXsB(_, _, 0), tXrB(_, _, 0));
  CUTE_UNROLL
  for (int k = 0; k < size<2>(rA); ++k) {
    if (k + 1 < size<2>(rA)) {
      copy(copy_a, tXsA(_, _, k + 1), tXrA(_, _, k + 1));
      copy(copy_b, tXsB(_, _, k + 1), tXrB(_, _, k + 1));
    }
    gemm(mma, rA(_, _, k), rB(_, _, k), acc);
  }
}

// acc += A * B with A already in registers (P or dS reused as an A operand).
template <class TiledMma, class Acc, class RegA, class RegB, class SmemB, class CopyB>
__device__ __forceinline__ void gemm_rs(const TiledMma& mma, Acc& acc, const RegA& rA, RegB& rB,
                                        const SmemB& tXsB, const CopyB& copy_b) {
  Tensor tXrB = make_tensor(rB.data(), CopyB::retile(rB.layout()));  // (CPY,CPY_N,CPY_K)
  copy(copy_b, tXsB(_, _, 0), tXrB(_, _, 0));
  CUTE_UNROLL
  for (int k = 0; k < size<2>(rA); ++k) {
    if (k + 1 < size<2>(rA)) copy(copy_b, tXsB(_, _, k + 1), tXrB(_, _, k + 1));
    gemm(mma, rA(_, _, k), rB(_, _, k), acc);
  }
}

// The 16x8 accumulator holds per thread ((2 columns, 2 row halves), MMA_M, MMA_N); viewed as
// ((2, MMA_M) rows, (2, MMA_N) columns) so softmax code can loop over rows and columns.
template <class Layout>
CUTE_HOST_DEVICE auto acc_as_rows_cols(Layout acc) {
  static_assert(decltype(rank(acc))::value == 3 && decltype(size<0>(acc))::value == 4);
  return make_layout(make_layout(get<0, 1>(acc), get<1>(acc)), make_layout(get<0, 0>(acc), get<2>(acc)));
}

// Two neighbouring 16x8 accumulator tiles hold exactly the values one thread feeds a 16x8x16
// A operand (k = the 16 columns), so ((2,2), MMA_M, MMA_N) regroups to ((2,2,2), MMA_M, MMA_N/2).
template <class Layout>
CUTE_HOST_DEVICE auto acc_as_operand_a(Layout acc) {
  static_assert(decltype(size<2>(acc))::value % 2 == 0);
  auto split = logical_divide(acc, Shape<Underscore, Underscore, _2>{});  // ((2,2),MMA_M,(2,MMA_N/2))
  return make_layout(make_layout(get<0>(split), get<2, 0>(split)), get<1>(split), get<2, 1>(split));
}

// Element-wise conversion of a register fragment (packed cvt instructions for bf16/fp16).
template <typename To, class Engine, class Layout>
__device__ __forceinline__ auto convert_fragment(const Tensor<Engine, Layout>& src) {
  using From = typename Engine::value_type;
  constexpr int kSize = decltype(size(src))::value;
  Tensor dst = make_tensor<To>(src.layout());
  const cutlass::NumericArrayConverter<To, From, kSize> convert;
  *reinterpret_cast<cutlass::Array<To, kSize>*>(dst.data()) =
      convert(*reinterpret_cast<const cutlass::Array<From, kSize>*>(src.data()));
  return dst;
}

// Copies the rows of a partitioned (CPY, CPY_ROWS, CPY_COLS) tile whose row coordinate (from
// the identity tensor partitioned the same way) is below `valid_rows`, and zero-fills the
// others, so tails never read past the sequence and never feed garbage (NaN * 0) to a GEMM.
template <class TiledCopy, class Src, class Dst, class Coords>
__device__ __forceinline__ void copy_rows_zfill(const TiledCopy& tiled_copy, const Src& src, Dst&& dst,
                                                const Coords& coords, int valid_rows) {
  CUTE_UNROLL
  for (int m = 0; m < size<1>(src); ++m) {
    const bool valid = get<0>(coords(0, m, 0)) < valid_rows;
    CUTE_UNROLL
    for (int k = 0; k < size<2>(src); ++k) copy(tiled_copy.with(valid), src(_, m, k), dst(_, m, k));
  }
}

// Stores the rows of a partitioned register/shared tile whose row coordinate is below `valid_rows`.
template <class TiledCopy, class Src, class Dst, class Coords>
__device__ __forceinline__ void copy_rows(const TiledCopy& tiled_copy, const Src& src, Dst&& dst,
                                          const Coords& coords, int valid_rows) {
  CUTE_UNROLL
  for (int m = 0; m < size<1>(src); ++m) {
    if (get<0>(coords(0, m, 0)) < valid_rows) copy(tiled_copy, src(_, m, _), dst(_, m, _));
  }
}

}  // namespace headmix::kernels::sm80
