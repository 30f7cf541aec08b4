#pragma once
// Emulated UniversalCopy (CuTe's plain load/store atom, and the 16-byte stores the kernels name):
// the same assignment, with the source and destination checked as emulated accesses (bounds,
// alignment, shared-memory races and unwritten reads; registers are not checked).
#include "cute_atoms.h"

#define UniversalCopy UniversalCopy_on_gpu
#include_next <cute/arch/copy.hpp>
#undef UniversalCopy

namespace cute {

template <class S, class D = S>
struct UniversalCopy {
  using SRegisters = S[1];
  using DRegisters = D[1];
  static void copy(S const& src, D& dst) {
    emu::emulated_read(&src, sizeof(S), "UniversalCopy source");
    emu::emulated_write(&dst, sizeof(D), "UniversalCopy destination");
    dst = src;
  }
};

}  // namespace cute
