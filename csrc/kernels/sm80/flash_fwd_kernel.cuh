#pragma once
// Portable flash-attention forward (FlashAttention-2's algorithm on mma.sync; sm_80 and
// later).
//
// One CTA of 4 warps computes a 128-row query tile of one (batch, head); each warp owns 32
// rows (two 16-row MMA slabs), so a row's softmax state lives in the registers of one quad.
// Key/value tiles of 64 rows stream through a 2-stage cp.async pipeline: tile n+1 is in
// flight while S = Q K^T (Q and K through ldmatrix), the mask, the online softmax and
// O += P V (P reused from the accumulator registers as the A operand, V^T through
// ldmatrix.trans) run on tile n. The loop visits only the key tiles the band of this query
// tile touches, so windowed attention costs O(S_q * window); only tiles crossing the band edge
// or the S_k tail pay for the mask. Rows past S_q and keys past S_k are zero-filled, never read.
// The epilogue normalises O, stages it through the (now free) Q buffer for 16-byte stores,
// and writes lse (natural log; -inf and O = 0 for rows without keys).
#include "common/attn_band.cuh"
#include "common/online_softmax.cuh"
#include "params.h"
#include "sm80/flash_config.cuh"
#include "sm80/flash_mma.cuh"

namespace headmix::kernels::sm80 {

// 4 warps of 32 rows at d = 64; at d = 128 the 32-row output accumulator alone would take
// 128 registers a thread and spill, so 8 warps of 16 rows share the same 128-row tile.
template <typename Element_, int kHeadDim_>
struct FlashFwdConfig : FlashConfig<Element_, kHeadDim_, kHeadDim_ / 16, 1> {
  using Base = FlashConfig<Element_, kHeadDim_, kHeadDim_ / 16, 1>;
  static constexpr int kBlockM = 128;
  static constexpr int kBlockN = 64;
  static constexpr int kStages = 2;
  using SmemQ = typename Base::template SmemTile<kBlockM, kHeadDim_>;              // (BLK_M,d)
  using SmemKV = typename Base::template SmemStages<kBlockN, kHeadDim_, kStages>;   // (BLK_N,d,STAGE)
  using SmemVt = typename Base::template SmemStagesT<kBlockN, kHeadDim_, kStages>;  // (d,BLK_N,STAGE)
  struct SharedStorage {
    cute::array_aligned<Element_, cute::cosize_v<SmemQ>> q;  // Q, then O in the epilogue
    cute::array_aligned<Element_, cute::cosize_v<SmemKV>> k;
    cute::array_aligned<Element_, cute::cosize_v<SmemKV>> v;
  };
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads) flash_fwd_kernel(const __grid_constant__ FlashAttnFwdParams p) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  extern __shared__ __align__(128) char smem_buf[];
  auto& smem = *reinterpret_cast<typename Cfg::SharedStorage*>(smem_buf);
  const FlashAttnParams& a = p.attn;
  const int tid = threadIdx.x;

  // Longest (causal) query tiles first, so the short ones fill the tail of the grid.
  const int m_block = gridDim.x - 1 - blockIdx.x;
  const int head = blockIdx.y, batch = blockIdx.z;
  const int kv_head = head / int(a.heads / a.kv_heads);
  const AttnBand band(a);
  const int m_begin = m_block * kBlockM;
  const int m_rows = min(kBlockM, band.seqlen_q - m_begin);
  const int2 keys = band.keys_of_rows(m_begin, m_begin + m_rows);
  const int n_block_begin = keys.x / kBlockN;
  const int n_block_end = keys.y > keys.x ? (keys.y + kBlockN - 1) / kBlockN : n_block_begin;

