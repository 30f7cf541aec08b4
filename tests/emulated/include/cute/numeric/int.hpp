#pragma once
// Stand-in for CuTe's 16-byte integer (the operand type of its copy atoms).
#include <cstdint>

namespace cute {

struct alignas(16) uint128_t {
  uint64_t lo, hi;
};

}  // namespace cute
