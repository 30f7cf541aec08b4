#pragma once
// Row addressing of contiguous [B, T_max, H', d] and paged [num_blocks, block_size, H', d]
// KV caches with ATen ops (any device), and the rebuild of composite heads from virtual ones.
#include <ATen/ATen.h>

#include <array>
#include <optional>

namespace headmix::aten {

// Rows [0, length) of sequence b as a [length, H', d] tensor (a view for a contiguous cache,
// a gather of its pages for a paged one). Rows >= length are never touched.
inline at::Tensor cache_rows(const at::Tensor& cache, const std::optional<at::Tensor>& block_table,
                             int64_t b, int64_t length) {
  if (!block_table) return cache[b].narrow(0, 0, length);
  const int64_t block_size = cache.size(1);
  const int64_t blocks = (length + block_size - 1) / block_size;
  const auto pages = (*block_table)[b].narrow(0, 0, blocks).to(at::kLong);
  return cache.index_select(0, pages).flatten(0, 1).narrow(0, 0, length);
}

// Composite heads rebuilt from cached (virtual) heads, K_g(t) = sum_j w[j, g] * K'(t, j):
// [T, H', d] x [H', H_kv] -> [T, H_kv, d] in `acc`; the rows themselves without w.
inline at::Tensor rebuild_heads(const at::Tensor& rows, const std::optional<at::Tensor>& w,
                                at::ScalarType acc) {
  if (!w) return rows;
  return at::einsum("tjd,jg->tgd", {rows.to(acc), w->to(acc)});
}

// Index tensors addressing cache rows `rows` [B, S] (row r of sequence b): {batch, row} for a
// contiguous cache, {page, offset} for a paged one; usable with index_put_.
inline std::array<at::Tensor, 2> cache_row_index(const at::Tensor& cache,
                                                 const std::optional<at::Tensor>& block_table,
                                                 const at::Tensor& rows) {
  if (!block_table) {
    auto batch = at::arange(rows.size(0), rows.options()).unsqueeze(1).expand_as(rows);
    return {batch, rows};
  }
  const int64_t block_size = cache.size(1);
  auto pages = block_table->to(at::kLong).gather(1, rows.div(block_size, "floor"));
  return {pages, rows.remainder(block_size)};
}

}  // namespace headmix::aten
