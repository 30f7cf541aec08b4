#pragma once
// Warp-level mma.sync m16n8k16 (16-bit inputs, fp32 accumulators) on plain register
// fragments, for kernels where one warp owns whole tiles and indexes them itself (decode). The
// CuTe atoms issue the PTX; this header fixes the fragment layouts and the swizzled shared
// tiles that ldmatrix reads. With g = lane / 4 and q = lane % 4:
//   A 16x16 (row-major): a[0] = (row g, cols 2q, 2q+1), a[1] = (row g+8, same cols),
//                        a[2] = (row g, cols 8+2q, 9+2q), a[3] = (row g+8, same cols)
//   B 16x8 (k x n):      b[0] = (k 2q, 2q+1; col g), b[1] = (k 8+2q, 9+2q; col g)
//   C 16x8:              c[0], c[1] = (row g, cols 2q, 2q+1), c[2], c[3] = (row g+8, same cols)
// Two C tiles side by side hold exactly one A fragment (c of tile 2k -> a[0..1], of 2k+1 ->
// a[2..3]), which is how attention feeds P to the second GEMM without leaving registers.
//
// Shared tiles are rows of kChunks 16-byte chunks (8 elements); chunk c of row r lives at
// c ^ (r % 8), so the 8 row addresses of each ldmatrix phase, and the 16-byte cp.async writes of
// a row, fall in 8 distinct bank groups. Needs kChunks >= 8 (rows of 64 elements or more).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include <cute/arch/copy_sm75.hpp>
#include <cute/arch/copy_sm80.hpp>
#include <cute/arch/mma_sm80.hpp>

namespace headmix::kernels::sm80 {

// Element offset of chunk `chunk` of row `row` in a swizzled tile.
template <int kChunks>
__device__ __forceinline__ int swizzled(int row, int chunk) {
  static_assert(kChunks >= 8 && kChunks % 8 == 0, "the swizzle permutes 8 chunks per row");
  return (row * kChunks + (chunk ^ (row & 7))) * 8;
}

// The swizzled offsets one lane visits in an unrolled loop: chunk + dchunk of row + drow, with
// the lane's (row, chunk) fixed and (drow, dchunk) compile-time. When their bits do not overlap
// (drow a multiple of 8 or of a power of two above row; dchunk even and chunk in {0, 1}, or
// dchunk = 0), the sums are XORs and the offset is base + constant + 8 * (flip ^ constant):
// one logic op per access instead of a hoisted register per access.
template <int kChunks>
struct SwizzledLane {
  int base;  // row * kChunks * 8
  int flip;  // chunk ^ (row % 8)
  __device__ SwizzledLane(int row, int chunk) : base(row * kChunks * 8), flip(chunk ^ (row & 7)) {}
  __device__ int at(int drow, int dchunk) const {
    return base + (drow * kChunks + (flip ^ dchunk ^ (drow & 7))) * 8;
  }
};

// 16 bytes global -> shared, asynchronously; zero-filled without reading global when !valid.
template <typename T>
__device__ __forceinline__ void cp_async_16(T* smem, const T* gmem, bool valid) {
  using Chunk = cute::uint128_t;
  cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<Chunk>::copy(*reinterpret_cast<const Chunk*>(gmem),
                                                     *reinterpret_cast<Chunk*>(smem), valid);
}

// Four 8x8 matrices, one per lane octet: lanes 8i..8i+7 give the row addresses of matrix i,
// and register i receives matrix i in the A/B fragment order above (transposed: .trans).
template <typename T>
__device__ __forceinline__ void ldsm_x4(const T* smem, uint32_t (&r)[4]) {
  cute::SM75_U32x4_LDSM_N::copy(*reinterpret_cast<const cute::uint128_t*>(smem), r[0], r[1], r[2], r[3]);
}

template <typename T>
__device__ __forceinline__ void ldsm_x4_trans(const T* smem, uint32_t (&r)[4]) {
  cute::SM75_U16x8_LDSM_T::copy(*reinterpret_cast<const cute::uint128_t*>(smem), r[0], r[1], r[2], r[3]);
}

// c += a * b for one 16x8x16 tile.
template <typename T>
__device__ __forceinline__ void mma_16x8x16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  using Atom = std::conditional_t<std::is_same_v<T, __nv_bfloat16>, cute::SM80_16x8x16_F32BF16BF16F32_TN,
                                  cute::SM80_16x8x16_F32F16F16F32_TN>;
  Atom::fma(c[0], c[1], c[2], c[3], a[0], a[1], a[2], a[3], b0, b1, c[0], c[1], c[2], c[3]);
}

// Two fp32 values as one register of 16-bit elements, `lo` in the low half (the lower index).
template <typename T>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

}  // namespace headmix::kernels::sm80
