// The CUDA driver entry points the host code of the Hopper kernels reaches (see tensor_map.h):
// cudaGetDriverEntryPointByVersion, through which CUTLASS finds cuTensorMapEncodeTiled, and
// cuTensorMapEncodeTiled itself, which checks every requirement the driver API documents
// (CUDA 13.0 cuda.h, cuTensorMapEncodeTiled) and answers CUDA_ERROR_INVALID_VALUE like the driver.
#include "tensor_map.h"

#include <cuda_runtime_api.h>

namespace emu {

std::string& last_encode_error() {
  static std::string reason;
  return reason;
}

namespace {

// Element size in bytes; 0 for the packed sub-byte types, which the emulator does not model.
int element_bytes(CUtensorMapDataType type) {
  switch (type) {
    case CU_TENSOR_MAP_DATA_TYPE_UINT8: return 1;
    case CU_TENSOR_MAP_DATA_TYPE_UINT16:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
    case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16: return 2;
    case CU_TENSOR_MAP_DATA_TYPE_UINT32:
    case CU_TENSOR_MAP_DATA_TYPE_INT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32_FTZ:
    case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32:
    case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32_FTZ: return 4;
    case CU_TENSOR_MAP_DATA_TYPE_UINT64:
    case CU_TENSOR_MAP_DATA_TYPE_INT64:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT64: return 8;
    default: return 0;
  }
}

bool is_float(CUtensorMapDataType type) {
  return type == CU_TENSOR_MAP_DATA_TYPE_FLOAT16 || type == CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 ||
         type == CU_TENSOR_MAP_DATA_TYPE_FLOAT32 || type == CU_TENSOR_MAP_DATA_TYPE_FLOAT32_FTZ ||
         type == CU_TENSOR_MAP_DATA_TYPE_TFLOAT32 || type == CU_TENSOR_MAP_DATA_TYPE_TFLOAT32_FTZ ||
         type == CU_TENSOR_MAP_DATA_TYPE_FLOAT64;
}

// The span whose 16-byte chunks a swizzle permutes; -1 for the 128B_ATOM_* modes (not modelled).
int swizzle_span(CUtensorMapSwizzle swizzle) {
  switch (swizzle) {
    case CU_TENSOR_MAP_SWIZZLE_NONE: return 0;
    case CU_TENSOR_MAP_SWIZZLE_32B: return 32;
    case CU_TENSOR_MAP_SWIZZLE_64B: return 64;
    case CU_TENSOR_MAP_SWIZZLE_128B: return 128;
    default: return -1;
  }
}

CUresult refuse(const std::string& reason) {
  last_encode_error() = "cuTensorMapEncodeTiled: " + reason;
  return CUDA_ERROR_INVALID_VALUE;
}

}  // namespace

CUresult encode_tensor_map_tiled(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* address,
                                 const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box,
                                 const cuuint32_t* element_strides, CUtensorMapInterleave interleave,
                                 CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2_promotion,
                                 CUtensorMapFloatOOBfill oob_fill) {
  last_encode_error().clear();
  if (map == nullptr || reinterpret_cast<uintptr_t>(map) % 64) return refuse("tensorMap must be 64-byte aligned");
  const int bytes = element_bytes(type);
  if (bytes == 0) return refuse("tensorDataType " + std::to_string(int(type)) + " is not one the emulator models");
  if (interleave < CU_TENSOR_MAP_INTERLEAVE_NONE || interleave > CU_TENSOR_MAP_INTERLEAVE_32B) {
    return refuse("interleave " + std::to_string(int(interleave)) + " is not a CUtensorMapInterleave");
  }
  const bool interleaved = interleave != CU_TENSOR_MAP_INTERLEAVE_NONE;
  if (rank < 1 || rank > 5) return refuse("tensorRank " + std::to_string(rank) + " outside 1..5");
  if (interleaved && rank < 3) return refuse("tensorRank must be at least 3 with interleave");
  if (dims == nullptr || box == nullptr || element_strides == nullptr || (rank > 1 && strides == nullptr)) {
    return refuse("a null array argument");
  }
  const uintptr_t base = reinterpret_cast<uintptr_t>(address);
  const int address_align = interleave == CU_TENSOR_MAP_INTERLEAVE_32B ? 32 : 16;
  if (base % address_align) return refuse("globalAddress must be " + std::to_string(address_align) + "-byte aligned");
  for (cuuint32_t i = 0; i < rank; ++i) {
    if (dims[i] < 1 || dims[i] > (cuuint64_t(1) << 32)) {
      return refuse("globalDim[" + std::to_string(i) + "] = " + std::to_string(dims[i]) + " outside 1..2^32");
    }
  }
  const cuuint64_t stride_align = interleave == CU_TENSOR_MAP_INTERLEAVE_32B ? 32 : 16;
  for (cuuint32_t i = 0; i + 1 < rank; ++i) {
    if (strides[i] % stride_align || strides[i] >= (cuuint64_t(1) << 40)) {
      return refuse("globalStrides[" + std::to_string(i) + "] = " + std::to_string(strides[i]) +
                    " bytes must be a multiple of " + std::to_string(stride_align) + " below 2^40");
    }
  }
  for (cuuint32_t i = 0; i < rank; ++i) {
    if (box[i] < 1 || box[i] > 256) {
      return refuse("boxDim[" + std::to_string(i) + "] = " + std::to_string(box[i]) + " outside 1..256");
    }
    if (element_strides[i] < 1 || element_strides[i] > 8) {
      return refuse("elementStrides[" + std::to_string(i) + "] = " + std::to_string(element_strides[i]) +
                    " outside 1..8");
    }
  }
  const cuuint64_t inner_bytes = cuuint64_t(box[0]) * bytes;
  if (!interleaved && inner_bytes % 16) {
    return refuse("boxDim[0] x element size = " + std::to_string(inner_bytes) + " bytes must be a multiple of 16");
  }
  const int span = swizzle_span(swizzle);
  if (span < 0) return refuse("swizzle " + std::to_string(int(swizzle)) + " is not one the emulator models");
  if (!interleaved && span > 0 && inner_bytes > cuuint64_t(span)) {
    return refuse("the box's inner dimension of " + std::to_string(inner_bytes) + " bytes exceeds the " +
                  std::to_string(span) + "-byte swizzle span");
  }
  if (interleave == CU_TENSOR_MAP_INTERLEAVE_32B && swizzle != CU_TENSOR_MAP_SWIZZLE_32B) {
    return refuse("interleave 32B requires swizzle 32B");
  }
  if (l2_promotion < CU_TENSOR_MAP_L2_PROMOTION_NONE || l2_promotion > CU_TENSOR_MAP_L2_PROMOTION_L2_256B) {
    return refuse("l2Promotion " + std::to_string(int(l2_promotion)) + " is not a CUtensorMapL2promotion");
  }
  if (oob_fill != CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE && oob_fill != CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA) {
    return refuse("oobFill " + std::to_string(int(oob_fill)) + " is not a CUtensorMapFloatOOBfill");
  }
  if (oob_fill == CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA && !is_float(type)) {
    return refuse("oobFill NAN_REQUEST_ZERO_FMA needs a floating-point tensorDataType");
  }

  TensorMap m{};
  m.magic = TensorMap::kEncoded;
  m.address = base;
  m.rank = uint8_t(rank);
  m.element_bytes = uint8_t(bytes);
  m.swizzle_bytes = uint8_t(span);
  m.interleave = uint8_t(interleave);
  m.oob_fill = uint8_t(oob_fill);
  for (cuuint32_t i = 0; i < rank; ++i) {
    m.dims[i] = dims[i];
    m.strides[i] = i == 0 ? cuuint64_t(bytes) : strides[i - 1];
    m.box[i] = uint16_t(box[i]);
    m.element_strides[i] = uint8_t(element_strides[i]);
  }
  std::memset(map, 0, sizeof *map);
  std::memcpy(map, &m, sizeof m);
  return CUDA_SUCCESS;
}

}  // namespace emu

