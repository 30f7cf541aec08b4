#pragma once
// Portable flash-attention backward (FlashAttention-2's algorithm on mma.sync; sm_80 and
// later).
//
// Both kernels use 8 warps as 4 (M) x 2 (N) on 64 x 64 tiles and recompute, per tile,
// S = Q K^T and dP = dO V^T, then P = exp(S * scale - lse) and dS = P (dP - D) in registers
// (D = rowsum(dO * O) - dlse comes from the row-dot kernel). P and dS go through shared
// memory: the products that consume them reduce over their rows (dV = P^T dO, dK = dS^T Q)
// or need whole rows per warp (dQ = dS K), which register fragments split across warps.
//
// dK/dV: one CTA per (64-key tile, kv head, batch) keeps dK and dV in registers and walks the
// query tiles of every query head of its GQA group (the band gives the query range, so a
// window keeps the cost O(S * window)); the group sum stays in registers, so dK and dV are
// written once, deterministically. Q/dO tiles stream through a 2-stage cp.async pipeline
// while K and V stay resident. With a dq_accum workspace, the same CTA also adds dS K into
// it with fp32 atomics (fast, run-to-run order dependent).
// dQ (deterministic mode, dq_accum = null): one CTA per (64-query tile, head, batch) walks
// the key tiles of its band like the forward, with K/V streaming and dQ in registers.
#include "common/attn_band.cuh"
#include "common/online_softmax.cuh"
#include "params.h"
#include "sm80/flash_config.cuh"
#include "sm80/flash_mma.cuh"

namespace headmix::kernels::sm80 {

// 8 warps (4 along M x 2 along N). The kernels declare one CTA per SM as their design point:
// without it ptxas caps the dq kernel at 128 registers and spills.
template <typename Element_, int kHeadDim_>
struct FlashBwdConfig : FlashConfig<Element_, kHeadDim_, 4, 2> {
  using Base = FlashConfig<Element_, kHeadDim_, 4, 2>;
  static constexpr int kBlockM = 64;  // query rows of a tile
  static constexpr int kBlockN = 64;  // keys of a tile
  static constexpr int kStages = 2;
  using SmemStream = typename Base::template SmemStages<64, kHeadDim_, kStages>;    // (64,d,STAGE)
  using SmemStreamT = typename Base::template SmemStagesT<64, kHeadDim_, kStages>;  // (d,64,STAGE)
  using SmemFixed = typename Base::template SmemTile<64, kHeadDim_>;                // (64,d)
  using SmemFixedT = typename Base::template SmemTileT<64, kHeadDim_>;              // (d,64)
  using SmemScores = typename Base::template SmemTile<kBlockM, kBlockN>;            // (BLK_M,BLK_N)
  using SmemScoresT = typename Base::template SmemTileT<kBlockM, kBlockN>;          // (BLK_N,BLK_M)
  static_assert(kBlockM == 64 && kBlockN == 64, "the stream/fixed tiles hold 64 rows");

  struct DkDvStorage {
    cute::array_aligned<Element_, cute::cosize_v<SmemStream>> q, dout;
    cute::array_aligned<Element_, cute::cosize_v<SmemFixed>> k, v;  // then dK, dV in the epilogue
    cute::array_aligned<Element_, cute::cosize_v<SmemScores>> p, ds;
  };
  struct DqStorage {
    cute::array_aligned<Element_, cute::cosize_v<SmemStream>> k, v;
    cute::array_aligned<Element_, cute::cosize_v<SmemFixed>> q, dout;  // then dQ in the epilogue
    cute::array_aligned<Element_, cute::cosize_v<SmemScores>> ds;
  };
};

// Per-row statistics of the S rows a thread holds: lse in exp2 units (+inf for rows without
// keys or past S_q, so their P is exactly 0) and D.
template <int kRows>
struct RowStats {
  float lse_log2[kRows];
  float row_dot[kRows];

