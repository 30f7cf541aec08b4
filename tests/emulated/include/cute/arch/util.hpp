#pragma once
// cast_smem_ptr_to_uint as on the device: the shared-window address, here the offset into the
// emulator's shared memory (CuTe's host branch answers 0, which would put every wgmma matrix
// descriptor and stmatrix address at the start of shared memory).
#include "cuda_emu.h"

#define cast_smem_ptr_to_uint cast_smem_ptr_to_uint_on_gpu
#include_next <cute/arch/util.hpp>
#undef cast_smem_ptr_to_uint

namespace cute {

inline uint32_t cast_smem_ptr_to_uint(void const* const ptr) {
  if (!emu::in_shared_buffer(ptr)) emu::fail("a shared-memory address of a pointer outside shared memory");
  return uint32_t(static_cast<const unsigned char*>(ptr) - emu_shared_memory);
}

}  // namespace cute
