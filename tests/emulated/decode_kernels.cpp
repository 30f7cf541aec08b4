// The CUDA decode kernels (csrc/kernels/sm80) built as host C++ over the emulator in
// cuda_emu.h and its CuTe atom stand-ins (include/), launched the way the bindings launch them:
// the same input checks, plan and Params code (csrc/checks.cpp, cuda/*_params.h), the grids of
// csrc/kernels/sm80/*.cu. Loaded by tests/test_decode_kernels_emulated.py.
#include <torch/extension.h>

#include "cuda_emu.h"

// The kernels' `extern __shared__ smem[]`: a block-scope extern names its namespace's symbol.
namespace headmix::kernels::sm80 {
alignas(16) unsigned char smem[256 << 10];
}

#include "cuda/kv_cache_append_params.h"
#include "cuda/vhead_decode_params.h"
#include "sm80/kv_cache_append_kernel.cuh"
#include "sm80/vhead_decode_combine_kernel.cuh"
#include "sm80/vhead_decode_kernel.cuh"

namespace {

namespace hk = headmix::kernels;
using headmix::kernels::sm80::smem;

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

// One kernel launch: every CTA in turn, shared memory refilled with NaN bytes first so a read of
// anything the CTA did not write shows.
void launch(int64_t ctas, int threads, int64_t smem_bytes, const std::function<void()>& kernel) {
  TORCH_CHECK(smem_bytes <= int64_t(sizeof(smem)), "the emulator holds ", sizeof(smem), " bytes of shared memory");
  auto& r = emu::rt();
  r.smem = smem;
  r.smem_bytes = size_t(smem_bytes);
  for (int64_t c = 0; c < ctas; ++c) {
    std::memset(smem, 0xff, sizeof(smem));
    emu::run_cta(make_uint3(unsigned(c), 0, 0), threads, kernel);
  }
}

template <class T, int kHeadDim, int kMTiles>
void launch_decode(const hk::VheadDecodeParams& p, int64_t smem_bytes) {
  launch(p.batch * p.latent_groups * p.num_splits * p.row_tiles, hk::VheadDecodeTiles::kWarps * 32, smem_bytes,
         [&] { hk::sm80::vhead_decode_kernel<T, kHeadDim, kMTiles>(p); });
  if (p.num_splits == 1) return;
  const int64_t rows = p.batch * p.heads * p.seqlen_q;
  launch((rows + hk::sm80::kCombineWarps - 1) / hk::sm80::kCombineWarps, hk::sm80::kCombineWarps * 32, 0,
         [&] { hk::sm80::vhead_decode_combine_kernel<T, kHeadDim>(p); });
}

template <class T>
void launch_decode_typed(const hk::VheadDecodeParams& p, int64_t smem_bytes) {
  const bool wide = p.rows_per_cta == 32;
  if (p.head_dim == 64) {
    wide ? launch_decode<T, 64, 2>(p, smem_bytes) : launch_decode<T, 64, 1>(p, smem_bytes);
  } else {
    wide ? launch_decode<T, 128, 2>(p, smem_bytes) : launch_decode<T, 128, 1>(p, smem_bytes);
  }
}

// out, lse and [NaN elements cp.async read, splits, rows per CTA, row tiles] of vhead_decode on
// a GPU with `num_sms` SMs.
std::vector<at::Tensor> vhead_decode(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                     const at::Tensor& cache_seqlens, const std::optional<at::Tensor>& w_k,
                                     const std::optional<at::Tensor>& w_v,
                                     const std::optional<at::Tensor>& block_table, std::optional<double> scale,
                                     bool causal, int64_t window_left, int64_t num_sms) {
  const auto dims = headmix::check_vhead_decode(q, k_cache, v_cache, cache_seqlens, w_k, w_v, block_table,
                                                window_left);
  TORCH_CHECK((q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf) &&
                  (dims.head_dim == 64 || dims.head_dim == 128) && dims.head_dim_v == dims.head_dim,
              "the kernel covers bfloat16/float16 with d = d_v in {64, 128}");
  constexpr int64_t kH100SharedMemory = 232448;  // opt-in bytes per block
  const auto plan = hk::plan_vhead_decode(headmix::cuda::vhead_decode_shape(dims, w_k.has_value()), int(num_sms),
                                          kH100SharedMemory);
  const double softmax_scale = scale ? *scale : 1.0 / std::sqrt(double(dims.head_dim));
  // NaN-filled outputs and workspace: whatever the kernels leave unwritten shows.
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  auto out = at::full({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim}, nan, q.options());
  auto lse = at::full({dims.batch, dims.heads, dims.seqlen_q}, nan, q.options().dtype(at::kFloat));
  const auto scratch = plan.workspace_floats ? at::full({plan.workspace_floats}, nan, lse.options()) : at::Tensor();
  const headmix::cuda::DecodeOperands operands(q, w_k, w_v, block_table);
  const auto p = headmix::cuda::vhead_decode_params(dims, q, k_cache, v_cache, cache_seqlens, operands, out, lse,
                                                    scratch, plan, softmax_scale, causal, window_left);
  auto& r = emu::rt();
  r.global_reads = {{static_cast<const char*>(k_cache.data_ptr()), size_t(k_cache.nbytes())},
                    {static_cast<const char*>(v_cache.data_ptr()), size_t(v_cache.nbytes())}};
  r.count_nans = [dtype = q.scalar_type()](const char* chunk) { return count_nans(chunk, dtype); };
  r.nans_read = 0;
  if (q.scalar_type() == at::kBFloat16) {
    launch_decode_typed<__nv_bfloat16>(p, plan.smem_bytes);
  } else {
    launch_decode_typed<__half>(p, plan.smem_bytes);
  }
  const auto info = at::tensor({int64_t(r.nans_read), int64_t(plan.num_splits), int64_t(plan.rows_per_cta),
                                int64_t(plan.row_tiles)});
  return {out, lse, info};
}

// kv_cache_append in place, with `vec` elements per vector (the launcher's choice, forced).
void kv_cache_append(const at::Tensor& k_new, const at::Tensor& v_new, at::Tensor& k_cache, at::Tensor& v_cache,
                     const at::Tensor& cache_seqlens, const std::optional<at::Tensor>& block_table,
                     const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                     const std::optional<at::Tensor>& pos, int64_t vec) {
  const auto dims = headmix::check_kv_cache_append(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos,
                                                   sin, pos);
  const headmix::cuda::AppendOperands operands(block_table, cos, sin);
  const auto p = headmix::cuda::kv_cache_append_params(dims, k_new, v_new, k_cache, v_cache, cache_seqlens, pos,
                                                       operands);
  const int64_t half = p.rope.rotary_half;
  const int64_t units = half / vec + (p.head_dim - 2 * half) / vec + p.head_dim_v / vec;
  const int64_t ctas = (p.batch * p.new_rows * p.cache_heads * units + 255) / 256;
  const auto run = [&](auto element, auto width) {
    using T = decltype(element);
    launch(ctas, 256, 0, [&] { hk::sm80::kv_cache_append_kernel<T, decltype(width)::value>(p); });
  };
  using One = std::integral_constant<int, 1>;
  switch (k_new.scalar_type()) {
    case at::kFloat: vec == 4 ? run(float{}, std::integral_constant<int, 4>{}) : run(float{}, One{}); break;
    case at::kHalf: vec == 8 ? run(__half{}, std::integral_constant<int, 8>{}) : run(__half{}, One{}); break;
    default:
      vec == 8 ? run(__nv_bfloat16{}, std::integral_constant<int, 8>{}) : run(__nv_bfloat16{}, One{});
  }
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("vhead_decode", &vhead_decode);
  m.def("kv_cache_append", &kv_cache_append);
}
