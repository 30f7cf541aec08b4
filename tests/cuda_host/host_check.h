#pragma once
// Shared by the host programs in tests/cuda_host: failure counting and the check that a
// transposed shared-memory view is the exact transpose of its tile.
#include <cstdio>

#include <cute/tensor.hpp>

namespace host_check {

inline int failures = 0;

inline void expect(bool ok, const char* what) {
  if (!ok && failures++ < 10) std::printf("FAILED %s\n", what);
}

// tile (rows, cols[, stages]) against transposed (cols, rows[, stages]); kStages 0 = no stage mode.
template <class Tile, class Transposed, int kStages>
void check_transposed() {
  const Tile tile{};
  const Transposed transposed{};
  for (int s = 0; s < (kStages > 0 ? kStages : 1); ++s) {
    for (int i = 0; i < cute::size<0>(tile); ++i) {
      for (int j = 0; j < cute::size<1>(tile); ++j) {
        if constexpr (kStages == 0) {
          expect(tile(i, j) == transposed(j, i), "transposed smem view");
        } else {
          expect(tile(i, j, s) == transposed(j, i, s), "transposed smem view");
        }
      }
    }
  }
}

// Prints the verdict; the program's exit status.
inline int finish(const char* program) {
  std::printf("%s: %s\n", program, failures ? "FAILED" : "OK");
  return failures ? 1 : 0;
}

}  // namespace host_check