  const auto* q = static_cast<const Element*>(a.q) + batch * a.q_batch_stride + head * a.q_head_stride;
  const auto* k = static_cast<const Element*>(a.k) + batch * a.k_batch_stride + kv_head * a.k_head_stride;
  const auto* v = static_cast<const Element*>(a.v) + batch * a.v_batch_stride + kv_head * a.v_head_stride;
  auto* out = static_cast<Element*>(p.out) + (batch * a.seqlen_q * a.heads + head) * kHeadDim;
  Tensor mQ = make_tensor(make_gmem_ptr(q), make_shape(a.seqlen_q, Int<kHeadDim>{}),
                          make_stride(a.q_row_stride, _1{}));                            // (S_q,d)
  Tensor mK = make_tensor(make_gmem_ptr(k), make_shape(a.seqlen_k, Int<kHeadDim>{}),
                          make_stride(a.k_row_stride, _1{}));                            // (S_k,d)
  Tensor mV = make_tensor(make_gmem_ptr(v), make_shape(a.seqlen_k, Int<kHeadDim>{}),
                          make_stride(a.v_row_stride, _1{}));                            // (S_k,d)
  Tensor mO = make_tensor(make_gmem_ptr(out), make_shape(a.seqlen_q, Int<kHeadDim>{}),
                          make_stride(a.heads * kHeadDim, _1{}));                        // (S_q,d)
  auto tile_q = Shape<Int<kBlockM>, Int<kHeadDim>>{};
  auto tile_kv = Shape<Int<kBlockN>, Int<kHeadDim>>{};
  Tensor gQ = local_tile(mQ, tile_q, make_coord(m_block, 0));                            // (BLK_M,d)
  Tensor gO = local_tile(mO, tile_q, make_coord(m_block, 0));                            // (BLK_M,d)
  Tensor gK = local_tile(mK, tile_kv, make_coord(_, 0));                                 // (BLK_N,d,n)
  Tensor gV = local_tile(mV, tile_kv, make_coord(_, 0));                                 // (BLK_N,d,n)
  Tensor cQ = make_identity_tensor(tile_q);                                              // (BLK_M,d)
  Tensor cKV = make_identity_tensor(tile_kv);                                            // (BLK_N,d)

  Tensor sQ = make_tensor(make_smem_ptr(smem.q.data()), typename Cfg::SmemQ{});          // (BLK_M,d)
  Tensor sK = make_tensor(make_smem_ptr(smem.k.data()), typename Cfg::SmemKV{});         // (BLK_N,d,STAGE)
  Tensor sV = make_tensor(make_smem_ptr(smem.v.data()), typename Cfg::SmemKV{});         // (BLK_N,d,STAGE)
  Tensor sVt = make_tensor(make_smem_ptr(smem.v.data()), typename Cfg::SmemVt{});        // (d,BLK_N,STAGE)

  // Global -> shared.
  typename Cfg::GmemLoad gmem_load;
  auto load_thr = gmem_load.get_thread_slice(tid);
  Tensor tQgQ = load_thr.partition_S(gQ);                                                // (CPY,CPY_M,CPY_K)
  Tensor tQsQ = load_thr.partition_D(sQ);                                                // (CPY,CPY_M,CPY_K)
  Tensor tQcQ = load_thr.partition_S(cQ);                                                // (CPY,CPY_M,CPY_K)
  Tensor tKgK = load_thr.partition_S(gK);                                                // (CPY,CPY_N,CPY_K,n)
  Tensor tKsK = load_thr.partition_D(sK);                                                // (CPY,CPY_N,CPY_K,STAGE)
  Tensor tVgV = load_thr.partition_S(gV);                                                // (CPY,CPY_N,CPY_K,n)
  Tensor tVsV = load_thr.partition_D(sV);                                                // (CPY,CPY_N,CPY_K,STAGE)
  Tensor tKVcKV = load_thr.partition_S(cKV);                                             // (CPY,CPY_N,CPY_K)
  auto load_kv = [&](int n_block, int stage) {
    const int valid_rows = band.seqlen_k - n_block * kBlockN;
    copy_rows_zfill(gmem_load, tKgK(_, _, _, n_block), tKsK(_, _, _, stage), tKVcKV, valid_rows);
    copy_rows_zfill(gmem_load, tVgV(_, _, _, n_block), tVsV(_, _, _, stage), tKVcKV, valid_rows);
  };

  // Shared -> registers and the MMAs.
  typename Cfg::TiledMma mma;
  auto thr_mma = mma.get_thread_slice(tid);
  Tensor tSrQ = thr_mma.partition_fragment_A(sQ);                                        // (MMA,MMA_M,MMA_K)
  Tensor tSrK = thr_mma.partition_fragment_B(sK(_, _, 0));                               // (MMA,MMA_N,MMA_K)
  Tensor tOrVt = thr_mma.partition_fragment_B(sVt(_, _, 0));                             // (MMA,MMA_K,MMA_N)
  auto ldsm_q = make_tiled_copy_A(typename Cfg::LdsmAtom{}, mma);
  auto ldsm_k = make_tiled_copy_B(typename Cfg::LdsmAtom{}, mma);
  auto ldsm_vt = make_tiled_copy_B(typename Cfg::LdsmTransAtom{}, mma);
  Tensor tSsQ = ldsm_q.get_thread_slice(tid).partition_S(sQ);                            // (CPY,CPY_M,CPY_K)
  Tensor tSsK = ldsm_k.get_thread_slice(tid).partition_S(sK);                            // (CPY,CPY_N,CPY_K,STAGE)
  Tensor tOsVt = ldsm_vt.get_thread_slice(tid).partition_S(sVt);                         // (CPY,CPY_K,CPY_N,STAGE)

