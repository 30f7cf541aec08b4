// Launcher of the Hopper flash-attention forward: builds the TMA descriptors of q, k, v and out
// from the Params (cudaErrorInvalidValue for operands TMA cannot describe) and launches one
// 384-thread CTA per (128-row query tile, head, batch). Instantiated for bf16/fp16 x d 64/128.
// CMake compiles it for sm_90a only; check-cuda requires HGMMA in its SASS.
#include "common/dispatch.cuh"
#include "common/launch.cuh"
#include "flash_attn.h"
#include "sm90/flash_fwd_kernel.cuh"
#include "sm90/launch.h"

// Built for any other arch, wgmma and setmaxnreg would compile to traps (see sm90/flash_bwd.cu).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ != 900
#error "sm90/flash_fwd.cu is for sm_90a only"
#endif

namespace headmix::kernels {
namespace {

template <typename Element, int kHeadDim>
cudaError_t launch_fwd(const FlashAttnFwdParams& p, cudaStream_t stream) {
  using Cfg = sm90::FlashFwdSm90Config<Element, kHeadDim>;
  const FlashAttnParams& a = p.attn;
  const sm90::TmaOperand q(a.q, a.seqlen_q, a.heads, a.batch, a.q_row_stride, a.q_head_stride, a.q_batch_stride,
                           kHeadDim);
  const sm90::TmaOperand k(a.k, a.seqlen_k, a.kv_heads, a.batch, a.k_row_stride, a.k_head_stride, a.k_batch_stride,
                           kHeadDim);
  const sm90::TmaOperand v(a.v, a.seqlen_k, a.kv_heads, a.batch, a.v_row_stride, a.v_head_stride, a.v_batch_stride,
                           kHeadDim);
  // out is [B, S_q, H, d] contiguous.
  const sm90::TmaOperand o(p.out, a.seqlen_q, a.heads, a.batch, a.heads * kHeadDim, kHeadDim,
                           a.seqlen_q * a.heads * kHeadDim, kHeadDim);
  if (!sm90::all_encodable<kHeadDim, Element>(q, k, v, o)) return cudaErrorInvalidValue;

  const auto tile_q = cute::Shape<cute::Int<Cfg::kBlockM>, cute::Int<kHeadDim>>{};
  const auto tile_kv = cute::Shape<cute::Int<Cfg::kBlockN>, cute::Int<kHeadDim>>{};
  const typename Cfg::SmemQ smem_q{};
  const typename Cfg::SmemKVStage smem_kv{};
  sm90::FlashFwdSm90Args<Cfg> args{};
  args.p = p;
  args.tma_q = cute::make_tma_copy(cute::SM90_TMA_LOAD{}, q.tensor<const Element, kHeadDim>(), smem_q, tile_q,
                                   cute::_1{});
  args.tma_k = cute::make_tma_copy(cute::SM90_TMA_LOAD{}, k.tensor<const Element, kHeadDim>(), smem_kv, tile_kv,
                                   cute::_1{});
  args.tma_v = cute::make_tma_copy(cute::SM90_TMA_LOAD{}, v.tensor<const Element, kHeadDim>(), smem_kv, tile_kv,
                                   cute::_1{});
  args.tma_o = cute::make_tma_copy(cute::SM90_TMA_STORE{}, o.tensor<Element, kHeadDim>(), smem_q, tile_q, cute::_1{});

  const dim3 grid(unsigned((a.seqlen_q + Cfg::kBlockM - 1) / Cfg::kBlockM), unsigned(a.heads), unsigned(a.batch));
  constexpr size_t kSmem = sizeof(typename Cfg::SharedStorage);
  return launch_kernel(sm90::flash_fwd_sm90_kernel<Cfg>, grid, Cfg::kThreads, kSmem, stream, args);
}

}  // namespace

cudaError_t launch_flash_attn_fwd_sm90(const FlashAttnFwdParams& p, cudaStream_t stream) {
  if (p.attn.batch * p.attn.heads * p.attn.seqlen_q == 0) return cudaSuccess;
  // A TMA descriptor cannot describe an empty K/V; the portable kernel writes O = 0, lse = -inf.
  if (p.attn.seqlen_k == 0) return launch_flash_attn_fwd_portable(p, stream);
  return with_element<Elements::k16Bit>(p.attn.dtype, [&](auto element) {
    return with_head_dim(p.attn.head_dim, [&](auto head_dim) {
      return launch_fwd<CuteElement<decltype(element)>, decltype(head_dim)::value>(p, stream);
    });
  });
}

}  // namespace headmix::kernels
