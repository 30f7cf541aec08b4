#pragma once
// The launchers' one (element type, head dim) dispatch. Elements are CUDA's own types (float,
// __half, __nv_bfloat16); kernels written with CuTe take CUTLASS's type of the same bits
// (CuteElement), on which CuTe's MMA atoms are typed.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include <cute/numeric/integral_constant.hpp>
#include <cutlass/numeric_types.h>

#include "params.h"

namespace headmix::kernels {

template <typename T>
struct CuteElementOf {
  using type = T;
};
template <>
struct CuteElementOf<__half> {
  using type = cutlass::half_t;
};
template <>
struct CuteElementOf<__nv_bfloat16> {
  using type = cutlass::bfloat16_t;
};
template <typename T>
using CuteElement = typename CuteElementOf<T>::type;

// Which element types a kernel family is built for.
enum class Elements { k16Bit, kAll };

// fn(T{}) for dtype's element type T; cudaErrorInvalidValue for a type the family lacks.
template <Elements kElements, class Fn>
cudaError_t with_element(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kBFloat16: return fn(__nv_bfloat16{});
    case DType::kFloat16: return fn(__half{});
    case DType::kFloat32:
      if constexpr (kElements == Elements::kAll) return fn(float{});
      break;
  }
  return cudaErrorInvalidValue;
}

// fn(cute::Int<64>{}) or fn(cute::Int<128>{}): the head dims the attention kernels are built for.
template <class Fn>
cudaError_t with_head_dim(int64_t head_dim, Fn&& fn) {
  if (head_dim == 64) return fn(cute::Int<64>{});
  if (head_dim == 128) return fn(cute::Int<128>{});
  return cudaErrorInvalidValue;
}

}  // namespace headmix::kernels
