// Launcher of the portable flash-attention forward: one CTA per (128-row query tile, head,
// batch), instantiated for bf16/fp16 x d 64/128.
#include "common/dispatch.cuh"
#include "common/launch.cuh"
#include "flash_attn.h"
#include "sm80/flash_fwd_kernel.cuh"

namespace headmix::kernels {
namespace {

template <typename T, int kHeadDim>
cudaError_t launch_fwd(const FlashAttnFwdParams& p, cudaStream_t stream) {
  using Cfg = sm80::FlashFwdConfig<CuteElement<T>, kHeadDim>;
  const dim3 grid(unsigned((p.attn.seqlen_q + Cfg::kBlockM - 1) / Cfg::kBlockM), unsigned(p.attn.heads),
                  unsigned(p.attn.batch));
  return launch_kernel(sm80::flash_fwd_kernel<Cfg>, grid, Cfg::kThreads, sizeof(typename Cfg::SharedStorage), stream,
                       p);
}

}  // namespace

cudaError_t launch_flash_attn_fwd_portable(const FlashAttnFwdParams& p, cudaStream_t stream) {
  if (p.attn.batch * p.attn.heads * p.attn.seqlen_q == 0) return cudaSuccess;
  return with_element<Elements::k16Bit>(p.attn.dtype, [&](auto element) {
    return with_head_dim(p.attn.head_dim, [&](auto head_dim) {
      return launch_fwd<decltype(element), decltype(head_dim)::value>(p, stream);
    });
  });
}

}  // namespace headmix::kernels
