// The portable kv_cache_append kernel (csrc/kernels/sm80/kv_cache_append.cu), launched on the
// CPU emulator with the binding's own checks and Params (cuda/kv_cache_append_params.h); the
// launcher picks 16-byte vectors or single elements as on a GPU.
#include "harness.h"

#include "cuda/kv_cache_append_params.h"
#include "sm80/kv_cache_append.cu"

void emulated_kv_cache_append(const at::Tensor& k_new, const at::Tensor& v_new, at::Tensor& k_cache,
                              at::Tensor& v_cache, const at::Tensor& cache_seqlens,
                              const std::optional<at::Tensor>& block_table, const std::optional<at::Tensor>& cos,
                              const std::optional<at::Tensor>& sin, const std::optional<at::Tensor>& pos) {
  const auto dims = headmix::check_kv_cache_append(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos,
                                                   sin, pos);
  const headmix::cuda::AppendOperands operands(block_table, cos, sin);
  const auto p = headmix::cuda::kv_cache_append_params(dims, k_new, v_new, k_cache, v_cache, cache_seqlens, pos,
                                                       operands);
  harness::use_buffers({{"k_new", k_new, false}, {"v_new", v_new, false}, {"k_cache", k_cache, true},
                        {"v_cache", v_cache, true}, {"cache_seqlens", cache_seqlens, false},
                        {"pos", pos.value_or(at::Tensor()), false}, {"block_table", operands.block_table, false},
                        {"cos", operands.cos, false}, {"sin", operands.sin, false}});
  harness::check(headmix::kernels::launch_kv_cache_append_portable(p, nullptr), "kv_cache_append");
}