  template <class Coords>
  __device__ RowStats(const FlashAttnBwdParams& p, int batch, int head, int m_begin, const Coords& rows) {
    const int64_t base = (int64_t(batch) * p.attn.heads + head) * p.attn.seqlen_q;
    CUTE_UNROLL
    for (int r = 0; r < kRows; ++r) {
      const int i = m_begin + get<0>(rows(r, 0));
      const bool valid = i < p.attn.seqlen_q;
      const float lse = valid ? p.lse[base + i] : -INFINITY;
      lse_log2[r] = lse == -INFINITY ? INFINITY : lse * float(M_LOG2E);
      row_dot[r] = valid ? p.row_dot[base + i] : 0.f;
    }
  }
};

// scores (raw q.k, masked to -inf) -> P; dp -> dS = P (dP - D). Both (ROWS,COLS) views.
template <int kRows, class Scores, class Dp>
__device__ __forceinline__ void softmax_backward(Scores& scores, Dp& dp, const RowStats<kRows>& stats,
                                                 float scale_log2) {
  CUTE_UNROLL
  for (int r = 0; r < kRows; ++r) {
    CUTE_UNROLL
    for (int c = 0; c < size<1>(scores); ++c) {
      const float prob = exp2f(fmaf(scores(r, c), scale_log2, -stats.lse_log2[r]));
      scores(r, c) = prob;
      dp(r, c) = prob * (dp(r, c) - stats.row_dot[r]);
    }
  }
}

// Writes a scaled fp32 accumulator tile through shared memory (`staging`, free by now) to
// the global rows below `valid_rows`, with 16-byte stores.
template <class Cfg, class Acc, class Staging, class Gmem, class Coords>
__device__ __forceinline__ void store_tile(const typename Cfg::TiledMma& mma, Acc& acc, float scale,
                                           Staging& staging, Gmem&& gmem, const Coords& coords, int valid_rows) {
  const int tid = threadIdx.x;
  CUTE_UNROLL
  for (int i = 0; i < size(acc); ++i) acc(i) *= scale;
  Tensor rOut = convert_fragment<typename Cfg::Element>(acc);
  auto sts = make_tiled_copy_C(typename Cfg::StsAtom{}, mma);
  auto sts_thr = sts.get_thread_slice(tid);
  copy(sts, sts_thr.retile_S(rOut), sts_thr.partition_D(staging));
  __syncthreads();
  typename Cfg::GmemStore gmem_store;
  auto store_thr = gmem_store.get_thread_slice(tid);
  copy_rows(gmem_store, store_thr.partition_S(staging), store_thr.partition_D(gmem), store_thr.partition_D(coords),
            valid_rows);
}

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    flash_bwd_dkdv_kernel(const __grid_constant__ FlashAttnBwdParams p) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  extern __shared__ __align__(128) char smem_buf[];
  auto& smem = *reinterpret_cast<typename Cfg::DkDvStorage*>(smem_buf);
  const FlashAttnParams& a = p.attn;
  const int tid = threadIdx.x;

  const int n_block = blockIdx.x, kv_head = blockIdx.y, batch = blockIdx.z;
  const int group = int(a.heads / a.kv_heads), head0 = kv_head * group;
  const AttnBand band(a);
  const int n_begin = n_block * kBlockN;
  const int n_rows = min(kBlockN, band.seqlen_k - n_begin);
  const int2 queries = band.queries_of_keys(n_begin, n_begin + n_rows);
  const int m_block_begin = queries.x / kBlockM;
  const int m_blocks = queries.y > queries.x ? (queries.y + kBlockM - 1) / kBlockM - m_block_begin : 0;
  const int steps = group * m_blocks;  // (query head of the group, query tile) pairs

