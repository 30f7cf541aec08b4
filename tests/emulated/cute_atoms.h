#pragma once
// Shared by the emulated CuTe atoms (include/cute/arch/*.hpp). Each of those headers includes
// CuTe's own header of the same name with the emulated atoms' names renamed away, then defines
// the atoms under their original names with the same register types, so CuTe's MMA and copy
// traits, TiledMMA, TiledCopy and the kernels bind to them unchanged. An atom the emulator does
// not provide falls through to CuTe's host branch, which here throws instead of asserting.
#include <cute/config.hpp>

#include <cstdint>
#include <cstring>
#include <string>

#include "cuda_emu.h"

#undef CUTE_INVALID_CONTROL_PATH
#define CUTE_INVALID_CONTROL_PATH(x) ::emu::fail(std::string("not emulated: ") + (x))

namespace emu {

// Element `half` (0: low 16 bits) of a register of two 16-bit values, as float.
template <class Element>
inline float half_of(uint64_t reg, int half) {
  const uint16_t bits = uint16_t(half ? reg >> 16 : reg & 0xffff);
  Element e;
  std::memcpy(&e, &bits, 2);
  return float(e);
}

}  // namespace emu
