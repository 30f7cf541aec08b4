// CPU attention, forward and backward, blockwise with an online softmax (FlashAttention-2's
// algorithm expressed with ATen GEMMs): no S_q x S_k score matrix is ever built, memory is
// O(S * block). Blocks wholly outside the causal/window band are skipped, so a windowed
// pseudo-sequence costs O(S * window). Work is split over (batch, kv head, query block) in the
// forward, a GQA group's query heads sharing each GEMM, and over (batch, head) in the backward
// with at::parallel_for, where a GQA key/value head's gradient is summed over its query heads
// after the loop so no two tasks write the same memory. The unwindowed float32/float64
// forwards and backwards that ATen's own CPU flash kernel computes identically go to it, GQA
// included: it reads a query head's key/value head in place (no repeated K/V) and fuses the
// scale, max, exp and sum of each score tile into one vectorised pass where the blockwise code
// below makes one ATen call per step (benchmarks/README.md, "CPU profile").
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "attention_scale.h"
#include "checks.h"
#include "cpu/attention.h"
#include "registration.h"

namespace headmix::cpu {
namespace {

constexpr int64_t kBlockQ = 128;  // query rows per task / GEMM
constexpr int64_t kBlockK = 256;  // key rows per GEMM
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// True when every (query, key) pair of the tile [i0, i1) x [j0, j1) is inside the band.
bool tile_inside_band(const KeyBand& band, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  return band.first_key(i1 - 1) <= j0 && j1 - 1 <= band.last_key(i0);
}

// Boolean [i1 - i0, j1 - j0] tile: true where query i may see key j.
at::Tensor band_tile(const KeyBand& band, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  const auto opts = at::TensorOptions().dtype(at::kLong);
  const auto rows = at::arange(i0, i1, opts).unsqueeze(1);
  const auto cols = at::arange(j0, j1, opts).unsqueeze(0);
  at::Tensor allowed = at::ones({i1 - i0, j1 - j0}, opts.dtype(at::kBool));
  if (band.left >= 0) allowed &= cols >= rows + (band.offset - band.left);
  if (band.right >= 0) allowed &= cols <= rows + (band.offset + band.right);
  return allowed;
}

// Query rows [i0, i1) of the `group` query heads sharing one kv head: q_rows [group, n, d]
// is stacked into one [group * n, d] GEMM operand (so a decode step with few query rows still
// makes a real GEMM), the key blocks of the band stream through an online softmax, and
// out_rows [n, group, d_v] / lse_rows [group, n] receive the result.
void forward_rows(const KeyBand& band, int64_t i0, int64_t i1, const at::Tensor& q_rows,
                  const at::Tensor& k_head, const at::Tensor& v_head, at::Tensor out_rows,
                  at::Tensor lse_rows) {
  const int64_t group = q_rows.size(0), n = i1 - i0, rows = group * n;
  const auto q_stacked = q_rows.reshape({rows, q_rows.size(2)});
  const int64_t j_first = std::max<int64_t>(0, band.first_key(i0));
  const int64_t j_last = std::min(band.seqlen_k - 1, band.last_key(i1 - 1));
  auto row_max = at::full({rows}, kNegInf, q_rows.options());
  auto row_sum = at::zeros({rows}, q_rows.options());
  auto acc = at::zeros({rows, v_head.size(1)}, q_rows.options());
  for (int64_t j0 = j_first; j0 <= j_last; j0 += kBlockK) {
    const int64_t j1 = std::min(j0 + kBlockK, j_last + 1);
    auto scores = at::mm(q_stacked, k_head.narrow(0, j0, j1 - j0).t());  // [rows, j1 - j0]
    if (!tile_inside_band(band, i0, i1, j0, j1)) {
      const auto allowed = band_tile(band, i0, i1, j0, j1).repeat({group, 1});
      scores.masked_fill_(allowed.logical_not(), kNegInf);
    }
    auto new_max = at::maximum(row_max, std::get<0>(scores.max(1)));
    // A row with no allowed key yet keeps max -inf; shift it by 0 so exp() gives 0, not NaN.
    auto shift = new_max.masked_fill(new_max == kNegInf, 0.0);
    auto probs = scores.sub_(shift.unsqueeze(1)).exp_();
    auto rescale = (row_max - shift).exp_();
    row_sum.mul_(rescale).add_(probs.sum(1));
    acc.mul_(rescale.unsqueeze(1)).addmm_(probs, v_head.narrow(0, j0, j1 - j0));
    row_max = new_max;
  }
  // A row that saw a key has row_sum >= 1 (its max term is exp(0)); one that saw none has
  // acc = 0 and row_sum = 0, so dividing by max(row_sum, 1) writes the required 0.
  acc.div_(row_sum.clamp_min(1.0).unsqueeze(1));
  out_rows.copy_(acc.view({group, n, acc.size(1)}).transpose(0, 1));
  auto shift = row_max.masked_fill(row_max == kNegInf, 0.0);
  lse_rows.copy_((shift + row_sum.log()).view({group, n}));  // log(0) = -inf: no keys
}

// ATen's CPU flash-attention kernel computes exactly this op when there is no window, the
// causal mask's top-left alignment equals our bottom-right one (S_q == S_k) and d_v == d; it
// indexes a GQA group's shared key/value head itself (H a multiple of H_kv, as
// check_flash_attn requires) and returns the same natural-log lse in the same dtype. 16-bit
// inputs stay on the blockwise loop: there ATen's lse (4x at S = 600) and GQA dv (2.4x at
// group 4) exceed twice PyTorch's own 16-bit error (benchmarks/README.md, "CPU profile"). Called
// directly it trusts its inputs' last dimension to be unit-stride (SDPA's dispatcher checks
// that before choosing it), which a rebuilt decode head (an einsum's permuted result) is not.
bool aten_flash_covers(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                       int64_t window_left, int64_t window_right) {
  return window_left < 0 && (causal || window_right < 0) && (!causal || q.size(1) == k.size(1)) &&
         v.size(3) == q.size(3) && q.size(0) > 0 && q.size(1) > 0 && k.size(1) > 0 &&
         q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1 && !at::isReducedFloatingType(q.scalar_type());
}

// Decode-sized causal queries (S_q <= kMaskedQueryRows, S_q <= S_k, so every row sees key 0):
// ATen's kernel with an additive bottom-right mask [S_q, S_k], the same call SDPA makes for a
// user's mask. The mask is no larger than a few rows of scores, and one kernel call replaces the
// blockwise loop's per-step ATen calls and parallel regions. Forward only: the backward keeps
// the blockwise loop for S_q != S_k.
constexpr int64_t kMaskedQueryRows = 64;

bool aten_flash_covers_with_mask(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                                 int64_t window_left) {
  return causal && window_left < 0 && q.size(1) <= kMaskedQueryRows && q.size(1) <= k.size(1) &&
         aten_flash_covers(q, k, v, /*causal=*/false, -1, -1);
}

// Filled by one serial loop: with ATen's arange/compare/masked_fill each of the three parallel
// regions cost a scheduler tick on a loaded machine (8 ms each at S_k = 32k), more than the rows.
at::Tensor bottom_right_mask(int64_t seqlen_q, int64_t seqlen_k, const at::TensorOptions& options) {
  auto mask = at::empty({seqlen_q, seqlen_k}, options);
  AT_DISPATCH_FLOATING_TYPES(mask.scalar_type(), "bottom_right_mask", [&] {
    scalar_t* row = mask.mutable_data_ptr<scalar_t>();
    for (int64_t i = 0; i < seqlen_q; ++i, row += seqlen_k) {
      const int64_t last = i + seqlen_k - seqlen_q;  // the last key row i sees
      std::fill(row, row + last + 1, scalar_t(0));
      std::fill(row + last + 1, row + seqlen_k, -std::numeric_limits<scalar_t>::infinity());
    }
  });
  return mask;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> attention_forward(const at::Tensor& q, const at::Tensor& k,
                                                     const at::Tensor& v, double scale,
                                                     bool causal, int64_t window_left,
                                                     int64_t window_right) {
  if (aten_flash_covers(q, k, v, causal, window_left, window_right)) {
    auto [out, lse] = at::_scaled_dot_product_flash_attention_for_cpu(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), 0.0, causal, std::nullopt, scale);
    return {out.transpose(1, 2).contiguous(), lse.contiguous()};
  }
  if (aten_flash_covers_with_mask(q, k, v, causal, window_left)) {
    const auto mask = bottom_right_mask(q.size(1), k.size(1), q.options());
    auto [out, lse] = at::_scaled_dot_product_flash_attention_for_cpu(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), 0.0, false, mask, scale);
    return {out.transpose(1, 2).contiguous(), lse.contiguous()};
  }
  const int64_t batch = q.size(0), seqlen_q = q.size(1), heads = q.size(2);
  const int64_t kv_heads = k.size(2), group = heads / kv_heads, seqlen_k = k.size(1);
  const auto acc_type = accumulate_type(q.scalar_type());
  // [B, H_kv, group, S_q, d]: a kv head's query heads side by side, prescaled.
  const auto q_grouped = q.to(acc_type)
                             .mul(scale)
                             .view({batch, seqlen_q, kv_heads, group, q.size(3)})
                             .permute({0, 2, 3, 1, 4})
                             .contiguous();
  const auto k_acc = k.to(acc_type), v_acc = v.to(acc_type);
  auto out = at::zeros({batch, seqlen_q, heads, v.size(3)}, q.options());
  auto lse = at::full({batch, heads, seqlen_q}, kNegInf, q.options().dtype(acc_type));
  const KeyBand band(seqlen_q, seqlen_k, causal, window_left, window_right);
  const int64_t q_blocks = (seqlen_q + kBlockQ - 1) / kBlockQ;
  at::parallel_for(0, batch * kv_heads * q_blocks, 1, [&](int64_t begin, int64_t end) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / (kv_heads * q_blocks), g = task / q_blocks % kv_heads;
      const int64_t i0 = task % q_blocks * kBlockQ, i1 = std::min(i0 + kBlockQ, seqlen_q);
      forward_rows(band, i0, i1, q_grouped[b][g].narrow(1, i0, i1 - i0), k_acc[b].select(1, g),
                   v_acc[b].select(1, g), out[b].narrow(0, i0, i1 - i0).narrow(1, g * group, group),
                   lse[b].narrow(0, g * group, group).narrow(1, i0, i1 - i0));
    }
  });
  return {out, lse};
}