  const auto* q = static_cast<const Element*>(a.q) + batch * a.q_batch_stride + head0 * a.q_head_stride;
  const auto* dout = static_cast<const Element*>(p.dout) + batch * p.dout_batch_stride + head0 * p.dout_head_stride;
  const auto* k = static_cast<const Element*>(a.k) + batch * a.k_batch_stride + kv_head * a.k_head_stride;
  const auto* v = static_cast<const Element*>(a.v) + batch * a.v_batch_stride + kv_head * a.v_head_stride;
  const int64_t kv_offset = (batch * a.seqlen_k * a.kv_heads + kv_head) * kHeadDim;
  const int64_t kv_row_stride = a.kv_heads * kHeadDim;  // dk, dv are contiguous
  Tensor mQ = make_tensor(make_gmem_ptr(q), make_shape(a.seqlen_q, Int<kHeadDim>{}, group),
                          make_stride(a.q_row_stride, _1{}, a.q_head_stride));                  // (S_q,d,G)
  Tensor mdO = make_tensor(make_gmem_ptr(dout), make_shape(a.seqlen_q, Int<kHeadDim>{}, group),
                           make_stride(p.dout_row_stride, _1{}, p.dout_head_stride));           // (S_q,d,G)
  Tensor mK = make_tensor(make_gmem_ptr(k), make_shape(a.seqlen_k, Int<kHeadDim>{}), make_stride(a.k_row_stride, _1{}));
  Tensor mV = make_tensor(make_gmem_ptr(v), make_shape(a.seqlen_k, Int<kHeadDim>{}), make_stride(a.v_row_stride, _1{}));
  Tensor mdK = make_tensor(make_gmem_ptr(static_cast<Element*>(p.dk) + kv_offset),
                           make_shape(a.seqlen_k, Int<kHeadDim>{}), make_stride(kv_row_stride, _1{}));  // (S_k,d)
  Tensor mdV = make_tensor(make_gmem_ptr(static_cast<Element*>(p.dv) + kv_offset),
                           make_shape(a.seqlen_k, Int<kHeadDim>{}), make_stride(kv_row_stride, _1{}));  // (S_k,d)
  auto tile_m = Shape<Int<kBlockM>, Int<kHeadDim>>{};
  auto tile_n = Shape<Int<kBlockN>, Int<kHeadDim>>{};
  Tensor gQ = local_tile(mQ, tile_m, make_coord(_, 0));                                         // (BLK_M,d,m,G)
  Tensor gdO = local_tile(mdO, tile_m, make_coord(_, 0));                                       // (BLK_M,d,m,G)
  Tensor gK = local_tile(mK, tile_n, make_coord(n_block, 0));                                   // (BLK_N,d)
  Tensor gV = local_tile(mV, tile_n, make_coord(n_block, 0));                                   // (BLK_N,d)
  Tensor gdK = local_tile(mdK, tile_n, make_coord(n_block, 0));                                 // (BLK_N,d)
  Tensor gdV = local_tile(mdV, tile_n, make_coord(n_block, 0));                                 // (BLK_N,d)
  Tensor cQ = make_identity_tensor(tile_m);                                                     // (BLK_M,d)
  Tensor cK = make_identity_tensor(tile_n);                                                     // (BLK_N,d)

  Tensor sQ = make_tensor(make_smem_ptr(smem.q.data()), typename Cfg::SmemStream{});            // (BLK_M,d,STAGE)
  Tensor sQt = make_tensor(make_smem_ptr(smem.q.data()), typename Cfg::SmemStreamT{});          // (d,BLK_M,STAGE)
  Tensor sdO = make_tensor(make_smem_ptr(smem.dout.data()), typename Cfg::SmemStream{});        // (BLK_M,d,STAGE)
  Tensor sdOt = make_tensor(make_smem_ptr(smem.dout.data()), typename Cfg::SmemStreamT{});      // (d,BLK_M,STAGE)
  Tensor sK = make_tensor(make_smem_ptr(smem.k.data()), typename Cfg::SmemFixed{});             // (BLK_N,d)
  Tensor sKt = make_tensor(make_smem_ptr(smem.k.data()), typename Cfg::SmemFixedT{});           // (d,BLK_N)
  Tensor sV = make_tensor(make_smem_ptr(smem.v.data()), typename Cfg::SmemFixed{});             // (BLK_N,d)
  Tensor sP = make_tensor(make_smem_ptr(smem.p.data()), typename Cfg::SmemScores{});            // (BLK_M,BLK_N)
  Tensor sPt = make_tensor(make_smem_ptr(smem.p.data()), typename Cfg::SmemScoresT{});          // (BLK_N,BLK_M)
  Tensor sdS = make_tensor(make_smem_ptr(smem.ds.data()), typename Cfg::SmemScores{});          // (BLK_M,BLK_N)
  Tensor sdSt = make_tensor(make_smem_ptr(smem.ds.data()), typename Cfg::SmemScoresT{});        // (BLK_N,BLK_M)

