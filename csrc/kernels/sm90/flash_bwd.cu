// Launcher of the Hopper flash-attention backward: the portable row-dot pass, then the sm90
// dK/dV kernel (one 384-thread CTA per 128-key tile, kv head and batch; it also adds dQ with
// fp32 atomics when dq_accum is given), then the portable dq conversion or deterministic dq
// pass. Instantiated for bf16/fp16 x d 64/128. CMake compiles it for sm_90a only; check-cuda
// requires HGMMA in its SASS.
#include "common/dispatch.cuh"
#include "common/launch.cuh"
#include "flash_attn.h"
#include "sm90/flash_bwd_kernel.cuh"
#include "sm90/launch.h"

// Built for any other arch, wgmma and setmaxnreg would compile to traps. The test is on
// __CUDA_ARCH__ rather than CUTE_ARCH_MMA_SM90A_ENABLED because nvcc 13's -arch=sm_90a also
// runs a plain compute_90 pass for its embedded PTX, which an sm_90 GPU never picks over the
// sm_90a SASS.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ != 900
#error "sm90/flash_bwd.cu is for sm_90a only"
#endif

namespace headmix::kernels {
namespace {

template <typename Element, int kHeadDim>
cudaError_t launch_dkdv(const FlashAttnBwdParams& p, cudaStream_t stream) {
  using Cfg = sm90::FlashBwdSm90Config<Element, kHeadDim>;
  const FlashAttnParams& a = p.attn;
  const sm90::TmaOperand q(a.q, a.seqlen_q, a.heads, a.batch, a.q_row_stride, a.q_head_stride, a.q_batch_stride,
                           kHeadDim);
  const sm90::TmaOperand dout(p.dout, a.seqlen_q, a.heads, a.batch, p.dout_row_stride, p.dout_head_stride,
                              p.dout_batch_stride, kHeadDim);
  const sm90::TmaOperand k(a.k, a.seqlen_k, a.kv_heads, a.batch, a.k_row_stride, a.k_head_stride, a.k_batch_stride,
                           kHeadDim);
  const sm90::TmaOperand v(a.v, a.seqlen_k, a.kv_heads, a.batch, a.v_row_stride, a.v_head_stride, a.v_batch_stride,
                           kHeadDim);
  // dk, dv: [B, S_k, H_kv, d] contiguous.
  const auto gradient = [&](void* ptr) {
    return sm90::TmaOperand(ptr, a.seqlen_k, a.kv_heads, a.batch, a.kv_heads * kHeadDim, kHeadDim,
                            a.seqlen_k * a.kv_heads * kHeadDim, kHeadDim);
  };
  const sm90::TmaOperand dk = gradient(p.dk), dv = gradient(p.dv);
  if (!sm90::all_encodable<kHeadDim, Element>(q, dout, k, v, dk, dv)) return cudaErrorInvalidValue;

  const auto tile_q = cute::Shape<cute::Int<Cfg::kBlockM>, cute::Int<kHeadDim>>{};
  const auto tile_kv = cute::Shape<cute::Int<Cfg::kBlockN>, cute::Int<kHeadDim>>{};
  const typename Cfg::SmemQdOStage smem_q{};
  const typename Cfg::SmemKV smem_kv{};
  sm90::FlashBwdSm90Args<Cfg> args{};
  args.p = p;
  args.tma_q = cute::make_tma_copy(cute::SM90_TMA_LOAD{}, q.tensor<const Element, kHeadDim>(), smem_q, tile_q,
                                   cute::_1{});
  args.tma_dout = cute::make_tma_copy(cute::SM90_TMA_LOAD{}, dout.tensor<const Element, kHeadDim>(), smem_q, tile_q,
                                      cute::_1{});
  args.tma_k = cute::make_tma_copy(cute::SM90_TMA_LOAD{}, k.tensor<const Element, kHeadDim>(), smem_kv, tile_kv,
                                   cute::_1{});
  args.tma_v = cute::make_tma_copy(cute::SM90_TMA_LOAD{}, v.tensor<const Element, kHeadDim>(), smem_kv, tile_kv,
                                   cute::_1{});
  args.tma_dk = cute::make_tma_copy(cute::SM90_TMA_STORE{}, dk.tensor<Element, kHeadDim>(), smem_kv, tile_kv,
                                    cute::_1{});
  args.tma_dv = cute::make_tma_copy(cute::SM90_TMA_STORE{}, dv.tensor<Element, kHeadDim>(), smem_kv, tile_kv,
                                    cute::_1{});

  const dim3 grid(unsigned((a.seqlen_k + Cfg::kBlockN - 1) / Cfg::kBlockN), unsigned(a.kv_heads), unsigned(a.batch));
  constexpr size_t kSmem = sizeof(typename Cfg::SharedStorage);
  return launch_kernel(sm90::flash_bwd_sm90_kernel<Cfg>, grid, Cfg::kThreads, kSmem, stream, args);
}

}  // namespace

cudaError_t launch_flash_attn_bwd_sm90(const FlashAttnBwdParams& p, cudaStream_t stream) {
  const FlashAttnParams& a = p.attn;
  // TMA descriptors cannot describe empty operands; the portable backward handles them.
  if (a.batch * a.heads * a.seqlen_q * a.seqlen_k == 0) return launch_flash_attn_bwd_portable(p, stream);
  cudaError_t err = launch_flash_attn_bwd_row_dot(p, stream);
  if (err == cudaSuccess) {
    err = with_element<Elements::k16Bit>(a.dtype, [&](auto element) {
      return with_head_dim(a.head_dim, [&](auto head_dim) {
        return launch_dkdv<CuteElement<decltype(element)>, decltype(head_dim)::value>(p, stream);
      });
    });
  }
  return err == cudaSuccess ? launch_flash_attn_bwd_dq_finish(p, stream) : err;
}

}  // namespace headmix::kernels
