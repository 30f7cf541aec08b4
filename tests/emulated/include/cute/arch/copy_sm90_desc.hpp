#pragma once
// CuTe's TMA descriptor header as nvcc 13 compiles it (TmaDescriptor is the driver's CUtensorMap,
// with the CUtensorMap enum conversions; tensor_map.h says why the version macros are set here),
// and prefetch.tensormap emulated: a hint, so only the map it names is checked.
#include <cuda.h>

#include <cinttypes>
#include <cute/arch/config.hpp>
#include <cute/arch/copy.hpp>
#include <cute/arch/copy_sm90.hpp>
#include <cute/arch/util.hpp>
#include <cute/config.hpp>
#include <cute/container/alignment.hpp>
#include <cute/container/array.hpp>
#include <cute/container/bit_field.hpp>
#include <cute/numeric/numeric_types.hpp>
#include <cutlass/numeric_types.h>

#include "cute_atoms.h"
#include "tensor_map.h"

#define __CUDACC_VER_MAJOR__ 13
#define __CUDACC_VER_MINOR__ 0
#define prefetch_tma_descriptor prefetch_tma_descriptor_on_gpu
#include_next <cute/arch/copy_sm90_desc.hpp>
#undef prefetch_tma_descriptor
#undef __CUDACC_VER_MAJOR__
#undef __CUDACC_VER_MINOR__

namespace cute {

inline void prefetch_tma_descriptor(TmaDescriptor const* desc_ptr) {
  emu::tensor_map_at(desc_ptr, "prefetch.tensormap");
}

}  // namespace cute
