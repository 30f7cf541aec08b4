// The portable mix_heads kernels (csrc/kernels/sm80/mix_heads.cu: the mix with fused RoPE, dx
// as the transposed mix with inverse RoPE, and the two-stage deterministic dw), launched on the
// CPU emulator with the binding's Params code (cuda/mix_heads_params.h).
#include "harness.h"

#include "checks.h"
#include "cuda/mix_heads_params.h"
#include "sm80/mix_heads.cu"

namespace {

using headmix::cuda::RopeTables;

at::Tensor mix(const at::Tensor& x, const at::Tensor& w32, int64_t heads_out, int64_t w_in_stride,
               int64_t w_out_stride, const RopeTables& rope, bool rotate_inputs) {
  auto y = at::empty({x.size(0), x.size(1), heads_out, x.size(3)}, x.options());
  harness::poison(y);
  harness::use_buffers({{"x", x, false}, {"w", w32, false}, {"cos", rope.cos, false}, {"sin", rope.sin, false},
                        {"y", y, true}});
  const auto p = headmix::cuda::mix_heads_params(x, w32, y, w_in_stride, w_out_stride, rope, rotate_inputs);
  harness::check(headmix::kernels::launch_mix_heads_portable(p, nullptr), "mix_heads");
  return y;
}

}  // namespace

at::Tensor emulated_mix_heads(const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
                              const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                              int64_t pos_offset) {
  headmix::check_mix_heads(x, w, pseudo, cos, sin, pos_offset);
  const RopeTables rope(cos, sin, pseudo, pos_offset);
  return mix(x, w.to(at::kFloat).contiguous(), w.size(1), w.size(1), 1, rope, false);
}

// dx and dw as the CUDA binding computes them, dw in `chunks` token chunks.
std::vector<at::Tensor> emulated_mix_heads_backward(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w,
                                                    int64_t pseudo, const std::optional<at::Tensor>& cos,
                                                    const std::optional<at::Tensor>& sin, int64_t pos_offset,
                                                    int64_t num_sms) {
  headmix::check_mix_heads(x, w, pseudo, cos, sin, pos_offset);
  headmix::check_mix_heads_grad(grad, x, w);
  const RopeTables rope(cos, sin, pseudo, pos_offset);
  const auto g = headmix::cuda::kernel_grad(grad, x);
  // dx[m] = sum_j w[m, j] * unrotate(grad[j]): weight(i = j, o = m) = w[m, j]
  const auto dx = mix(g, w.to(at::kFloat).contiguous(), x.size(2), 1, w.size(1), rope, true);
  const int64_t chunks = headmix::kernels::mix_heads_dw_chunks(x.size(0) * x.size(1), x.size(2), w.size(1),
                                                               int(num_sms));
  const auto f32 = x.options().dtype(at::kFloat);
  auto partial = at::empty({chunks, x.size(2), w.size(1)}, f32);
  auto dw = at::empty({x.size(2), w.size(1)}, f32);
  harness::poison(partial);
  harness::poison(dw);
  harness::use_buffers({{"x", x, false}, {"grad", g, false}, {"cos", rope.cos, false}, {"sin", rope.sin, false},
                        {"partial", partial, true}, {"dw", dw, true}});
  const auto p = headmix::cuda::mix_heads_dw_params(g, x, partial, dw, rope);
  harness::check(headmix::kernels::launch_mix_heads_dw_portable(p, nullptr), "mix_heads dw");
  return {dx, dw, at::tensor(chunks)};
}
