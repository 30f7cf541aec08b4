// Launchers of the portable vhead_decode: one split-kernel instantiation per (element type,
// head dim, rows per CTA), then, with more than one split, the combine kernel. A 1-D grid of
// (sequence, latent) x split x row tile, row tiles fastest, so the CTAs that stream the same
// latent rows run side by side and all but the first find them in L2.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/dispatch.cuh"
#include "common/launch.cuh"
#include "sm80/vhead_decode_combine_kernel.cuh"
#include "sm80/vhead_decode_kernel.cuh"
#include "vhead_decode.h"

namespace headmix::kernels {
namespace {

template <typename T, int kHeadDim, int kMTiles>
cudaError_t launch_split(const VheadDecodeParams& p, int64_t smem_bytes, cudaStream_t stream) {
  const int64_t ctas = p.batch * p.latent_groups * p.num_splits * p.row_tiles;
  const cudaError_t err = launch_kernel(sm80::vhead_decode_kernel<T, kHeadDim, kMTiles>, unsigned(ctas),
                                        VheadDecodeTiles::kWarps * 32, size_t(smem_bytes), stream, p);
  if (err != cudaSuccess || p.num_splits == 1) return err;
  const int64_t rows = p.batch * p.heads * p.seqlen_q;
  const unsigned combine_ctas = unsigned((rows + sm80::kCombineWarps - 1) / sm80::kCombineWarps);
  return launch_kernel(sm80::vhead_decode_combine_kernel<T, kHeadDim>, combine_ctas, sm80::kCombineWarps * 32, 0,
                       stream, p);
}

// The plan's rows per CTA, splits and workspace written into the kernels' Params.
VheadDecodeParams with_plan(VheadDecodeParams p, const VheadDecodePlan& plan, float* workspace) {
  p.rows_per_cta = plan.rows_per_cta;
  p.row_tiles = plan.row_tiles;
  p.num_splits = plan.num_splits;
  p.partial_out = plan.num_splits > 1 ? workspace : nullptr;
  p.partial_lse = plan.num_splits > 1 ? workspace + plan.partial_rows * p.head_dim : nullptr;
  return p;
}

}  // namespace

cudaError_t launch_vhead_decode_portable(const VheadDecodeParams& params, const VheadDecodePlan& plan,
                                         float* workspace, cudaStream_t stream) {
  if (params.batch * params.heads * params.seqlen_q == 0) return cudaSuccess;
  const VheadDecodeParams p = with_plan(params, plan, workspace);
  // The binding sends float32 to its ATen path.
  return with_element<Elements::k16Bit>(p.dtype, [&](auto element) {
    return with_head_dim(p.head_dim, [&](auto head_dim) {
      using T = decltype(element);
      constexpr int kHeadDim = decltype(head_dim)::value;
      return p.rows_per_cta == 32 ? launch_split<T, kHeadDim, 2>(p, plan.smem_bytes, stream)
                                  : launch_split<T, kHeadDim, 1>(p, plan.smem_bytes, stream);
    });
  });
}

}  // namespace headmix::kernels