  // Global -> shared.
  typename Cfg::GmemLoad gmem_load;
  auto load_thr = gmem_load.get_thread_slice(tid);
  Tensor tQgQ = load_thr.partition_S(gQ);                                                       // (CPY,CPY_M,CPY_K,m,G)
  Tensor tQsQ = load_thr.partition_D(sQ);                                                     // (CPY,CPY_M,CPY_K,STAGE)
  Tensor tdOgdO = load_thr.partition_S(gdO);                                                    // (CPY,CPY_M,CPY_K,m,G)
  Tensor tdOsdO = load_thr.partition_D(sdO);                                                  // (CPY,CPY_M,CPY_K,STAGE)
  Tensor tQcQ = load_thr.partition_S(cQ);                                                       // (CPY,CPY_M,CPY_K)
  Tensor tKcK = load_thr.partition_S(cK);                                                       // (CPY,CPY_N,CPY_K)
  auto load_q_dout = [&](int step, int stage) {
    const int m_block = m_block_begin + step % m_blocks, member = step / m_blocks;
    const int valid_rows = band.seqlen_q - m_block * kBlockM;
    copy_rows_zfill(gmem_load, tQgQ(_, _, _, m_block, member), tQsQ(_, _, _, stage), tQcQ, valid_rows);
    copy_rows_zfill(gmem_load, tdOgdO(_, _, _, m_block, member), tdOsdO(_, _, _, stage), tQcQ, valid_rows);
  };

  // Shared -> registers: plain ldmatrix for row-major operands, .trans for transposed views.
  typename Cfg::TiledMma mma;
  auto thr_mma = mma.get_thread_slice(tid);
  auto ldsm_a = make_tiled_copy_A(typename Cfg::LdsmAtom{}, mma);
  auto ldsm_at = make_tiled_copy_A(typename Cfg::LdsmTransAtom{}, mma);
  auto ldsm_b = make_tiled_copy_B(typename Cfg::LdsmAtom{}, mma);
  auto ldsm_bt = make_tiled_copy_B(typename Cfg::LdsmTransAtom{}, mma);
  auto ldsm_a_thr = ldsm_a.get_thread_slice(tid);
  auto ldsm_at_thr = ldsm_at.get_thread_slice(tid);
  auto ldsm_b_thr = ldsm_b.get_thread_slice(tid);
  auto ldsm_bt_thr = ldsm_bt.get_thread_slice(tid);
  // S = Q K^T, dP = dO V^T: (BLK_M,BLK_N) reducing over d.
  Tensor tSrQ = thr_mma.partition_fragment_A(sQ(_, _, 0));                                      // (MMA,MMA_M,MMA_K)
  Tensor tSrK = thr_mma.partition_fragment_B(sK);                                               // (MMA,MMA_N,MMA_K)
  Tensor tdPrdO = thr_mma.partition_fragment_A(sdO(_, _, 0));                                   // (MMA,MMA_M,MMA_K)
  Tensor tdPrV = thr_mma.partition_fragment_B(sV);                                              // (MMA,MMA_N,MMA_K)
  Tensor tSsQ = ldsm_a_thr.partition_S(sQ);                                                   // (CPY,CPY_M,CPY_K,STAGE)
  Tensor tSsK = ldsm_b_thr.partition_S(sK);                                                     // (CPY,CPY_N,CPY_K)
  Tensor tdPsdO = ldsm_a_thr.partition_S(sdO);                                                // (CPY,CPY_M,CPY_K,STAGE)
  Tensor tdPsV = ldsm_b_thr.partition_S(sV);                                                    // (CPY,CPY_N,CPY_K)
  // dV += P^T dO, dK += dS^T Q: (BLK_N,d) reducing over the query rows.
  Tensor tdVrPt = thr_mma.partition_fragment_A(sPt);                                            // (MMA,MMA_N,MMA_M)
  Tensor tdVrdOt = thr_mma.partition_fragment_B(sdOt(_, _, 0));                                 // (MMA,MMA_D,MMA_M)
  Tensor tdKrdSt = thr_mma.partition_fragment_A(sdSt);                                          // (MMA,MMA_N,MMA_M)
  Tensor tdKrQt = thr_mma.partition_fragment_B(sQt(_, _, 0));                                   // (MMA,MMA_D,MMA_M)
  Tensor tdVsPt = ldsm_at_thr.partition_S(sPt);                                                 // (CPY,CPY_N,CPY_M)
  Tensor tdVsdOt = ldsm_bt_thr.partition_S(sdOt);                                             // (CPY,CPY_D,CPY_M,STAGE)
  Tensor tdKsdSt = ldsm_at_thr.partition_S(sdSt);                                               // (CPY,CPY_N,CPY_M)
  Tensor tdKsQt = ldsm_bt_thr.partition_S(sQt);                                               // (CPY,CPY_D,CPY_M,STAGE)
  // dQ += dS K: (BLK_M,d) reducing over the keys.
  Tensor tdQrdS = thr_mma.partition_fragment_A(sdS);                                            // (MMA,MMA_M,MMA_N)
  Tensor tdQrKt = thr_mma.partition_fragment_B(sKt);                                            // (MMA,MMA_D,MMA_N)
  Tensor tdQsdS = ldsm_a_thr.partition_S(sdS);                                                  // (CPY,CPY_M,CPY_N)
  Tensor tdQsKt = ldsm_bt_thr.partition_S(sKt);                                                 // (CPY,CPY_D,CPY_N)
  Tensor tdQcdQ = thr_mma.partition_C(cQ);                                                      // (MMA,MMA_M,MMA_D)

