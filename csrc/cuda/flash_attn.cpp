// CUDA binding of flash attention: checks -> Params -> current stream -> kernels (bf16/fp16,
// d = d_v in {64, 128}; other inputs get an error naming what is supported). An sm_90 GPU
// runs the Hopper kernels when the build has them, every other GPU the portable ones.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "checks.h"
#include "cuda/device.h"
#include "kernels/flash_attn.h"
#include "registration.h"

namespace headmix::cuda {
namespace {

void check_portable(const AttnDims& dims, const at::Tensor& q, const at::Tensor& v, const char* op) {
  TORCH_CHECK(q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf, "headmix.", op,
              " on CUDA takes bfloat16 or float16 q/k/v, got ", q.scalar_type());
  TORCH_CHECK(dims.head_dim == 64 || dims.head_dim == 128,
              "q must be [B, S_q, H, d] with d in {64, 128} on CUDA, got ", q.sizes());
  TORCH_CHECK(dims.head_dim_v == dims.head_dim, "v must be [B, S_k, H_kv, d_v] with d_v = d = ", dims.head_dim,
              " on CUDA, got ", v.sizes());
  // Grid dimensions and the kernels' 32-bit row indices.
  TORCH_CHECK(dims.heads <= 65535 && dims.batch <= 65535, "headmix.", op,
              " on CUDA takes at most 65535 heads and batches, got H = ", dims.heads, ", B = ", dims.batch);
  constexpr int64_t kMaxRows = int64_t(1) << 28;  // band arithmetic stays inside int32
  TORCH_CHECK(dims.seqlen_q <= kMaxRows && dims.seqlen_k <= kMaxRows, "headmix.", op,
              " on CUDA takes sequences of at most ", kMaxRows, " rows, got S_q = ", dims.seqlen_q,
              ", S_k = ", dims.seqlen_k);
}

// The kernels move 16-byte vectors of `dtype` along a contiguous last dim: the base pointer
// and every stride of a dim that is actually stepped must be 16-byte aligned, otherwise the
// tensor is copied (contiguous). A stepped dim with stride 0 (an expand()ed tensor) is copied
// too: a TMA descriptor cannot express it.
at::Tensor aligned_operand(const at::Tensor& t, at::ScalarType dtype) {
  if (t.scalar_type() != dtype) return t.to(dtype).contiguous();
  const int64_t vec = 16 / t.element_size();
  bool aligned = reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 && t.stride(3) == 1;
  for (int64_t d = 0; d < 3; ++d) {
    aligned = aligned && (t.size(d) <= 1 || (t.stride(d) != 0 && t.stride(d) % vec == 0));
  }
  return aligned ? t : t.clone(at::MemoryFormat::Contiguous);
}

// HEADMIX_FLASH_KERNELS=portable runs the portable kernels on any GPU (to compare, or to rule
// the Hopper ones out); =sm90 insists on the Hopper ones; unset or =auto picks by device.
bool use_sm90_kernels(const at::Device& device, const char* op) {
  const char* env = std::getenv("HEADMIX_FLASH_KERNELS");
  const std::string choice = env != nullptr && *env != '\0' ? env : "auto";
  TORCH_CHECK(choice == "auto" || choice == "portable" || choice == "sm90",
              "HEADMIX_FLASH_KERNELS must be auto, portable or sm90, got '", choice, "'");
#if HEADMIX_WITH_SM90_KERNELS
  const auto* props = at::cuda::getDeviceProperties(device.index());
  const bool hopper = props->major == 9 && props->minor == 0;
#else
  const bool hopper = false;
#endif
  TORCH_CHECK(choice != "sm90" || hopper, "headmix.", op, ": HEADMIX_FLASH_KERNELS=sm90 needs an sm_90 GPU and a ",
              "build whose HEADMIX_CUDA_ARCHS includes 90a (this build: '", HEADMIX_BUILD_ARCHS, "')");
  return hopper && choice != "portable";
}

kernels::FlashAttnParams attn_params(const AttnDims& dims, const at::Tensor& q, const at::Tensor& k,
                                     const at::Tensor& v, std::optional<double> scale, bool causal,
                                     int64_t window_left, int64_t window_right) {
  kernels::FlashAttnParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.dtype = kernel_dtype(q.scalar_type());
  p.batch = dims.batch;
  p.seqlen_q = dims.seqlen_q;
  p.seqlen_k = dims.seqlen_k;
  p.heads = dims.heads;
  p.kv_heads = dims.kv_heads;
  p.head_dim = dims.head_dim;
  p.q_batch_stride = q.stride(0);
  p.q_row_stride = q.stride(1);
  p.q_head_stride = q.stride(2);
  p.k_batch_stride = k.stride(0);
  p.k_row_stride = k.stride(1);
  p.k_head_stride = k.stride(2);
  p.v_batch_stride = v.stride(0);
  p.v_row_stride = v.stride(1);
  p.v_head_stride = v.stride(2);
  p.scale = float(scale ? *scale : 1.0 / std::sqrt(double(dims.head_dim)));
  // The kernels take row maxima of the raw scores, which needs an order-preserving scale.
  TORCH_CHECK(p.scale > 0.f && std::isfinite(p.scale), "scale must be positive and finite on CUDA, got ",
              scale ? *scale : 0.0);
  // Windows wider than both sequences are unbounded; this keeps the kernels' ints small.
  const int64_t span = dims.seqlen_q + dims.seqlen_k;
  p.window_left = window_left > span ? -1 : window_left;
  p.window_right = causal ? 0 : (window_right > span ? -1 : window_right);
  return p;
}

std::tuple<at::Tensor, at::Tensor> flash_attn_fwd(const at::Tensor& q_in, const at::Tensor& k_in,
                                                  const at::Tensor& v_in, std::optional<double> scale,
                                                  bool causal, int64_t window_left, int64_t window_right) {
  const auto dims = check_flash_attn(q_in, k_in, v_in, window_left, window_right);
  check_portable(dims, q_in, v_in, "flash_attn_fwd");
  const c10::cuda::CUDAGuard device_guard(q_in.device());
  require_kernel_arch(q_in.device(), "flash_attn_fwd");
  const auto dtype = q_in.scalar_type();
  const auto q = aligned_operand(q_in, dtype), k = aligned_operand(k_in, dtype), v = aligned_operand(v_in, dtype);
  auto out = at::empty({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim}, q.options());
  auto lse = at::empty({dims.batch, dims.heads, dims.seqlen_q}, q.options().dtype(at::kFloat));
  kernels::FlashAttnFwdParams p{};
  p.attn = attn_params(dims, q, k, v, scale, causal, window_left, window_right);
  p.out = out.data_ptr();
  p.lse = lse.data_ptr<float>();
  const auto stream = at::cuda::getCurrentCUDAStream();
  if (use_sm90_kernels(q.device(), "flash_attn_fwd")) {  // never true without them
#if HEADMIX_WITH_SM90_KERNELS
    C10_CUDA_CHECK(kernels::launch_flash_attn_fwd_sm90(p, stream));
#endif
  } else {
    C10_CUDA_CHECK(kernels::launch_flash_attn_fwd_portable(p, stream));
  }
  return {out, lse};
}

// dq accumulates in fp32 with atomics unless torch.use_deterministic_algorithms(True) asks for
// bitwise-reproducible gradients, which a separate dq pass over the key tiles gives.
std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_attn_bwd(
    const at::Tensor& dout_in, const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
    const at::Tensor& out_in, const at::Tensor& lse_in, const std::optional<at::Tensor>& dlse_in,
    std::optional<double> scale, bool causal, int64_t window_left, int64_t window_right) {
  const auto dims = check_flash_attn(q_in, k_in, v_in, window_left, window_right);
  check_flash_attn_bwd(dims, dout_in, out_in, lse_in, dlse_in);
  check_portable(dims, q_in, v_in, "flash_attn_bwd");
  const c10::cuda::CUDAGuard device_guard(q_in.device());
  require_kernel_arch(q_in.device(), "flash_attn_bwd");
  const auto dtype = q_in.scalar_type();
  const auto q = aligned_operand(q_in, dtype), k = aligned_operand(k_in, dtype), v = aligned_operand(v_in, dtype);
  const auto out = aligned_operand(out_in, dtype), dout = aligned_operand(dout_in, dtype);
  const auto lse = lse_in.to(at::kFloat).contiguous();
  const auto dlse = dlse_in ? dlse_in->to(at::kFloat).contiguous() : at::Tensor();
  const auto f32 = q.options().dtype(at::kFloat);
  auto row_dot = at::empty({dims.batch, dims.heads, dims.seqlen_q}, f32);
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  auto dq_accum = deterministic ? at::Tensor() : at::zeros({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim}, f32);
  auto dq = at::empty({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim}, q.options());
  auto dk = at::empty({dims.batch, dims.seqlen_k, dims.kv_heads, dims.head_dim}, q.options());
  auto dv = at::empty({dims.batch, dims.seqlen_k, dims.kv_heads, dims.head_dim}, q.options());
  kernels::FlashAttnBwdParams p{};
  p.attn = attn_params(dims, q, k, v, scale, causal, window_left, window_right);
  p.out = out.data_ptr();
  p.dout = dout.data_ptr();
  p.lse = lse.data_ptr<float>();
  p.dlse = dlse.defined() ? dlse.data_ptr<float>() : nullptr;
  p.row_dot = row_dot.data_ptr<float>();
  p.dq_accum = deterministic ? nullptr : dq_accum.data_ptr<float>();
  p.dq = dq.data_ptr();
  p.dk = dk.data_ptr();
  p.dv = dv.data_ptr();
  p.out_batch_stride = out.stride(0);
  p.out_row_stride = out.stride(1);
  p.out_head_stride = out.stride(2);
  p.dout_batch_stride = dout.stride(0);
  p.dout_row_stride = dout.stride(1);
  p.dout_head_stride = dout.stride(2);
  const auto stream = at::cuda::getCurrentCUDAStream();
  if (use_sm90_kernels(q.device(), "flash_attn_bwd")) {  // never true without them
#if HEADMIX_WITH_SM90_KERNELS
    C10_CUDA_CHECK(kernels::launch_flash_attn_bwd_sm90(p, stream));
#endif
  } else {
    C10_CUDA_CHECK(kernels::launch_flash_attn_bwd_portable(p, stream));
  }
  return {dq, dk, dv};
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CUDA, m) {
  m.impl("flash_attn_fwd", &flash_attn_fwd);
  m.impl("flash_attn_bwd", &flash_attn_bwd);
}

}  // namespace headmix::cuda
