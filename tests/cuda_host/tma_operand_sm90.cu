// Host-side checks of how the Hopper launchers describe operands for TMA (sm90/launch.h), run
// by `make check-cuda` without a GPU: a size-1 dim gets its packed stride whatever the tensor's
// own, and operands a TMA descriptor cannot describe are refused before make_tma_copy.
#include <cstdint>

#include "sm90/launch.h"
#include "host_check.h"

using headmix::kernels::sm90::all_encodable;
using headmix::kernels::sm90::TmaOperand;
using host_check::expect;

int main() {
  alignas(16) static unsigned char buffer[64];
  constexpr int64_t kD = 64, kBytes = 2;

  // [B=2, S=5, H=3, d] contiguous: the strides stay as given.
  const TmaOperand packed(buffer, 5, 3, 2, 3 * kD, kD, 5 * 3 * kD, kD);
  expect(packed.row_stride == 3 * kD && packed.head_stride == kD && packed.batch_stride == 15 * kD,
         "strides of stepped dims are kept");
  expect(packed.encodable(kD, kBytes), "a contiguous operand is encodable");

  // S = 1, H = 1, B = 1 with the odd strides PyTorch may leave on size-1 dims (here 1 element).
  const TmaOperand single(buffer, 1, 1, 1, 1, 1, 1, kD);
  expect(single.row_stride == kD && single.head_stride == kD && single.batch_stride == kD,
         "size-1 dims get their packed strides");
  expect(single.encodable(kD, kBytes), "size-1 dims with free strides are encodable");

  const TmaOperand misaligned(buffer + 2, 5, 3, 2, 3 * kD, kD, 15 * kD, kD);
  expect(!misaligned.encodable(kD, kBytes), "a base address off 16 bytes is refused");
  const TmaOperand odd_stride(buffer, 5, 3, 2, 3 * kD + 4, kD, 15 * kD + 20, kD);
  expect(!odd_stride.encodable(kD, kBytes), "a row stride of 392 bytes is refused");
  const TmaOperand zero_stride(buffer, 5, 3, 2, 0, kD, 15 * kD, kD);
  expect(!zero_stride.encodable(kD, kBytes), "a stepped dim with stride 0 (expand) is refused");
  const TmaOperand huge(buffer, 5, 3, 2, 3 * kD, kD, int64_t(1) << 40, kD);
  expect(!huge.encodable(kD, kBytes), "a stride of 2^41 bytes is refused");

  expect(all_encodable<kD, uint16_t>(packed, single), "all_encodable of valid operands");
  expect(!all_encodable<kD, uint16_t>(packed, misaligned), "all_encodable sees one bad operand");
  return host_check::finish("tma_operand_sm90");
}
