#pragma once
// Emulated wgmma.fence / commit_group / wait_group (wgmma_sm90.h) under CuTe's names. CuTe's
// GMMA atoms stay as they are: their fma bodies, on this host compile, reach
// CUTE_INVALID_CONTROL_PATH, which cute_atoms.h turns into an error, so an atom the emulation does
// not take over (mma_traits_sm90_gmma.hpp) fails when it runs instead of doing nothing.
#include "cute_atoms.h"
#include "wgmma_sm90.h"

#define warpgroup_arrive warpgroup_arrive_on_gpu
#define warpgroup_wait warpgroup_wait_on_gpu
#define warpgroup_commit_batch warpgroup_commit_batch_on_gpu
#include_next <cute/arch/mma_sm90_gmma.hpp>
#undef warpgroup_arrive
#undef warpgroup_wait
#undef warpgroup_commit_batch

namespace cute {

inline void warpgroup_arrive() { emu::wgmma::fence(); }

template <int N>
inline void warpgroup_wait() {
  static_assert(N >= 0 && N <= 7, "wgmma.wait_group: N must be in 0..7");
  emu::wgmma::wait(N);
}

inline void warpgroup_commit_batch() { emu::wgmma::commit(); }

}  // namespace cute
