#pragma once
// Stand-in for CuTe's ldmatrix atoms: ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 as the
// PTX ISA defines it. Lanes 8i..8i+7 give the row addresses of matrix i; register i of lane l
// receives matrix i's elements (row l/4; cols 2(l%4), 2(l%4)+1), with .trans those at
// (rows 2(l%4), 2(l%4)+1; col l/4); the lower element in the lower 16 bits.
#include "cuda_emu.h"
#include "cute/numeric/int.hpp"

namespace cute {

template <bool kTrans>
inline void emu_ldmatrix_x4(const uint128_t& row_address, uint32_t& d0, uint32_t& d1, uint32_t& d2, uint32_t& d3) {
  emu::check_shared(&row_address, 16, "ldmatrix row");
  emu::my_slot()[2] = reinterpret_cast<uint64_t>(&row_address);
  uint32_t d[4];
  emu::warp_exchange([&] {
    const int l = emu::lane();
    for (int i = 0; i < 4; ++i) {
      const auto row = [&](int r) { return reinterpret_cast<const uint16_t*>(emu::lane_slot(8 * i + r)[2]); };
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

struct SM75_U32x4_LDSM_N {
  static void copy(const uint128_t& s, uint32_t& d0, uint32_t& d1, uint32_t& d2, uint32_t& d3) {
    emu_ldmatrix_x4<false>(s, d0, d1, d2, d3);
  }
};

struct SM75_U16x8_LDSM_T {
  static void copy(const uint128_t& s, uint32_t& d0, uint32_t& d1, uint32_t& d2, uint32_t& d3) {
    emu_ldmatrix_x4<true>(s, d0, d1, d2, d3);
  }
};

}  // namespace cute
