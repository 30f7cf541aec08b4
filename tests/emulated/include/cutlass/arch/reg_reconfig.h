#pragma once
// Emulated setmaxnreg (setmaxnreg.h) under CUTLASS's names; its host branch does nothing.
#include "cute_atoms.h"
#include "setmaxnreg.h"

#define warpgroup_reg_alloc warpgroup_reg_alloc_on_gpu
#define warpgroup_reg_dealloc warpgroup_reg_dealloc_on_gpu
#include_next <cutlass/arch/reg_reconfig.h>
#undef warpgroup_reg_alloc
#undef warpgroup_reg_dealloc

namespace cutlass::arch {

template <uint32_t RegCount>
inline void warpgroup_reg_alloc() { emu::setmaxnreg(true, int(RegCount)); }

template <uint32_t RegCount>
inline void warpgroup_reg_dealloc() { emu::setmaxnreg(false, int(RegCount)); }

}  // namespace cutlass::arch