  // Registers -> shared for P and dS.
  auto sts = make_tiled_copy_C(typename Cfg::StsAtom{}, mma);
  auto sts_thr = sts.get_thread_slice(tid);
  Tensor tPsP = sts_thr.partition_D(sP);                                                        // (CPY,CPY_M,CPY_N)
  Tensor tdSsdS = sts_thr.partition_D(sdS);                                                     // (CPY,CPY_M,CPY_N)

  Tensor acc_dk = partition_fragment_C(mma, tile_n);                                            // (MMA,MMA_N,MMA_D)
  Tensor acc_dv = partition_fragment_C(mma, tile_n);                                            // (MMA,MMA_N,MMA_D)
  clear(acc_dk);
  clear(acc_dv);
  Tensor tScS = thr_mma.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
  Tensor tScS_rc = make_tensor(tScS.data(), acc_as_rows_cols(tScS.layout()));                  // (ROWS,COLS)->(m,n)
  constexpr int kRows = decltype(size<0>(tScS_rc))::value;
  const float scale_log2 = a.scale * float(M_LOG2E);

  copy_rows_zfill(gmem_load, load_thr.partition_S(gK), load_thr.partition_D(sK), tKcK, n_rows);
  copy_rows_zfill(gmem_load, load_thr.partition_S(gV), load_thr.partition_D(sV), tKcK, n_rows);
  if (steps > 0) load_q_dout(0, 0);
  cp_async_fence();

  for (int step = 0, stage = 0; step < steps; ++step, stage ^= 1) {
    if (step + 1 < steps) load_q_dout(step + 1, stage ^ 1);
    cp_async_fence();
    cp_async_wait<1>();
    __syncthreads();

    const int m_block = m_block_begin + step % m_blocks, member = step / m_blocks;
    const int m_begin = m_block * kBlockM;
    const RowStats<kRows> stats(p, batch, head0 + member, m_begin, tScS_rc);
    Tensor acc_s = partition_fragment_C(mma, Shape<Int<kBlockM>, Int<kBlockN>>{});            // (MMA,MMA_M,MMA_N)
    Tensor acc_dp = partition_fragment_C(mma, Shape<Int<kBlockM>, Int<kBlockN>>{});           // (MMA,MMA_M,MMA_N)
    clear(acc_s);
    clear(acc_dp);
    gemm_ss(mma, acc_s, tSrQ, tSrK, tSsQ(_, _, _, stage), tSsK, ldsm_a, ldsm_b);
    gemm_ss(mma, acc_dp, tdPrdO, tdPrV, tdPsdO(_, _, _, stage), tdPsV, ldsm_a, ldsm_b);
    Tensor scores = make_tensor(acc_s.data(), acc_as_rows_cols(acc_s.layout()));               // (ROWS,COLS)
    Tensor dp = make_tensor(acc_dp.data(), acc_as_rows_cols(acc_dp.layout()));                 // (ROWS,COLS)
    if (band.tile_needs_mask(m_begin, min(m_begin + kBlockM, band.seqlen_q), n_begin, n_begin + kBlockN)) {
      mask_to_band(scores, tScS_rc, band, m_begin, n_begin);
    }
    softmax_backward(scores, dp, stats, scale_log2);
    copy(sts, sts_thr.retile_S(convert_fragment<Element>(acc_s)), tPsP);
    copy(sts, sts_thr.retile_S(convert_fragment<Element>(acc_dp)), tdSsdS);
    __syncthreads();

    gemm_ss(mma, acc_dv, tdVrPt, tdVrdOt, tdVsPt, tdVsdOt(_, _, _, stage), ldsm_at, ldsm_bt);
    gemm_ss(mma, acc_dk, tdKrdSt, tdKrQt, tdKsdSt, tdKsQt(_, _, _, stage), ldsm_at, ldsm_bt);
    if (p.dq_accum != nullptr) {
      Tensor acc_dq = partition_fragment_C(mma, tile_m);                                        // (MMA,MMA_M,MMA_D)
      clear(acc_dq);
      gemm_ss(mma, acc_dq, tdQrdS, tdQrKt, tdQsdS, tdQsKt, ldsm_a, ldsm_bt);
      float* dq_accum = p.dq_accum + ((batch * a.seqlen_q + m_begin) * a.heads + head0 + member) * kHeadDim;
      Tensor gdQacc = make_tensor(make_gmem_ptr(dq_accum), tile_m,
                                  make_stride(a.heads * kHeadDim, _1{}));                       // (BLK_M,d)
      Tensor tdQgdQ = thr_mma.partition_C(gdQacc);                                              // (MMA,MMA_M,MMA_D)
      const int valid_rows = band.seqlen_q - m_begin;
      CUTE_UNROLL
      for (int i = 0; i < size(acc_dq); ++i) {
        if (get<0>(tdQcdQ(i)) < valid_rows) atomicAdd(&tdQgdQ(i), acc_dq(i));
      }
    }
    // Every warp is done with P, dS and `stage` before the next iteration refills them.
    __syncthreads();
  }

