#include "checks.h"

#include <sstream>
#include <string>

namespace headmix {
namespace {

std::string shape_of(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

bool is_compute_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kBFloat16 || t == at::kHalf;
}

void check_rank(const at::Tensor& t, const char* name, int64_t rank, const char* layout) {
  TORCH_CHECK(t.dim() == rank, name, " must be ", layout, " (", rank, "-D), got shape ",
              shape_of(t));
}

void check_last_dim_contiguous(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.size(-1) <= 1 || t.stride(-1) == 1, name,
              " must have a contiguous last dim (stride 1), got strides ", t.strides());
}

void check_same_device(const at::Tensor& t, const char* name, const at::Tensor& ref,
                       const char* ref_name) {
  TORCH_CHECK(t.device() == ref.device(), name, " must be on the same device as ", ref_name,
              " (", ref.device(), "), got ", t.device());
}

void check_same_dtype(const at::Tensor& t, const char* name, const at::Tensor& ref,
                      const char* ref_name) {
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), name, " must have the dtype of ", ref_name,
              " (", dtype_name(ref.scalar_type()), "), got ", dtype_name(t.scalar_type()));
}

void check_compute_dtype(const at::Tensor& t, const char* name) {
  TORCH_CHECK(is_compute_dtype(t.scalar_type()), name,
              " must be float32, float64, bfloat16 or float16, got ", dtype_name(t.scalar_type()));
}

void check_int32_vector(const at::Tensor& t, const char* name, int64_t length,
                        const at::Tensor& ref) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == length, name, " must be [B] with B = ", length,
              ", got shape ", shape_of(t));
  TORCH_CHECK(t.scalar_type() == at::kInt, name, " must be int32, got ", dtype_name(t.scalar_type()));
  check_same_device(t, name, ref, "the queries/keys");
}

// cos/sin: both or neither, [max_pos, r/2] float32 with r <= head_dim.
void check_rope_tables(const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                       int64_t head_dim, const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK(cos.has_value() == sin.has_value(),
              "cos and sin must be given together (RoPE), got only ", cos ? "cos" : "sin");
  if (!cos) return;
  TORCH_CHECK(cos->dim() == 2, "cos must be [max_pos, rotary_dim/2] (2-D), got shape ",
              shape_of(*cos));
  TORCH_CHECK(sin->sizes() == cos->sizes(), "sin must have the shape of cos ", shape_of(*cos),
              ", got ", shape_of(*sin));
  TORCH_CHECK(cos->scalar_type() == at::kFloat && sin->scalar_type() == at::kFloat,
              "cos and sin must be float32, got ", dtype_name(cos->scalar_type()), " and ",
              dtype_name(sin->scalar_type()));
  TORCH_CHECK(2 * cos->size(1) <= head_dim, "cos/sin cover rotary_dim = 2*", cos->size(1), " = ",
              2 * cos->size(1), " features, more than the head dim ", head_dim);
  check_same_device(*cos, "cos", ref, ref_name);
  check_same_device(*sin, "sin", ref, ref_name);
}

}  // namespace

std::string dtype_name(at::ScalarType dtype) {
  return std::string(c10::getDtypeNames(dtype).first);
}

