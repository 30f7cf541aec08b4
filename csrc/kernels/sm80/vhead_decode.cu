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
cudaError_t launch_split(const VheadDecodeParams& p, cudaStream_t stream) {
  const int64_t smem = vhead_decode_smem_bytes(16 * kMTiles, p.latent_heads, kHeadDim);
  const int64_t ctas = p.batch * p.latent_groups * p.num_splits * p.row_tiles;
  const cudaError_t err = launch_kernel(sm80::vhead_decode_kernel<T, kHeadDim, kMTiles>, unsigned(ctas),
                                        VheadDecodeTiles::kWarps * 32, size_t(smem), stream, p);
  if (err != cudaSuccess || p.num_splits == 1) return err;
  const int64_t rows = p.batch * p.heads * p.seqlen_q;
  const unsigned combine_ctas = unsigned((rows + sm80::kCombineWarps - 1) / sm80::kCombineWarps);
  return launch_kernel(sm80::vhead_decode_combine_kernel<T, kHeadDim>, combine_ctas, sm80::kCombineWarps * 32, 0,
                       stream, p);
}

template <typename T, int kHeadDim>
cudaError_t launch_rows(const VheadDecodeParams& p, cudaStream_t stream) {
  return p.rows_per_cta == 32 ? launch_split<T, kHeadDim, 2>(p, stream) : launch_split<T, kHeadDim, 1>(p, stream);
}

}  // namespace

cudaError_t launch_vhead_decode_portable(const VheadDecodeParams& p, cudaStream_t stream) {
  if (p.batch * p.heads * p.seqlen_q == 0) return cudaSuccess;
  // The binding sends float32 to its ATen path.
  return with_element<Elements::k16Bit>(p.dtype, [&](auto element) {
    return with_head_dim(p.head_dim, [&](auto head_dim) {
      return launch_rows<decltype(element), decltype(head_dim)::value>(p, stream);
    });
  });
}

}  // namespace headmix::kernels
