#pragma once
// The emulator's CUtensorMap: what its cuTensorMapEncodeTiled (tensor_map.cpp) stores in the
// 128 opaque bytes, and how the emulated TMA instructions (tma_sm90.h) read it back.
//
// The host code reaches the encode as it does when nvcc 13 compiles it: CuTe's make_tma_copy
// calls cutlass::call_cuTensorMapEncodeTiled, which looks the driver function up with
// cudaGetDriverEntryPointByVersion. Those paths are compiled only when __CUDACC_VER_MAJOR__ >= 12,
// so the shadow headers include/cutlass/cuda_host_adapter.hpp, include/cute/arch/copy_sm90_desc.hpp
// and include/cute/atom/copy_traits_sm90_tma.hpp compile CUTLASS's own headers with
// __CUDACC_VER_MAJOR__ = 13 (after including everything else they need without it).
//
// The real layout of a CUtensorMap is undocumented ("an opaque value"), so this one is ours; a
// map that no successful encode wrote (CuTe prints the driver's error and goes on with a zeroed
// descriptor) is reported when a TMA instruction or prefetch.tensormap uses it.
#include <cuda.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "cuda_emu.h"

namespace emu {

struct TensorMap {
  static constexpr uint64_t kEncoded = 0x454d552d544d4150ull;  // "EMU-TMAP": written only by a successful encode
  uint64_t magic;
  uint64_t address;            // globalAddress
  uint64_t dims[5];            // globalDim, elements
  uint64_t strides[5];         // bytes; strides[0] is the element size (TMA does not stride dim 0)
  uint16_t box[5];             // boxDim, elements traversed (1..256)
  uint8_t element_strides[5];  // elementStrides (1..8)
  uint8_t rank, element_bytes;
  uint8_t swizzle_bytes;       // 0 (none), 32, 64 or 128: the span 16-byte chunks are permuted in
  uint8_t interleave;          // CUtensorMapInterleave
  uint8_t oob_fill;            // CUtensorMapFloatOOBfill

  // Along dim i a copy moves ceil(boxDim / elementStride) elements, elementStride apart; the
  // stride is ignored on dim 0 without interleave (driver API, cuTensorMapEncodeTiled).
  uint32_t step(int i) const {
    return (i == 0 && interleave == CU_TENSOR_MAP_INTERLEAVE_NONE) ? 1 : element_strides[i];
  }
  uint32_t traversed(int i) const { return (box[i] + step(i) - 1) / step(i); }
  uint32_t box_bytes() const {
    uint32_t n = element_bytes;
    for (int i = 0; i < rank; ++i) n *= traversed(i);
    return n;
  }
};
static_assert(sizeof(TensorMap) <= sizeof(CUtensorMap), "the map must fit the driver's 128 bytes");

// cuTensorMapEncodeTiled with every limit the driver API documents checked; the reason of the
// last CUDA_ERROR_INVALID_VALUE is kept for tests and reports.
CUresult encode_tensor_map_tiled(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* address,
                                 const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box,
                                 const cuuint32_t* element_strides, CUtensorMapInterleave interleave,
                                 CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2_promotion,
                                 CUtensorMapFloatOOBfill oob_fill);
std::string& last_encode_error();

// The map a TMA instruction names. PTX ISA (cp.async.bulk.tensor, prefetch.tensormap): the
// tensor-map operand is a generic address of a 64-byte aligned CUtensorMap in the .param,
// .const or .global state space (here: anywhere but shared memory).
inline TensorMap tensor_map_at(const void* desc, const char* what) {
  if (desc == nullptr || reinterpret_cast<uintptr_t>(desc) % 64 != 0) {
    fail(std::string(what) + " with a tensor map address not aligned to 64 bytes (" + where() + ")");
  }
  if (in_shared_buffer(desc)) fail(std::string(what) + " with a tensor map in shared memory (" + where() + ")");
  TensorMap map;
  std::memcpy(&map, desc, sizeof map);
  if (map.magic != TensorMap::kEncoded) {
    fail(std::string(what) + " with a tensor map that no successful cuTensorMapEncodeTiled wrote (was the encode's "
         "error ignored?) (" + where() + ")");
  }
  return map;
}

}  // namespace emu