at::ScalarType accumulate_type(at::ScalarType dtype) {
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

void check_mix_heads(const at::Tensor& x, const at::Tensor& w, int64_t pseudo,
                     const std::optional<at::Tensor>& cos, const std::optional<at::Tensor>& sin,
                     int64_t pos_offset) {
  check_rank(x, "x", 4, "[B, N, H_in, d]");
  check_rank(w, "w", 2, "[H_in, H_out]");
  check_compute_dtype(x, "x");
  TORCH_CHECK(w.scalar_type() == x.scalar_type() || w.scalar_type() == at::kFloat,
              "w must have the dtype of x (", dtype_name(x.scalar_type()), ") or float32, got ",
              dtype_name(w.scalar_type()));
  check_same_device(w, "w", x, "x");
  check_last_dim_contiguous(x, "x");
  TORCH_CHECK(w.size(0) == x.size(2), "w must be [H_in, H_out] with H_in = x.size(2) = ",
              x.size(2), ", got shape ", shape_of(w));
  TORCH_CHECK(pseudo >= 1, "pseudo must be >= 1, got ", pseudo);
  TORCH_CHECK(w.size(1) % pseudo == 0, "H_out = w.size(1) = ", w.size(1),
              " must be divisible by pseudo = ", pseudo);
  TORCH_CHECK(pos_offset >= 0, "pos_offset must be >= 0, got ", pos_offset);
  check_rope_tables(cos, sin, x.size(3), x, "x");
  if (cos && x.size(1) > 0) {
    const int64_t last_pos = pos_offset + x.size(1) * pseudo - 1;
    TORCH_CHECK(last_pos < cos->size(0), "cos/sin have ", cos->size(0),
                " positions but the tokens need positions up to ", last_pos,
                " (pos_offset + N*pseudo - 1 = ", pos_offset, " + ", x.size(1), "*", pseudo,
                " - 1)");
  }
}

void check_mix_heads_grad(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w) {
  const std::vector<int64_t> expected{x.size(0), x.size(1), w.size(1), x.size(3)};
  TORCH_CHECK(grad.sizes() == at::IntArrayRef(expected), "grad must be [B, N, H_out, d] = ",
              at::IntArrayRef(expected), ", got shape ", shape_of(grad));
  check_same_device(grad, "grad", x, "x");
  check_compute_dtype(grad, "grad");
}

AttnDims check_flash_attn(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          int64_t window_left, int64_t window_right) {
  check_rank(q, "q", 4, "[B, S_q, H, d]");
  check_rank(k, "k", 4, "[B, S_k, H_kv, d]");
  check_rank(v, "v", 4, "[B, S_k, H_kv, d_v]");
  check_compute_dtype(q, "q");
  check_same_dtype(k, "k", q, "q");
  check_same_dtype(v, "v", q, "q");
  check_same_device(k, "k", q, "q");
  check_same_device(v, "v", q, "q");
  check_last_dim_contiguous(q, "q");
  check_last_dim_contiguous(k, "k");
  check_last_dim_contiguous(v, "v");
  TORCH_CHECK(k.size(0) == q.size(0) && v.size(0) == q.size(0), "q, k, v must share the batch B = ",
              q.size(0), ", got k ", shape_of(k), " and v ", shape_of(v));
  TORCH_CHECK(k.size(3) == q.size(3), "k must have the head dim of q (", q.size(3), "), got shape ",
              shape_of(k));
  TORCH_CHECK(v.size(1) == k.size(1) && v.size(2) == k.size(2),
              "v must be [B, S_k, H_kv, d_v] with S_k, H_kv of k ", shape_of(k), ", got shape ",
              shape_of(v));
  TORCH_CHECK(k.size(2) >= 1 && q.size(2) % k.size(2) == 0, "H = q.size(2) = ", q.size(2),
              " must be a multiple of H_kv = k.size(2) = ", k.size(2), " (GQA)");
  TORCH_CHECK(window_left >= -1 && window_right >= -1,
              "window_left/window_right must be >= -1 (-1 = unbounded), got (", window_left, ", ",
              window_right, ")");
  return {q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), v.size(3)};
}

void check_flash_attn_bwd(const AttnDims& dims, const at::Tensor& dout, const at::Tensor& out,
                          const at::Tensor& lse, const std::optional<at::Tensor>& dlse) {
  const std::vector<int64_t> out_shape{dims.batch, dims.seqlen_q, dims.heads, dims.head_dim_v};
  const std::vector<int64_t> lse_shape{dims.batch, dims.heads, dims.seqlen_q};
  TORCH_CHECK(out.sizes() == at::IntArrayRef(out_shape), "out must be [B, S_q, H, d_v] = ",
              at::IntArrayRef(out_shape), ", got shape ", shape_of(out));
  TORCH_CHECK(dout.sizes() == at::IntArrayRef(out_shape), "dout must be [B, S_q, H, d_v] = ",
              at::IntArrayRef(out_shape), ", got shape ", shape_of(dout));
  TORCH_CHECK(lse.sizes() == at::IntArrayRef(lse_shape), "lse must be [B, H, S_q] = ",
              at::IntArrayRef(lse_shape), ", got shape ", shape_of(lse));
  if (dlse) {
    TORCH_CHECK(dlse->sizes() == at::IntArrayRef(lse_shape), "dlse must be [B, H, S_q] = ",
                at::IntArrayRef(lse_shape), ", got shape ", shape_of(*dlse));
  }
}

