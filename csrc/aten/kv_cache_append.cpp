#include "aten/kv_cache_append.h"

#include "aten/kv_cache.h"
#include "aten/rope.h"

namespace headmix::aten {

void kv_cache_append(const DecodeDims& dims, const at::Tensor& k_new, const at::Tensor& v_new,
                     at::Tensor& k_cache, at::Tensor& v_cache, const at::Tensor& cache_seqlens,
                     const std::optional<at::Tensor>& block_table, const std::optional<at::Tensor>& cos,
                     const std::optional<at::Tensor>& sin, const std::optional<at::Tensor>& pos) {
  const int64_t new_rows = k_new.size(1);
  check_cache_ranges(dims, cache_seqlens, block_table, k_cache.size(0), new_rows, cos, pos);
  if (new_rows == 0 || dims.batch == 0) return;
  const auto steps = at::arange(new_rows, cache_seqlens.options().dtype(at::kLong)).unsqueeze(0);
  const auto rows = cache_seqlens.to(at::kLong).unsqueeze(1) + steps;  // [B, S_new]
  at::Tensor keys = k_new;
  if (cos) {
    const auto positions = (pos ? pos->to(at::kLong).unsqueeze(1) + steps : rows).flatten();
    auto rotated = owned_copy(k_new, accumulate_type(k_new.scalar_type()));
    auto [c, s] = gather_rope_rows(*cos, *sin, positions, rotated.scalar_type());
    c = c.view({dims.batch, new_rows, 1, c.size(-1)});
    s = s.view({dims.batch, new_rows, 1, s.size(-1)});
    rotate_half_(rotated, c, s, /*inverse=*/false);
    keys = rotated;
  }
  const auto index = cache_row_index(k_cache, block_table, rows);
  k_cache.index_put_({index[0], index[1]}, keys.to(k_cache.scalar_type()));
  v_cache.index_put_({index[0], index[1]}, v_new);
}

}  // namespace headmix::aten
