// Launcher of the portable flash-attention forward: one CTA per (128-row query tile, head,
// batch), instantiated for bf16/fp16 x d 64/128.
#include "common/launch.cuh"
#include "flash_attn.h"
#include "sm80/flash_fwd_kernel.cuh"

namespace headmix::kernels {
namespace {

template <typename Element, int kHeadDim>
cudaError_t launch_fwd(const FlashAttnFwdParams& p, cudaStream_t stream) {
  using Cfg = sm80::FlashFwdConfig<Element, kHeadDim>;
  const dim3 grid(unsigned((p.attn.seqlen_q + Cfg::kBlockM - 1) / Cfg::kBlockM), unsigned(p.attn.heads),
                  unsigned(p.attn.batch));
  return launch_kernel(sm80::flash_fwd_kernel<Cfg>, grid, Cfg::kThreads, sizeof(typename Cfg::SharedStorage), stream,
                       p);
}

template <typename Element>
cudaError_t launch_fwd_dim(const FlashAttnFwdParams& p, cudaStream_t stream) {
  return p.attn.head_dim == 64 ? launch_fwd<Element, 64>(p, stream) : launch_fwd<Element, 128>(p, stream);
}

}  // namespace

bool flash_attn_portable_supports(DType dtype, int64_t head_dim) {
  return (dtype == DType::kBFloat16 || dtype == DType::kFloat16) && (head_dim == 64 || head_dim == 128);
}

cudaError_t launch_flash_attn_fwd_portable(const FlashAttnFwdParams& p, cudaStream_t stream) {
  if (!flash_attn_portable_supports(p.attn.dtype, p.attn.head_dim)) return cudaErrorInvalidValue;
  if (p.attn.batch * p.attn.heads * p.attn.seqlen_q == 0) return cudaSuccess;
  return p.attn.dtype == DType::kBFloat16 ? launch_fwd_dim<cutlass::bfloat16_t>(p, stream)
                                          : launch_fwd_dim<cutlass::half_t>(p, stream);
}

}  // namespace headmix::kernels