namespace {

// Shared by decode and append: cache layout (contiguous or paged) and the kv-head count.
DecodeDims check_cache(const at::Tensor& k_cache, const at::Tensor& v_cache,
                       const at::Tensor& cache_seqlens,
                       const std::optional<at::Tensor>& block_table, int64_t batch,
                       const at::Tensor& ref, const char* ref_name) {
  const bool paged = block_table.has_value();
  const char* layout = paged ? "[num_blocks, block_size, H', d]" : "[B, T_max, H', d]";
  check_rank(k_cache, "k_cache", 4, layout);
  check_rank(v_cache, "v_cache", 4, paged ? "[num_blocks, block_size, H', d_v]" : "[B, T_max, H', d_v]");
  check_same_dtype(k_cache, "k_cache", ref, ref_name);
  check_same_dtype(v_cache, "v_cache", ref, ref_name);
  check_same_device(k_cache, "k_cache", ref, ref_name);
  check_same_device(v_cache, "v_cache", ref, ref_name);
  check_last_dim_contiguous(k_cache, "k_cache");
  check_last_dim_contiguous(v_cache, "v_cache");
  TORCH_CHECK(v_cache.size(0) == k_cache.size(0) && v_cache.size(1) == k_cache.size(1) &&
                  v_cache.size(2) == k_cache.size(2),
              "v_cache must match k_cache ", shape_of(k_cache), " in all but the last dim, got ",
              shape_of(v_cache));
  check_int32_vector(cache_seqlens, "cache_seqlens", batch, ref);
  DecodeDims dims{};
  dims.batch = batch;
  dims.paged = paged;
  dims.cache_heads = k_cache.size(2);
  dims.head_dim = k_cache.size(3);
  dims.head_dim_v = v_cache.size(3);
  dims.block_size = k_cache.size(1);
  if (paged) {
    TORCH_CHECK(block_table->dim() == 2 && block_table->size(0) == batch,
                "block_table must be [B, max_blocks] with B = ", batch, ", got shape ",
                shape_of(*block_table));
    TORCH_CHECK(block_table->scalar_type() == at::kInt, "block_table must be int32, got ",
                dtype_name(block_table->scalar_type()));
    check_same_device(*block_table, "block_table", ref, ref_name);
    dims.capacity = block_table->size(1) * dims.block_size;
  } else {
    TORCH_CHECK(k_cache.size(0) == batch, "k_cache must be [B, T_max, H', d] with B = ", batch,
                " (or pass block_table for a paged cache), got shape ", shape_of(k_cache));
    dims.capacity = dims.block_size;
  }
  return dims;
}

}  // namespace

DecodeDims check_vhead_decode(const at::Tensor& q, const at::Tensor& k_cache,
                              const at::Tensor& v_cache, const at::Tensor& cache_seqlens,
                              const std::optional<at::Tensor>& w_k,
                              const std::optional<at::Tensor>& w_v,
                              const std::optional<at::Tensor>& block_table, int64_t window_left) {
  check_rank(q, "q", 4, "[B, S_q, H, d]");
  check_compute_dtype(q, "q");
  check_last_dim_contiguous(q, "q");
  DecodeDims dims = check_cache(k_cache, v_cache, cache_seqlens, block_table, q.size(0), q, "q");
  dims.seqlen_q = q.size(1);
  dims.heads = q.size(2);
  TORCH_CHECK(q.size(3) == dims.head_dim, "q must have the head dim of k_cache (", dims.head_dim,
              "), got shape ", shape_of(q));
  TORCH_CHECK(w_k.has_value() == w_v.has_value(),
              "w_k and w_v must be given together (virtual-head cache), got only ",
              w_k ? "w_k" : "w_v");
  dims.kv_heads = dims.cache_heads;
  if (w_k) {
    for (const auto* w : {&*w_k, &*w_v}) {
      const char* name = w == &*w_k ? "w_k" : "w_v";
      TORCH_CHECK(w->dim() == 2 && w->size(0) == dims.cache_heads,
                  name, " must be [H', H_kv] with H' = k_cache.size(2) = ", dims.cache_heads,
                  ", got shape ", shape_of(*w));
      TORCH_CHECK(w->scalar_type() == q.scalar_type() || w->scalar_type() == at::kFloat, name,
                  " must have the dtype of q (", dtype_name(q.scalar_type()), ") or float32, got ",
                  dtype_name(w->scalar_type()));
      check_same_device(*w, name, q, "q");
    }
    TORCH_CHECK(w_v->size(1) == w_k->size(1), "w_v must be [H', H_kv] like w_k ",
                shape_of(*w_k), ", got shape ", shape_of(*w_v));
    dims.kv_heads = w_k->size(1);
  }
  TORCH_CHECK(dims.kv_heads >= 1 && dims.heads % dims.kv_heads == 0, "H = q.size(2) = ",
              dims.heads, " must be a multiple of H_kv = ", dims.kv_heads, " (GQA)");
  TORCH_CHECK(window_left >= -1, "window_left must be >= -1 (-1 = unbounded), got ", window_left);
  return dims;
}