  cp_async_wait<0>();  // K and V are still in flight when no query sees this tile
  __syncthreads();
  store_tile<Cfg>(mma, acc_dk, a.scale, sK, gdK, cK, n_rows);
  store_tile<Cfg>(mma, acc_dv, 1.f, sV, gdV, cK, n_rows);
}

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    flash_bwd_dq_kernel(const __grid_constant__ FlashAttnBwdParams p) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  extern __shared__ __align__(128) char smem_buf[];
  auto& smem = *reinterpret_cast<typename Cfg::DqStorage*>(smem_buf);
  const FlashAttnParams& a = p.attn;
  const int tid = threadIdx.x;

  const int m_block = gridDim.x - 1 - blockIdx.x;  // longest (causal) tiles first
  const int head = blockIdx.y, batch = blockIdx.z;
  const int kv_head = head / int(a.heads / a.kv_heads);
  const AttnBand band(a);
  const int m_begin = m_block * kBlockM;
  const int m_rows = min(kBlockM, band.seqlen_q - m_begin);
  const int2 keys = band.keys_of_rows(m_begin, m_begin + m_rows);
  const int n_block_begin = keys.x / kBlockN;
  const int n_block_end = keys.y > keys.x ? (keys.y + kBlockN - 1) / kBlockN : n_block_begin;

  const auto* q = static_cast<const Element*>(a.q) + batch * a.q_batch_stride + head * a.q_head_stride;
  const auto* dout = static_cast<const Element*>(p.dout) + batch * p.dout_batch_stride + head * p.dout_head_stride;
  const auto* k = static_cast<const Element*>(a.k) + batch * a.k_batch_stride + kv_head * a.k_head_stride;
  const auto* v = static_cast<const Element*>(a.v) + batch * a.v_batch_stride + kv_head * a.v_head_stride;
  auto* dq = static_cast<Element*>(p.dq) + (batch * a.seqlen_q * a.heads + head) * kHeadDim;
  Tensor mQ = make_tensor(make_gmem_ptr(q), make_shape(a.seqlen_q, Int<kHeadDim>{}), make_stride(a.q_row_stride, _1{}));
  Tensor mdO = make_tensor(make_gmem_ptr(dout), make_shape(a.seqlen_q, Int<kHeadDim>{}),
                           make_stride(p.dout_row_stride, _1{}));                               // (S_q,d)
  Tensor mdQ = make_tensor(make_gmem_ptr(dq), make_shape(a.seqlen_q, Int<kHeadDim>{}),
                           make_stride(a.heads * kHeadDim, _1{}));                              // (S_q,d)
  Tensor mK = make_tensor(make_gmem_ptr(k), make_shape(a.seqlen_k, Int<kHeadDim>{}), make_stride(a.k_row_stride, _1{}));
  Tensor mV = make_tensor(make_gmem_ptr(v), make_shape(a.seqlen_k, Int<kHeadDim>{}), make_stride(a.v_row_stride, _1{}));
  auto tile_m = Shape<Int<kBlockM>, Int<kHeadDim>>{};
  auto tile_n = Shape<Int<kBlockN>, Int<kHeadDim>>{};
  Tensor gQ = local_tile(mQ, tile_m, make_coord(m_block, 0));                                   // (BLK_M,d)
  Tensor gdO = local_tile(mdO, tile_m, make_coord(m_block, 0));                                 // (BLK_M,d)
  Tensor gdQ = local_tile(mdQ, tile_m, make_coord(m_block, 0));                                 // (BLK_M,d)
  Tensor gK = local_tile(mK, tile_n, make_coord(_, 0));                                         // (BLK_N,d,n)
  Tensor gV = local_tile(mV, tile_n, make_coord(_, 0));                                         // (BLK_N,d,n)
  Tensor cQ = make_identity_tensor(tile_m);                                                     // (BLK_M,d)
  Tensor cK = make_identity_tensor(tile_n);                                                     // (BLK_N,d)

  Tensor sQ = make_tensor(make_smem_ptr(smem.q.data()), typename Cfg::SmemFixed{});             // (BLK_M,d)
  Tensor sdO = make_tensor(make_smem_ptr(smem.dout.data()), typename Cfg::SmemFixed{});         // (BLK_M,d)
  Tensor sK = make_tensor(make_smem_ptr(smem.k.data()), typename Cfg::SmemStream{});            // (BLK_N,d,STAGE)
  Tensor sKt = make_tensor(make_smem_ptr(smem.k.data()), typename Cfg::SmemStreamT{});          // (d,BLK_N,STAGE)
  Tensor sV = make_tensor(make_smem_ptr(smem.v.data()), typename Cfg::SmemStream{});            // (BLK_N,d,STAGE)
  Tensor sdS = make_tensor(make_smem_ptr(smem.ds.data()), typename Cfg::SmemScores{});          // (BLK_M,BLK_N)

  typename Cfg::GmemLoad gmem_load;
  auto load_thr = gmem_load.get_thread_slice(tid);
  Tensor tKgK = load_thr.partition_S(gK);                                                       // (CPY,CPY_N,CPY_K,n)
  Tensor tKsK = load_thr.partition_D(sK);                                                     // (CPY,CPY_N,CPY_K,STAGE)
  Tensor tVgV = load_thr.partition_S(gV);                                                       // (CPY,CPY_N,CPY_K,n)
  Tensor tVsV = load_thr.partition_D(sV);                                                     // (CPY,CPY_N,CPY_K,STAGE)
  Tensor tQcQ = load_thr.partition_S(cQ);                                                       // (CPY,CPY_M,CPY_K)
  Tensor tKcK = load_thr.partition_S(cK);                                                       // (CPY,CPY_N,CPY_K)
  auto load_kv = [&](int n_block, int stage) {
    const int valid_rows = band.seqlen_k - n_block * kBlockN;
    copy_rows_zfill(gmem_load, tKgK(_, _, _, n_block), tKsK(_, _, _, stage), tKcK, valid_rows);
    copy_rows_zfill(gmem_load, tVgV(_, _, _, n_block), tVsV(_, _, _, stage), tKcK, valid_rows);
  };

  typename Cfg::TiledMma mma;
  auto thr_mma = mma.get_thread_slice(tid);
  auto ldsm_a = make_tiled_copy_A(typename Cfg::LdsmAtom{}, mma);
  auto ldsm_b = make_tiled_copy_B(typename Cfg::LdsmAtom{}, mma);
  auto ldsm_bt = make_tiled_copy_B(typename Cfg::LdsmTransAtom{}, mma);
  auto ldsm_a_thr = ldsm_a.get_thread_slice(tid);
  auto ldsm_b_thr = ldsm_b.get_thread_slice(tid);
  // S = Q K^T, dP = dO V^T: (BLK_M,BLK_N) reducing over d.
  Tensor tSrQ = thr_mma.partition_fragment_A(sQ);                                               // (MMA,MMA_M,MMA_K)
  Tensor tSrK = thr_mma.partition_fragment_B(sK(_, _, 0));                                      // (MMA,MMA_N,MMA_K)
  Tensor tdPrdO = thr_mma.partition_fragment_A(sdO);                                            // (MMA,MMA_M,MMA_K)
  Tensor tdPrV = thr_mma.partition_fragment_B(sV(_, _, 0));                                     // (MMA,MMA_N,MMA_K)
  Tensor tSsQ = ldsm_a_thr.partition_S(sQ);                                                     // (CPY,CPY_M,CPY_K)
  Tensor tSsK = ldsm_b_thr.partition_S(sK);                                                   // (CPY,CPY_N,CPY_K,STAGE)
  Tensor tdPsdO = ldsm_a_thr.partition_S(sdO);                                                  // (CPY,CPY_M,CPY_K)
  Tensor tdPsV = ldsm_b_thr.partition_S(sV);                                                  // (CPY,CPY_N,CPY_K,STAGE)
  // dQ += dS K: (BLK_M,d) reducing over the keys.
  Tensor tdQrdS = thr_mma.partition_fragment_A(sdS);                                            // (MMA,MMA_M,MMA_N)
  Tensor tdQrKt = thr_mma.partition_fragment_B(sKt(_, _, 0));                                   // (MMA,MMA_D,MMA_N)
  Tensor tdQsdS = ldsm_a_thr.partition_S(sdS);                                                  // (CPY,CPY_M,CPY_N)
  Tensor tdQsKt = ldsm_bt.get_thread_slice(tid).partition_S(sKt);                             // (CPY,CPY_D,CPY_N,STAGE)
  auto sts = make_tiled_copy_C(typename Cfg::StsAtom{}, mma);
  auto sts_thr = sts.get_thread_slice(tid);
  Tensor tdSsdS = sts_thr.partition_D(sdS);                                                     // (CPY,CPY_M,CPY_N)

  Tensor acc_dq = partition_fragment_C(mma, tile_m);                                            // (MMA,MMA_M,MMA_D)
  clear(acc_dq);
  Tensor tScS = thr_mma.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
  Tensor tScS_rc = make_tensor(tScS.data(), acc_as_rows_cols(tScS.layout()));                  // (ROWS,COLS)->(m,n)
  constexpr int kRows = decltype(size<0>(tScS_rc))::value;
  const RowStats<kRows> stats(p, batch, head, m_begin, tScS_rc);
  const float scale_log2 = a.scale * float(M_LOG2E);

  copy_rows_zfill(gmem_load, load_thr.partition_S(gQ), load_thr.partition_D(sQ), tQcQ, m_rows);
  copy_rows_zfill(gmem_load, load_thr.partition_S(gdO), load_thr.partition_D(sdO), tQcQ, m_rows);
  if (n_block_begin < n_block_end) load_kv(n_block_begin, 0);
  cp_async_fence();

  for (int n_block = n_block_begin, stage = 0; n_block < n_block_end; ++n_block, stage ^= 1) {
    if (n_block + 1 < n_block_end) load_kv(n_block + 1, stage ^ 1);
    cp_async_fence();
    cp_async_wait<1>();
    __syncthreads();

    Tensor acc_s = partition_fragment_C(mma, Shape<Int<kBlockM>, Int<kBlockN>>{});            // (MMA,MMA_M,MMA_N)
    Tensor acc_dp = partition_fragment_C(mma, Shape<Int<kBlockM>, Int<kBlockN>>{});           // (MMA,MMA_M,MMA_N)
    clear(acc_s);
    clear(acc_dp);
    gemm_ss(mma, acc_s, tSrQ, tSrK, tSsQ, tSsK(_, _, _, stage), ldsm_a, ldsm_b);
    gemm_ss(mma, acc_dp, tdPrdO, tdPrV, tdPsdO, tdPsV(_, _, _, stage), ldsm_a, ldsm_b);
    Tensor scores = make_tensor(acc_s.data(), acc_as_rows_cols(acc_s.layout()));               // (ROWS,COLS)
    Tensor dp = make_tensor(acc_dp.data(), acc_as_rows_cols(acc_dp.layout()));                 // (ROWS,COLS)
    const int n_begin = n_block * kBlockN;
    if (band.tile_needs_mask(m_begin, m_begin + m_rows, n_begin, n_begin + kBlockN)) {
      mask_to_band(scores, tScS_rc, band, m_begin, n_begin);
    }
    softmax_backward(scores, dp, stats, scale_log2);
    copy(sts, sts_thr.retile_S(convert_fragment<Element>(acc_dp)), tdSsdS);
    __syncthreads();

    gemm_ss(mma, acc_dq, tdQrdS, tdQrKt, tdQsdS, tdQsKt(_, _, _, stage), ldsm_a, ldsm_bt);
    // Every warp is done with dS and `stage` before the next iteration refills them.
    __syncthreads();
  }

  cp_async_wait<0>();  // Q and dO are still in flight when the tile sees no key
  __syncthreads();
  store_tile<Cfg>(mma, acc_dq, a.scale, sQ, gdQ, cQ, m_rows);
}

}  // namespace headmix::kernels::sm80
