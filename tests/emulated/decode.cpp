// The portable decode kernels (csrc/kernels/sm80/vhead_decode.cu: split-KV kernel and lse
// combine), launched on the CPU emulator with the binding's own checks, plan and Params
// (cuda/vhead_decode_params.h), counting the NaN elements cp.async reads from the caches.
#include "harness.h"

#include "attention_scale.h"
#include "cuda/vhead_decode_params.h"
#include "sm80/vhead_decode.cu"

namespace {

size_t count_nans(const char* chunk, at::ScalarType dtype) {
  size_t n = 0;
  for (int i = 0; i < 8; ++i) {
    uint16_t bits;
    std::memcpy(&bits, chunk + 2 * i, 2);
    n += dtype == at::kBFloat16 ? (bits & 0x7f80) == 0x7f80 && (bits & 0x7f)
                                : (bits & 0x7c00) == 0x7c00 && (bits & 0x3ff);
  }
  return n;
}

}  // namespace

// out, lse and [NaN elements cp.async read, splits, rows per CTA, row tiles] of vhead_decode on
// a GPU with `num_sms` SMs.
std::vector<at::Tensor> emulated_vhead_decode(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                              const at::Tensor& cache_seqlens, const std::optional<at::Tensor>& w_k,
                                              const std::optional<at::Tensor>& w_v,
                                              const std::optional<at::Tensor>& block_table,
                                              std::optional<double> scale, bool causal, int64_t window_left,
                                              int64_t num_sms) {
  const auto dims = headmix::check_vhead_decode(q, k_cache, v_cache, cache_seqlens, w_k, w_v, block_table,
                                                window_left);
  TORCH_CHECK((q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf) &&
                  (dims.head_dim == 64 || dims.head_dim == 128) && dims.head_dim_v == dims.head_dim,
              "the kernel covers bfloat16/float16 with d = d_v in {64, 128}");
  const auto shape = headmix::cuda::vhead_decode_shape(dims, w_k.has_value());
  const auto plan = headmix::kernels::plan_vhead_decode(shape, int(num_sms), int64_t(emu::kSharedMemoryBytes));
  const double softmax_scale = headmix::attention_scale(scale, dims.head_dim);
  auto out = at::empty({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim}, q.options());
  auto lse = at::empty({dims.batch, dims.heads, dims.seqlen_q}, q.options().dtype(at::kFloat));
  const auto workspace = at::empty({plan.workspace_floats}, lse.options());
  for (const auto& t : {out, lse, workspace}) harness::poison(t);
  const headmix::cuda::DecodeOperands operands(q, w_k, w_v, block_table);
  const auto p = headmix::cuda::vhead_decode_params(dims, shape, q, k_cache, v_cache, cache_seqlens, operands, out,
                                                    lse, softmax_scale, causal, window_left);
  harness::use_buffers({{"q", q, false}, {"k_cache", k_cache, false}, {"v_cache", v_cache, false},
                        {"cache_seqlens", cache_seqlens, false}, {"w_k", operands.w_k, false},
                        {"w_v", operands.w_v, false}, {"block_table", operands.block_table, false},
                        {"out", out, true}, {"lse", lse, true}, {"workspace", workspace, true}});
  auto& r = emu::rt();
  const char* k_begin = static_cast<const char*>(k_cache.data_ptr());
  const char* v_begin = static_cast<const char*>(v_cache.data_ptr());
  // Only cache chunks are counted: q's padding is not the caches'.
  r.count_nans = [=, dtype = q.scalar_type(), k_bytes = size_t(k_cache.nbytes()),
                  v_bytes = size_t(v_cache.nbytes())](const char* chunk) -> size_t {
    const bool cache = (chunk >= k_begin && chunk < k_begin + k_bytes) || (chunk >= v_begin && chunk < v_begin + v_bytes);
    return cache ? count_nans(chunk, dtype) : 0;
  };
  harness::check(headmix::kernels::launch_vhead_decode_portable(p, plan, workspace.data_ptr<float>(), nullptr),
                 "vhead_decode");
  const auto info = at::tensor({int64_t(r.nans_read), int64_t(plan.num_splits), int64_t(plan.rows_per_cta),
                                int64_t(plan.row_tiles)});
  return {out, lse, info};
}
