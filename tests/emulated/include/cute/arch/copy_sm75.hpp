#pragma once
// Emulated ldmatrix atoms: ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 as the PTX ISA
// defines it. Lanes 8i..8i+7 give the row addresses of matrix i; register i of lane l receives
// elements (row l / 4, columns 2(l % 4), 2(l % 4) + 1) of matrix i, or with .trans (rows
// 2(l % 4), 2(l % 4) + 1, column l / 4), the lower index in the lower 16 bits. Every row is a
// checked 16-byte shared-memory read.
#include "cute_atoms.h"

#define SM75_U32x4_LDSM_N SM75_U32x4_LDSM_N_on_gpu
#define SM75_U16x8_LDSM_T SM75_U16x8_LDSM_T_on_gpu
#include_next <cute/arch/copy_sm75.hpp>
#undef SM75_U32x4_LDSM_N
#undef SM75_U16x8_LDSM_T

namespace emu {

template <bool kTrans>
struct EmulatedLdmatrixX4 {
  using SRegisters = cute::uint128_t[1];
  using DRegisters = uint32_t[4];
  static void copy(const cute::uint128_t& row_address, uint32_t& d0, uint32_t& d1, uint32_t& d2, uint32_t& d3) {
    if (!in_shared_buffer(&row_address)) fail("ldmatrix row address outside shared memory (" + where() + ")");
    check_alignment(&row_address, 16, "ldmatrix row");
    shared_read(&row_address, 16, "ldmatrix row");
    my_slot()[2] = reinterpret_cast<uint64_t>(&row_address);
    uint32_t d[4];
    warp_exchange([&] {
      const int l = lane();
      for (int i = 0; i < 4; ++i) {
        const auto row = [&](int r) { return reinterpret_cast<const uint16_t*>(lane_slot(8 * i + r)[2]); };
        const uint16_t lo = kTrans ? row(2 * (l % 4))[l / 4] : row(l / 4)[2 * (l % 4)];
        const uint16_t hi = kTrans ? row(2 * (l % 4) + 1)[l / 4] : row(l / 4)[2 * (l % 4) + 1];
        d[i] = uint32_t(lo) | (uint32_t(hi) << 16);
      }
    });
    d0 = d[0];
    d1 = d[1];
    d2 = d[2];
    d3 = d[3];
  }
};

}  // namespace emu

namespace cute {
struct SM75_U32x4_LDSM_N : emu::EmulatedLdmatrixX4<false> {};
struct SM75_U16x8_LDSM_T : emu::EmulatedLdmatrixX4<true> {};
}  // namespace cute
