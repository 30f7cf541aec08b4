#pragma once
// Emulated SM80 16x8x16 MMA atoms: mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.f32 as the
// PTX ISA lays out its fragments (g = lane / 4, t = lane % 4): A registers {a0,a1} = (row g;
// k 2t, 2t+1), {a2,a3} = (row g+8), {a4,a5} = (row g; k 2t+8, 2t+9), {a6,a7} = (row g+8; k 2t+8..);
// B registers {b0,b1} = (k 2t, 2t+1; col g), {b2,b3} = (k 2t+8, 2t+9; col g); C and D c0, c1 =
// (row g; cols 2t, 2t+1), c2, c3 = (row g+8). Products are exact in fp32, summed in k order.
#include "cute_atoms.h"

#define SM80_16x8x16_F32BF16BF16F32_TN SM80_16x8x16_F32BF16BF16F32_TN_on_gpu
#define SM80_16x8x16_F32F16F16F32_TN SM80_16x8x16_F32F16F16F32_TN_on_gpu
#include_next <cute/arch/mma_sm80.hpp>
#undef SM80_16x8x16_F32BF16BF16F32_TN
#undef SM80_16x8x16_F32F16F16F32_TN

namespace emu {

template <class Element>
inline void mma_m16n8k16(float& d0, float& d1, float& d2, float& d3, uint32_t a0, uint32_t a1, uint32_t a2,
                         uint32_t a3, uint32_t b0, uint32_t b1, float c0, float c1, float c2, float c3) {
  auto& slot = my_slot();
  const uint32_t regs[6] = {a0, a1, a2, a3, b0, b1};
  for (int i = 0; i < 6; ++i) slot[2 + i] = regs[i];
  float a[16][16], b[16][8];
  warp_exchange([&] {
    for (int l = 0; l < 32; ++l) {
      const auto& s = lane_slot(l);
      const int g = l / 4, t = l % 4;
      for (int h = 0; h < 2; ++h) {
        a[g][2 * t + h] = half_of<Element>(s[2], h);
        a[g + 8][2 * t + h] = half_of<Element>(s[3], h);
        a[g][2 * t + 8 + h] = half_of<Element>(s[4], h);
        a[g + 8][2 * t + 8 + h] = half_of<Element>(s[5], h);
        b[2 * t + h][g] = half_of<Element>(s[6], h);
        b[2 * t + 8 + h][g] = half_of<Element>(s[7], h);
      }
    }
  });
  const int g = lane() / 4, t = lane() % 4;
  const float c[4] = {c0, c1, c2, c3};
  float d[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
    d[i] = c[i];
    for (int k = 0; k < 16; ++k) d[i] += a[row][k] * b[k][col];
  }
  d0 = d[0];
  d1 = d[1];
  d2 = d[2];
  d3 = d[3];
}

template <class Element>
struct EmulatedMma16x8x16 {
  using DRegisters = float[4];
  using ARegisters = uint32_t[4];
  using BRegisters = uint32_t[2];
  using CRegisters = float[4];
  static void fma(float& d0, float& d1, float& d2, float& d3, const uint32_t& a0, const uint32_t& a1,
                  const uint32_t& a2, const uint32_t& a3, const uint32_t& b0, const uint32_t& b1, const float& c0,
                  const float& c1, const float& c2, const float& c3) {
    mma_m16n8k16<Element>(d0, d1, d2, d3, a0, a1, a2, a3, b0, b1, c0, c1, c2, c3);
  }
};

}  // namespace emu

namespace cute {
struct SM80_16x8x16_F32BF16BF16F32_TN : emu::EmulatedMma16x8x16<__nv_bfloat16> {};
struct SM80_16x8x16_F32F16F16F32_TN : emu::EmulatedMma16x8x16<__half> {};
}  // namespace cute
