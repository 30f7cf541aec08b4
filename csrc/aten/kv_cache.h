#pragma once
// Row addressing of contiguous [B, T_max, H', d] and paged [num_blocks, block_size, H', d]
// KV caches with ATen ops (any device), and the rebuild of composite heads from virtual ones.
#include <ATen/ATen.h>

#include <array>
#include <cstring>
#include <optional>

namespace headmix::aten {

// cache[table[i]] for each i: [pages, block_size, H', d]. On the host a page of a contiguous
// cache is one memcpy into `scratch` (resized, reused by the caller across chunks so a decode
// step does not fault in fresh memory per chunk).
inline at::Tensor gather_pages(const at::Tensor& cache, const at::Tensor& table, at::Tensor& scratch) {
  if (!cache.is_cpu() || !cache.is_contiguous()) return cache.index_select(0, table);
  if (!scratch.defined()) scratch = at::empty({0}, cache.options());
  auto& pages = scratch.resize_({table.size(0), cache.size(1), cache.size(2), cache.size(3)});
  const int64_t page_bytes = cache[0].numel() * cache.element_size();
  const auto* src = static_cast<const char*>(cache.const_data_ptr());
  auto* dst = static_cast<char*>(pages.mutable_data_ptr());
  const auto* index = table.const_data_ptr<int64_t>();
  // One thread: the copy is bound by memory bandwidth, and a parallel region costs a scheduler
  // tick whenever the machine is loaded.
  for (int64_t i = 0; i < table.size(0); ++i) std::memcpy(dst + i * page_bytes, src + index[i] * page_bytes, page_bytes);
  return pages;
}

// Rows [first, first + count) of sequence b as a [count, H', d] tensor (a view for a contiguous
// cache, a gather of the pages holding them for a paged one, into `scratch` on the host). No
// other row is touched.
inline at::Tensor cache_rows(const at::Tensor& cache, const std::optional<at::Tensor>& block_table,
                             int64_t b, int64_t first, int64_t count, at::Tensor& scratch) {
  if (!block_table) return cache[b].narrow(0, first, count);
  const int64_t block_size = cache.size(1);
  const int64_t first_page = first / block_size;
  const int64_t pages = (first + count + block_size - 1) / block_size - first_page;
  const auto table = (*block_table)[b].narrow(0, first_page, pages).to(at::kLong);
  return gather_pages(cache, table, scratch).flatten(0, 1).narrow(0, first - first_page * block_size, count);
}

// Composite heads rebuilt from cached (virtual) heads, K_g(t) = sum_j w[j, g] * K'(t, j):
// [T, H', d] x [H', H_kv] -> [T, H_kv, d] in `acc`; the rows themselves (in `acc`) without w.
inline at::Tensor rebuild_heads(const at::Tensor& rows, const std::optional<at::Tensor>& w,
                                at::ScalarType acc) {
  if (!w) return rows.to(acc);
  // contiguous: einsum's result is a permuted view, and attention cores read rows of d in place.
  return at::einsum("tjd,jg->tgd", {rows.to(acc), w->to(acc)}).contiguous();
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
