#pragma once
// Emulated stmatrix.sync.aligned.x4.m8n8.shared.b16 (SM90_U32x4_STSM_N) as the PTX ISA defines
// it: lanes 8i..8i+7 give the row addresses of matrix i; register i of lane l holds elements
// (row l / 4, columns 2(l % 4), 2(l % 4) + 1) of matrix i, the lower column in the lower 16 bits.
// Every lane stores the 16-byte row whose address it gave, gathered from the four lanes that
// hold it; rows are checked for bounds and alignment and entered into the race check. The
// other stmatrix atoms are not emulated and fail when run (cute_atoms.h).
#include "cute_atoms.h"

#define SM90_U32x4_STSM_N SM90_U32x4_STSM_N_on_gpu
#include_next <cute/arch/copy_sm90.hpp>
#undef SM90_U32x4_STSM_N

namespace cute {

struct SM90_U32x4_STSM_N {
  using SRegisters = uint32_t[4];
  using DRegisters = uint128_t[1];
  static void copy(uint32_t const& src0, uint32_t const& src1, uint32_t const& src2, uint32_t const& src3,
                   uint128_t& smem_dst) {
    if (!emu::in_shared_buffer(&smem_dst)) emu::fail("stmatrix row address outside shared memory (" + emu::where() + ")");
    emu::check_alignment(&smem_dst, 16, "stmatrix row");
    emu::shared_write(&smem_dst, 16, "stmatrix row");  // a generic-proxy write, race-checked
    auto& slot = emu::my_slot();
    slot[2] = reinterpret_cast<uint64_t>(&smem_dst);
    const uint32_t regs[4] = {src0, src1, src2, src3};
    for (int i = 0; i < 4; ++i) slot[3 + i] = regs[i];
    uint32_t row[4];
    emu::warp_exchange([&] {
      const int l = emu::lane(), matrix = l / 8, r = l % 8;
      for (int c = 0; c < 4; ++c) row[c] = uint32_t(emu::lane_slot(4 * r + c)[3 + matrix]);
    });
    std::memcpy(&smem_dst, row, 16);
  }
};

}  // namespace cute