namespace {

std::tuple<at::Tensor, at::Tensor> flash_attn_fwd(const at::Tensor& q, const at::Tensor& k,
                                                  const at::Tensor& v, std::optional<double> scale,
                                                  bool causal, int64_t window_left,
                                                  int64_t window_right) {
  check_flash_attn(q, k, v, window_left, window_right);
  return attention_forward(q, k, v, attention_scale(scale, q.size(3)), causal, window_left,
                           window_right);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_attn_bwd(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const std::optional<at::Tensor>& dlse,
    std::optional<double> scale_opt, bool causal, int64_t window_left, int64_t window_right) {
  const auto dims = check_flash_attn(q, k, v, window_left, window_right);
  check_flash_attn_bwd(dims, dout, out, lse, dlse);
  const double scale = attention_scale(scale_opt, dims.head_dim);
  const int64_t group = dims.heads / dims.kv_heads;
  const auto acc_type = accumulate_type(q.scalar_type());
  // ATen's backward has no lse gradient input; with one, the blockwise loop below folds it in.
  if (!dlse && aten_flash_covers(q, k, v, causal, window_left, window_right) &&
      dout.stride(3) == 1 && out.stride(3) == 1) {
    const auto in = [](const at::Tensor& t) { return t.transpose(1, 2); };
    auto [dq, dk, dv] = at::_scaled_dot_product_flash_attention_for_cpu_backward(
        in(dout), in(q), in(k), in(v), in(out), lse, 0.0, causal, std::nullopt, scale);
    const auto grad = [](const at::Tensor& t, const at::Tensor& like) {
      return t.transpose(1, 2).to(like.scalar_type()).contiguous();
    };
    return {grad(dq, q), grad(dk, k), grad(dv, v)};
  }
  const auto q_scaled = q.to(acc_type).mul(scale);
  const auto k_acc = k.to(acc_type), v_acc = v.to(acc_type), dout_acc = dout.to(acc_type);
  const auto lse_acc = lse.to(acc_type);
  // d lse / d scores = softmax, so dlse enters exactly like a shift of D = rowsum(dO * O).
  auto row_dot = (dout_acc * out.to(acc_type)).sum(-1).transpose(1, 2);  // [B, H, S_q]
  if (dlse) row_dot = row_dot - dlse->to(acc_type);
  auto dq = at::zeros({dims.batch, dims.seqlen_q, dims.heads, dims.head_dim}, q_scaled.options());
  // Per query head; summed over each GQA group below.
  auto dk_per_head = at::zeros({dims.batch, dims.seqlen_k, dims.heads, dims.head_dim}, dq.options());
  auto dv_per_head = at::zeros({dims.batch, dims.seqlen_k, dims.heads, dims.head_dim_v}, dq.options());
  const KeyBand band(dims.seqlen_q, dims.seqlen_k, causal, window_left, window_right);
  at::parallel_for(0, dims.batch * dims.heads, 1, [&](int64_t begin, int64_t end) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / dims.heads, h = task % dims.heads;
      const auto q_h = q_scaled[b].select(1, h), do_h = dout_acc[b].select(1, h);
      const auto k_h = k_acc[b].select(1, h / group), v_h = v_acc[b].select(1, h / group);
      const auto lse_h = lse_acc[b][h], dot_h = row_dot[b][h];
      auto dq_h = dq[b].select(1, h), dk_h = dk_per_head[b].select(1, h);
      auto dv_h = dv_per_head[b].select(1, h);
      for (int64_t j0 = 0; j0 < dims.seqlen_k; j0 += kBlockK) {
        const int64_t j1 = std::min(j0 + kBlockK, dims.seqlen_k);
        const int64_t i_first = std::max<int64_t>(0, band.first_query(j0));
        const int64_t i_last = std::min(dims.seqlen_q - 1, band.last_query(j1 - 1));
        const auto k_blk = k_h.narrow(0, j0, j1 - j0), v_blk = v_h.narrow(0, j0, j1 - j0);
        auto dk_blk = dk_h.narrow(0, j0, j1 - j0), dv_blk = dv_h.narrow(0, j0, j1 - j0);
        for (int64_t i0 = i_first; i0 <= i_last; i0 += kBlockQ) {
          const int64_t i1 = std::min(i0 + kBlockQ, i_last + 1);
          const auto q_blk = q_h.narrow(0, i0, i1 - i0), do_blk = do_h.narrow(0, i0, i1 - i0);
          auto probs = at::mm(q_blk, k_blk.t()).sub_(lse_h.narrow(0, i0, i1 - i0).unsqueeze(1)).exp_();
          if (!tile_inside_band(band, i0, i1, j0, j1)) {
            probs.masked_fill_(band_tile(band, i0, i1, j0, j1).logical_not(), 0.0);
          }
          dv_blk.addmm_(probs.t(), do_blk);
          auto dscores = at::mm(do_blk, v_blk.t())
                             .sub_(dot_h.narrow(0, i0, i1 - i0).unsqueeze(1))
                             .mul_(probs);
          dq_h.narrow(0, i0, i1 - i0).addmm_(dscores, k_blk, 1.0, scale);
          dk_blk.addmm_(dscores.t(), q_blk);  // q_blk already carries the scale
        }
      }
    }
  });
  auto group_sum = [&](const at::Tensor& t) {
    return t.view({dims.batch, dims.seqlen_k, dims.kv_heads, group, t.size(3)}).sum(3);
  };
  return {dq.to(q.scalar_type()), group_sum(dk_per_head).to(k.scalar_type()),
          group_sum(dv_per_head).to(v.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(HEADMIX_NAMESPACE, CPU, m) {
  m.impl("flash_attn_fwd", &flash_attn_fwd);
  m.impl("flash_attn_bwd", &flash_attn_bwd);
}

}  // namespace headmix::cpu
