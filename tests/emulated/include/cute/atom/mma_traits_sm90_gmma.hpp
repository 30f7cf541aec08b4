#pragma once
// Emulated wgmma.mma_async for CuTe's dense GMMA atoms. MMA_Atom::call calls mma_unpack
// unqualified, so overload resolution also sees this overload in cute::SM90::GMMA (the atoms'
// namespace); taking MMA_Traits<Op<majorA, majorB, scaleA, scaleB>> it is more specialised than
// CuTe's MMA_Traits<MMA_Op, MMA_Args...> overload and wins for every atom of that form, reading
// the instruction from the traits: M, N, K from Shape_MNK, the element types from ValTypeA/B/C,
// A from registers when the atom's A registers are 32-bit (RS) rather than a 64-bit descriptor
// (SS). Atoms it cannot emulate fail to compile here; atoms of any other form reach CuTe's fma,
// which fails when run (mma_sm90_gmma.hpp).
#include_next <cute/atom/mma_traits_sm90_gmma.hpp>

#include <type_traits>

#include "wgmma_sm90.h"

namespace cute::SM90::GMMA {

template <template <Major, Major, ScaleIn, ScaleIn> class Op, Major kMajorA, Major kMajorB, ScaleIn kScaleA,
          ScaleIn kScaleB, class TD, class DLayout, class TA, class ALayout, class TB, class BLayout, class TC,
          class CLayout>
void mma_unpack(MMA_Traits<Op<kMajorA, kMajorB, kScaleA, kScaleB>> const& traits, Tensor<TD, DLayout>& D,
                Tensor<TA, ALayout> const& A, Tensor<TB, BLayout> const& B, Tensor<TC, CLayout> const&) {
  using Traits = MMA_Traits<Op<kMajorA, kMajorB, kScaleA, kScaleB>>;
  using Atom = Op<kMajorA, kMajorB, kScaleA, kScaleB>;
  using ElementA = typename Traits::ValTypeA;
  constexpr int kM = size<0>(typename Traits::Shape_MNK{}), kN = size<1>(typename Traits::Shape_MNK{}),
                kK = size<2>(typename Traits::Shape_MNK{});
  constexpr bool kRegisterA = std::is_same_v<typename Atom::ARegisters, uint32_t[4]>;
  static_assert(std::is_same_v<typename Traits::ValTypeC, float> && std::is_same_v<typename Traits::ValTypeD, float>,
                "emulated wgmma: f32 accumulators only");
  static_assert(std::is_same_v<ElementA, typename Traits::ValTypeB> &&
                    (std::is_same_v<ElementA, bfloat16_t> || std::is_same_v<ElementA, half_t>),
                "emulated wgmma: bf16 x bf16 or f16 x f16 only");
  static_assert(kM == 64 && kK == 16 && kN % 8 == 0 && kN >= 8 && kN <= 256, "emulated wgmma: dense m64nNk16 only");
  static_assert(kRegisterA || std::is_same_v<typename Atom::ARegisters, uint64_t[1]>);
  static_assert(std::is_same_v<typename Atom::BRegisters, uint64_t[1]>);

  emu::WgmmaOperands& mine = emu::my_warpgroup().wgmma[emu::warpgroup_lane()];
  Tensor rD = recast<float>(D);
  static_assert(decltype(size(rD))::value == kN / 2);
  for (int i = 0; i < kN / 2; ++i) mine.d[i] = &rD(i);
  if constexpr (kRegisterA) {
    Tensor rA = recast<uint32_t const>(A);
    for (int i = 0; i < 4; ++i) mine.a[i] = &rA(i);
  } else {
    mine.desc_a = uint64_t(A(0).desc_);
  }
  mine.desc_b = uint64_t(B(0).desc_);
  mine.scale_d = traits.accumulate_ == ScaleOut::Zero ? 0 : 1;

  static const emu::wgmma::Instruction instruction{
      kN, kRegisterA, kMajorA == Major::MN, kMajorB == Major::MN, kScaleA == ScaleIn::Neg ? -1.f : 1.f,
      kScaleB == ScaleIn::Neg ? -1.f : 1.f, &emu::wgmma::element_to_float<ElementA>,
      std::string("wgmma.mma_async.sync.aligned.m64n") + std::to_string(kN) + "k16.f32." +
          (std::is_same_v<ElementA, bfloat16_t> ? "bf16.bf16" : "f16.f16") + (kRegisterA ? " (RS" : " (SS") +
          ", A " + (kMajorA == Major::MN ? "MN" : "K") + "-major, B " + (kMajorB == Major::MN ? "MN" : "K") +
          "-major)"};
  emu::wgmma::mma_async(instruction);
}

}  // namespace cute::SM90::GMMA