  Tensor acc_o = partition_fragment_C(mma, tile_q);                                      // (MMA,MMA_M,MMA_K)
  Tensor acc_o_rc = make_tensor(acc_o.data(), acc_as_rows_cols(acc_o.layout()));         // (ROWS,d)
  Tensor tScS = thr_mma.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
  Tensor tScS_rc = make_tensor(tScS.data(), acc_as_rows_cols(tScS.layout()));            // (ROWS,COLS)->(m,n)
  constexpr int kRows = decltype(size<0>(acc_o_rc))::value;
  OnlineSoftmax<kRows> softmax(a.scale);
  clear(acc_o);

  copy_rows_zfill(gmem_load, tQgQ, tQsQ, tQcQ, m_rows);
  if (n_block_begin < n_block_end) load_kv(n_block_begin, 0);
  cp_async_fence();

  for (int n_block = n_block_begin, stage = 0; n_block < n_block_end; ++n_block, stage ^= 1) {
    // Prefetch the next tile into the other stage; an empty group keeps wait<1> uniform.
    if (n_block + 1 < n_block_end) load_kv(n_block + 1, stage ^ 1);
    cp_async_fence();
    cp_async_wait<1>();
    __syncthreads();

    Tensor acc_s = partition_fragment_C(mma, Shape<Int<kBlockM>, Int<kBlockN>>{});      // (MMA,MMA_M,MMA_N)
    clear(acc_s);
    gemm_ss(mma, acc_s, tSrQ, tSrK, tSsQ, tSsK(_, _, _, stage), ldsm_q, ldsm_k);
    Tensor scores = make_tensor(acc_s.data(), acc_as_rows_cols(acc_s.layout()));       // (ROWS,COLS)
    const int n_begin = n_block * kBlockN;
    if (band.tile_needs_mask(m_begin, m_begin + m_rows, n_begin, n_begin + kBlockN)) {
      mask_to_band(scores, tScS_rc, band, m_begin, n_begin);
    }
    softmax.update(scores, acc_o_rc);

    Tensor rP = convert_fragment<Element>(acc_s);                                       // (MMA,MMA_M,MMA_N)
    Tensor tOrP = make_tensor(rP.data(), acc_as_operand_a(rP.layout()));                 // (MMA,MMA_M,MMA_K)
    gemm_rs(mma, acc_o, tOrP, tOrVt, tOsVt(_, _, _, stage), ldsm_vt);
    // Every warp is done with `stage` before the next iteration refills it.
    __syncthreads();
  }

  float lse[kRows];
  softmax.finish(acc_o_rc, lse);
  Tensor rO = convert_fragment<Element>(acc_o);                                         // (MMA,MMA_M,MMA_K)
  auto sts_o = make_tiled_copy_C(typename Cfg::StsAtom{}, mma);
  auto sts_thr = sts_o.get_thread_slice(tid);
  Tensor tOrO = sts_thr.retile_S(rO);                                                    // (CPY,CPY_M,CPY_K)
  Tensor tOsO = sts_thr.partition_D(sQ);                                                 // (CPY,CPY_M,CPY_K)
  cp_async_wait<0>();  // Q is still in flight when the tile has no keys
  __syncthreads();     // and every warp is done reading it
  copy(sts_o, tOrO, tOsO);
  __syncthreads();

  typename Cfg::GmemStore gmem_store;
  auto store_thr = gmem_store.get_thread_slice(tid);
  copy_rows(gmem_store, store_thr.partition_S(sQ), store_thr.partition_D(gO), store_thr.partition_D(cQ),
            m_rows);

  // Column 0 of each quad holds its rows' lse.
  if (get<1>(tScS_rc(0, 0)) == 0) {
    float* lse_row = p.lse + (int64_t(batch) * a.heads + head) * a.seqlen_q + m_begin;
    CUTE_UNROLL
    for (int r = 0; r < kRows; ++r) {
      const int i = get<0>(tScS_rc(r, 0));
      if (i < m_rows) lse_row[i] = lse[r];
    }
  }
}

}  // namespace headmix::kernels::sm80
