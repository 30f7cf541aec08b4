// Launcher of the portable flash-attention backward: the row-dot kernel, then dk/dv (one CTA
// per 64-key tile, kv head and batch; with dq_accum it also adds dq with fp32 atomics), then
// either the dq conversion (atomic mode) or the deterministic dq pass (one CTA per 64-query
// tile, head and batch). Instantiated for bf16/fp16 x d 64/128.
#include "common/dispatch.cuh"
#include "common/launch.cuh"
#include "flash_attn.h"
#include "sm80/flash_bwd_elementwise.cuh"
#include "sm80/flash_bwd_kernel.cuh"

namespace headmix::kernels {
namespace {

int64_t blocks_for(int64_t threads, int block) { return (threads + block - 1) / block; }

template <typename T, int kHeadDim>
cudaError_t launch_row_dot(const FlashAttnBwdParams& p, cudaStream_t stream) {
  const FlashAttnParams& a = p.attn;
  const int64_t rows = a.batch * a.seqlen_q * a.heads;
  if (rows == 0) return cudaSuccess;
  return launch_kernel(flash_bwd_row_dot_kernel<T, kHeadDim>, unsigned(blocks_for(rows * 32, kRowDotThreads)),
                       kRowDotThreads, 0, stream, p);
}

template <typename T, int kHeadDim>
cudaError_t launch_dkdv(const FlashAttnBwdParams& p, cudaStream_t stream) {
  using Cfg = sm80::FlashBwdConfig<CuteElement<T>, kHeadDim>;
  const FlashAttnParams& a = p.attn;
  if (a.batch * a.kv_heads * a.seqlen_k == 0) return cudaSuccess;
  const dim3 grid(unsigned(blocks_for(a.seqlen_k, Cfg::kBlockN)), unsigned(a.kv_heads), unsigned(a.batch));
  return launch_kernel(sm80::flash_bwd_dkdv_kernel<Cfg>, grid, Cfg::kThreads, sizeof(typename Cfg::DkDvStorage),
                       stream, p);
}

template <typename T, int kHeadDim>
cudaError_t launch_dq_finish(const FlashAttnBwdParams& p, cudaStream_t stream) {
  using Cfg = sm80::FlashBwdConfig<CuteElement<T>, kHeadDim>;
  const FlashAttnParams& a = p.attn;
  const int64_t rows = a.batch * a.seqlen_q * a.heads;
  if (rows == 0) return cudaSuccess;
  if (p.dq_accum != nullptr) {
    const int64_t vectors = rows * a.head_dim / kDqConvertVec;
    return launch_kernel(flash_bwd_dq_convert_kernel<T>, unsigned(blocks_for(vectors, kDqConvertThreads)),
                         kDqConvertThreads, 0, stream, p);
  }
  const dim3 grid(unsigned(blocks_for(a.seqlen_q, Cfg::kBlockM)), unsigned(a.heads), unsigned(a.batch));
  return launch_kernel(sm80::flash_bwd_dq_kernel<Cfg>, grid, Cfg::kThreads, sizeof(typename Cfg::DqStorage), stream,
                       p);
}

// Runs Step<T, kHeadDim> for the element type and head dim of p.
template <template <typename, int> class Step>
cudaError_t dispatch(const FlashAttnBwdParams& p, cudaStream_t stream) {
  return with_element<Elements::k16Bit>(p.attn.dtype, [&](auto element) {
    return with_head_dim(p.attn.head_dim, [&](auto head_dim) {
      return Step<decltype(element), decltype(head_dim)::value>::run(p, stream);
    });
  });
}

template <typename T, int kHeadDim>
struct RowDot {
  static cudaError_t run(const FlashAttnBwdParams& p, cudaStream_t s) { return launch_row_dot<T, kHeadDim>(p, s); }
};
template <typename T, int kHeadDim>
struct DqFinish {
  static cudaError_t run(const FlashAttnBwdParams& p, cudaStream_t s) { return launch_dq_finish<T, kHeadDim>(p, s); }
};
template <typename T, int kHeadDim>
struct WholeBackward {
  static cudaError_t run(const FlashAttnBwdParams& p, cudaStream_t s) {
    cudaError_t err = launch_row_dot<T, kHeadDim>(p, s);
    if (err == cudaSuccess) err = launch_dkdv<T, kHeadDim>(p, s);
    return err == cudaSuccess ? launch_dq_finish<T, kHeadDim>(p, s) : err;
  }
};

}  // namespace

cudaError_t launch_flash_attn_bwd_portable(const FlashAttnBwdParams& p, cudaStream_t stream) {
  return dispatch<WholeBackward>(p, stream);
}

cudaError_t launch_flash_attn_bwd_row_dot(const FlashAttnBwdParams& p, cudaStream_t stream) {
  return dispatch<RowDot>(p, stream);
}

cudaError_t launch_flash_attn_bwd_dq_finish(const FlashAttnBwdParams& p, cudaStream_t stream) {
  return dispatch<DqFinish>(p, stream);
}

}  // namespace headmix::kernels