extern "C" {

CUresult CUDAAPI cuTensorMapEncodeTiled(CUtensorMap* tensorMap, CUtensorMapDataType tensorDataType,
                                        cuuint32_t tensorRank, void* globalAddress, const cuuint64_t* globalDim,
                                        const cuuint64_t* globalStrides, const cuuint32_t* boxDim,
                                        const cuuint32_t* elementStrides, CUtensorMapInterleave interleave,
                                        CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2Promotion,
                                        CUtensorMapFloatOOBfill oobFill) {
  return emu::encode_tensor_map_tiled(tensorMap, tensorDataType, tensorRank, globalAddress, globalDim, globalStrides,
                                      boxDim, elementStrides, interleave, swizzle, l2Promotion, oobFill);
}

// Only the driver functions the emulator provides are found.
cudaError_t CUDARTAPI cudaGetDriverEntryPointByVersion(const char* symbol, void** funcPtr, unsigned int,
                                                        unsigned long long,
                                                        enum cudaDriverEntryPointQueryResult* driverStatus) {
  const bool known = symbol != nullptr && std::string(symbol) == "cuTensorMapEncodeTiled";
  if (funcPtr != nullptr) *funcPtr = known ? reinterpret_cast<void*>(&cuTensorMapEncodeTiled) : nullptr;
  if (driverStatus != nullptr) *driverStatus = known ? cudaDriverEntryPointSuccess : cudaDriverEntryPointSymbolNotFound;
  return cudaSuccess;
}

}  // extern "C"
