// Tiny kernels, each with one planted bug, that show every check of the emulator fires
// (tests/test_kernels_emulated.py). They use the same emulated CuTe atoms as the real kernels.
#include "harness.h"

#include <cute/arch/copy.hpp>
#include <cute/arch/copy_sm75.hpp>
#include <cute/arch/copy_sm80.hpp>

namespace planted {

using Chunk = cute::uint128_t;

struct Params {
  const float* in;  // 64 floats
  float* out;       // 64 floats
  int bug;
};

enum Bug {
  kSharedOutOfBounds,   // cp.async past the launch's dynamic shared memory
  kGlobalOutOfBounds,   // cp.async reading past the end of its buffer
  kMisaligned,          // cp.async from an address that is not 16-byte aligned
  kUnwrittenRead,       // ldmatrix of shared memory nobody wrote
  kRace,                // a store and another warp's load of the same bytes, no barrier
  kReadBeforeWait,      // ldmatrix of a cp.async destination before cp.async.wait
  kRefillRace,          // cp.async over bytes another warp read, no barrier
  kWriteReadOnly,       // a store into an input
  kDeadlock,            // a shuffle a lane never joins
  kPlainRace,           // plain C++ store and load, no barrier: only the schedules show it
  kPlainMissingWait,    // plain C++ load of a cp.async destination with no wait
  kCorrect,             // the same traffic, correctly synchronised
};

inline unsigned char* shared() { return emu::rt().smem; }

void kernel(const Params p) {
  const int tid = threadIdx.x;
  auto* s = reinterpret_cast<Chunk*>(shared());
  const auto* in = reinterpret_cast<const Chunk*>(p.in);
  auto* out = reinterpret_cast<Chunk*>(p.out);
  uint32_t r[4];
  switch (p.bug) {
    case kSharedOutOfBounds:
      cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<Chunk>::copy(in[0], s[64], true);  // the launch has 1 KiB
      break;
    case kGlobalOutOfBounds:
      cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<Chunk>::copy(in[16], s[0], true);  // in holds 16 chunks
      break;
    case kMisaligned:
      cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<Chunk>::copy(
          *reinterpret_cast<const Chunk*>(p.in + 1), s[tid % 32], true);
      break;
    case kUnwrittenRead:
      cute::SM75_U32x4_LDSM_N::copy(s[tid % 32], r[0], r[1], r[2], r[3]);
      break;
    case kRace:
      if (tid == 0) cute::UniversalCopy<Chunk>::copy(in[0], s[0]);
      if (tid == 32) cute::UniversalCopy<Chunk>::copy(s[0], out[0]);
      break;
    case kReadBeforeWait:
      if (tid < 32) cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<Chunk>::copy(in[tid % 16], s[tid], true);
      cute::cp_async_fence();
      if (tid < 32) cute::SM75_U32x4_LDSM_N::copy(s[tid], r[0], r[1], r[2], r[3]);
      break;
    case kRefillRace:
      if (tid < 32) cute::UniversalCopy<Chunk>::copy(in[tid % 16], s[tid]);
      __syncthreads();
      if (tid < 32) cute::UniversalCopy<Chunk>::copy(s[tid], out[tid % 16]);  // warp 0 reads...
      if (tid >= 32) cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<Chunk>::copy(in[tid % 16], s[tid - 32], true);
      break;
    case kWriteReadOnly:
      if (tid == 0) cute::UniversalCopy<Chunk>::copy(in[1], const_cast<Chunk*>(in)[0]);
      break;
    case kDeadlock:
      if (tid != 5) p.out[tid % 64] = __shfl_xor_sync(0xffffffffu, float(tid), 1);
      break;
    case kPlainRace: {
      float* f = reinterpret_cast<float*>(shared());
      if (tid == 0) f[0] = p.in[0];
      if (tid == 32) p.out[0] = f[0];
      break;
    }
    case kPlainMissingWait: {
      if (tid == 0) cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<Chunk>::copy(in[0], s[0], true);
      cute::cp_async_fence();
      if (tid == 0) p.out[0] = reinterpret_cast<const float*>(shared())[0];
      break;
    }
    case kCorrect:
      if (tid < 32) cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<Chunk>::copy(in[tid % 16], s[tid], true);
      cute::cp_async_fence();
      cute::cp_async_wait<0>();
      __syncthreads();
      if (tid >= 32) cute::UniversalCopy<Chunk>::copy(s[tid - 32], out[tid % 16]);
      break;
  }
  cute::cp_async_wait<0>();
}

}  // namespace planted

// Runs the planted bug `bug` (planted::Bug) with 64 threads over `in` (64 floats) and returns
// `out`; the emulator's error, if it sees one, reaches Python as a RuntimeError.
at::Tensor planted_bug(int64_t bug, const at::Tensor& in) {
  TORCH_CHECK(in.scalar_type() == at::kFloat && in.numel() == 64 && in.is_contiguous(), "in: 64 contiguous floats");
  auto out = at::zeros({64}, in.options());
  harness::use_buffers({{"in", in, false}, {"out", out, true}});
  const planted::Params p{in.data_ptr<float>(), out.data_ptr<float>(), int(bug)};
  emu::launch(dim3(1), dim3(64), 1024, [&] { planted::kernel(p); });
  return out;
}