DecodeDims check_kv_cache_append(const at::Tensor& k_new, const at::Tensor& v_new,
                                 const at::Tensor& k_cache, const at::Tensor& v_cache,
                                 const at::Tensor& cache_seqlens,
                                 const std::optional<at::Tensor>& block_table,
                                 const std::optional<at::Tensor>& cos,
                                 const std::optional<at::Tensor>& sin,
                                 const std::optional<at::Tensor>& pos) {
  check_rank(k_new, "k_new", 4, "[B, S_new, H', d]");
  check_rank(v_new, "v_new", 4, "[B, S_new, H', d_v]");
  check_compute_dtype(k_new, "k_new");
  check_same_dtype(v_new, "v_new", k_new, "k_new");
  check_same_device(v_new, "v_new", k_new, "k_new");
  DecodeDims dims =
      check_cache(k_cache, v_cache, cache_seqlens, block_table, k_new.size(0), k_new, "k_new");
  dims.seqlen_q = k_new.size(1);
  const std::vector<int64_t> k_shape{dims.batch, k_new.size(1), dims.cache_heads, dims.head_dim};
  const std::vector<int64_t> v_shape{dims.batch, k_new.size(1), dims.cache_heads, dims.head_dim_v};
  TORCH_CHECK(k_new.sizes() == at::IntArrayRef(k_shape),
              "k_new must be [B, S_new, H', d] matching k_cache, expected ",
              at::IntArrayRef(k_shape), ", got shape ", shape_of(k_new));
  TORCH_CHECK(v_new.sizes() == at::IntArrayRef(v_shape),
              "v_new must be [B, S_new, H', d_v] matching v_cache, expected ",
              at::IntArrayRef(v_shape), ", got shape ", shape_of(v_new));
  check_rope_tables(cos, sin, dims.head_dim, k_new, "k_new");
  if (pos) {
    check_int32_vector(*pos, "pos", dims.batch, k_new);
    TORCH_CHECK(cos.has_value(), "pos only sets RoPE positions: pass cos and sin with it");
  }
  return dims;
}

void check_cache_ranges(const DecodeDims& dims, const at::Tensor& cache_seqlens,
                        const std::optional<at::Tensor>& block_table, int64_t num_blocks,
                        int64_t extra, const std::optional<at::Tensor>& cos,
                        const std::optional<at::Tensor>& pos) {
  const auto seqlens = cache_seqlens.to(at::kCPU).contiguous();
  const int32_t* lens = seqlens.data_ptr<int32_t>();
  at::Tensor table = block_table ? block_table->to(at::kCPU).contiguous() : at::Tensor();
  at::Tensor positions = pos ? pos->to(at::kCPU).contiguous() : seqlens;
  const int32_t* starts = positions.data_ptr<int32_t>();
  for (int64_t b = 0; b < dims.batch; ++b) {
    const int64_t rows = int64_t(lens[b]) + extra;
    TORCH_CHECK(lens[b] >= 0, "cache_seqlens[", b, "] must be >= 0, got ", lens[b]);
    TORCH_CHECK(rows <= dims.capacity, "cache_seqlens[", b, "] = ", lens[b],
                extra ? " plus the new rows " : "", extra ? std::to_string(extra) : "",
                " exceeds the cache capacity of ", dims.capacity, " rows");
    if (block_table) {
      const int32_t* row = table.data_ptr<int32_t>() + b * table.size(1);
      for (int64_t i = 0; i * dims.block_size < rows; ++i) {
        TORCH_CHECK(row[i] >= 0 && row[i] < num_blocks, "block_table[", b, ", ", i, "] = ", row[i],
                    " is out of range: the cache has ", num_blocks, " blocks");
      }
    }
    if (cos && extra > 0) {
      TORCH_CHECK(starts[b] >= 0, "pos[", b, "] must be >= 0, got ", starts[b]);
      TORCH_CHECK(int64_t(starts[b]) + extra <= cos->size(0), "cos/sin have ", cos->size(0),
                  " positions but sequence ", b, " needs positions up to ",
                  int64_t(starts[b]) + extra - 1);
    }
  }
}

}  // namespace headmix
