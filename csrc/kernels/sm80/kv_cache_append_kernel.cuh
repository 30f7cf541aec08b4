#pragma once
// kv_cache_append: one pass over the new rows that writes V as it is and K rotated (GPT-NeoX
// rotate-half at position (pos[b] or cache_seqlens[b]) + s, fp32 math) into row
// cache_seqlens[b] + s of a contiguous or paged cache. One thread per (token, head, column
// unit), units fastest so a warp covers whole rows: a K unit is VEC features of the rotary first
// half together with their partners r/2 further (RoPE needs no exchange between threads) or VEC
// pass-through features; a V unit is VEC features. VEC elements move as one 16-byte (at most)
// load and store; V and unrotated K are copied bit for bit. A row outside the cache, on a page id
// out of range or past the RoPE table is skipped whole (the bindings reject those calls first
// when they may read the lengths on the host).
#include <cstdint>

#include "common/rope.cuh"
#include "common/vec.cuh"
#include "params.h"

namespace headmix::kernels::sm80 {

template <typename T, int VEC>
__global__ void __launch_bounds__(256) kv_cache_append_kernel(const KvCacheAppendParams p) {
  const int64_t half = p.rope.rotary_half;
  const int64_t rotary_units = half / VEC;
  const int64_t k_units = rotary_units + (p.head_dim - 2 * half) / VEC;
  const int64_t units = k_units + p.head_dim_v / VEC;
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (thread >= p.batch * p.new_rows * p.cache_heads * units) return;
  const int64_t unit = thread % units;
  const int64_t head = thread / units % p.cache_heads;
  const int64_t token = thread / (units * p.cache_heads);
  const int64_t b = token / p.new_rows, s = token % p.new_rows;

  const int64_t start = p.cache_seqlens[b * p.seqlens_stride];
  const int64_t row = start + s;
  if (start < 0 || row >= p.layout.capacity) return;
  int64_t page = b, offset = row;
  if (p.layout.block_table != nullptr) {
    page = p.layout.block_table[b * p.layout.table_stride + row / p.layout.block_size];
    offset = row % p.layout.block_size;
    if (page < 0 || page >= p.layout.num_blocks) return;
  }
  const bool rotated = p.rope.cos != nullptr;
  const int64_t pos = (p.pos != nullptr ? int64_t(p.pos[b * p.pos_stride]) : start) + s;
  if (rotated && (pos < 0 || pos >= p.max_pos)) return;

  if (unit >= k_units) {  // V
    const int64_t col = (unit - k_units) * VEC;
    const T* src = static_cast<const T*>(p.v_new) + b * p.v_new_batch_stride + s * p.v_new_row_stride +
                   head * p.v_new_head_stride + col;
    T* dst = static_cast<T*>(p.v_cache) + page * p.v_batch_stride + offset * p.v_row_stride +
             head * p.v_head_stride + col;
    *reinterpret_cast<Pack<T, VEC>*>(dst) = *reinterpret_cast<const Pack<T, VEC>*>(src);
    return;
  }
  const bool paired = unit < rotary_units;
  const int64_t col = paired ? unit * VEC : 2 * half + (unit - rotary_units) * VEC;
  const T* src = static_cast<const T*>(p.k_new) + b * p.k_new_batch_stride + s * p.k_new_row_stride +
                 head * p.k_new_head_stride + col;
  T* dst = static_cast<T*>(p.k_cache) + page * p.k_batch_stride + offset * p.k_row_stride +
           head * p.k_head_stride + col;
  if (!(paired && rotated)) {
    *reinterpret_cast<Pack<T, VEC>*>(dst) = *reinterpret_cast<const Pack<T, VEC>*>(src);
    if (paired) {
      *reinterpret_cast<Pack<T, VEC>*>(dst + half) = *reinterpret_cast<const Pack<T, VEC>*>(src + half);
    }
    return;
  }
  float a[VEC], c[VEC];
  load_floats<T, VEC>(src, a);
  load_floats<T, VEC>(src + half, c);
  rotate_pair<false, VEC>(a, c, p.rope, pos, col);
  store_floats<T, VEC>(dst, a);
  store_floats<T, VEC>(dst + half, c);
}

}  // namespace headmix::kernels::sm80
