#pragma once
// Hopper flash-attention backward, dK/dV (and dQ by fp32 atomics) on sm_90a: TMA + wgmma,
// warp-specialised.
//
// One CTA of three warpgroups owns a 128-key tile of one (batch, kv head) and keeps its dK and
// dV in registers while it walks every query head of the GQA group and every 64-query tile of
// the band (so the group sum is deterministic and a window costs O(S * window)).
// Producer (warpgroup 0, one thread): K and V once, then each Q and dO tile into a kStages-deep
// pipeline. Consumers (warpgroups 1 and 2, 64 keys each as the wgmma M dimension) compute the
// transposed tiles directly, so P^T and dS^T come out in the A-operand registers of the next
// products:
//   S^T = K Q^T, dP^T = V dO^T                (SS wgmma; M = keys, N = queries, K = d)
//   P^T = exp(S^T * scale - lse), dS^T = P^T (dP^T - D)   (registers; masked by the band)
//   dV += P^T dO, dK += dS^T Q                (RS wgmma; B = dO^T, Q^T: transposed smem views)
//   dQ_tile = dS K                            (SS wgmma from dS^T staged in shared memory; the
//                                              two warpgroups split d; fp32 atomics into dq_accum)
// lse and D = rowsum(dO * O) - dlse are read per query column from global memory (L2); queries
// past S_q get lse = +inf, so their P and dS are exactly 0, and keys past S_k are masked. In
// deterministic mode (dq_accum == null) the dQ part is skipped and the portable dq pass runs
// after this kernel. Epilogue: dK * scale and dV through shared memory to one TMA store each
// (rows past S_k clipped). The launcher runs the row-dot pass before and the dq conversion after.
// Registers bound the schedule at d = 128: dK and dV take 128 of a consumer thread's 240, so
// dP^T is issued after P's exponentials and dQ after the dK/dV products, not alongside them
// (overlapping either spills). A 2-stage Q/dO pipeline still hides the loads.
#include <cutlass/arch/barrier.h>
#include <cutlass/arch/reg_reconfig.h>
#include <cutlass/pipeline/sm90_pipeline.hpp>

#include "common/attn_band.cuh"
#include "params.h"
#include "sm90/flash_config.cuh"

namespace headmix::kernels::sm90 {

template <typename Element_, int kHeadDim_>
struct FlashBwdSm90Config {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kConsumerWarpGroups = 2;
  static constexpr int kConsumerThreads = 128 * kConsumerWarpGroups;
  static constexpr int kThreads = 128 + kConsumerThreads;
  static constexpr int kBlockN = 64 * kConsumerWarpGroups;  // keys of a CTA
  static constexpr int kBlockM = 64;                         // queries of a streamed tile
  static constexpr int kStages = 2;
  // Registers per thread after setmaxnreg: 24 + 2 x 240 = 3 x 168, the launch's share; d = 128
  // needs all 240 in the consumers.
  static constexpr int kProducerRegisters = 24;
  static constexpr int kConsumerRegisters = 240;
  static_assert(register_split_fits<kThreads, kProducerRegisters, kConsumerRegisters, kConsumerWarpGroups>());

  using SmemKV = SmemTile<Element, kBlockN, kHeadDim>;                       // (BLK_N,d); dK/dV after
  using SmemKt = SmemTileT<Element, kBlockN, kHeadDim>;                      // (d,BLK_N)
  using SmemQdO = SmemStages<Element, kBlockM, kHeadDim, kStages>;           // (BLK_M,d,STAGE)
  using SmemQdOt = SmemStagesT<Element, kBlockM, kHeadDim, kStages>;         // (d,BLK_M,STAGE)
  using SmemQdOStage = decltype(take<0, 2>(SmemQdO{}));                      // (BLK_M,d)
  using SmemDsT = SmemTile<Element, kBlockN, kBlockM>;                       // (BLK_N,BLK_M)
  using SmemDs = SmemTileT<Element, kBlockN, kBlockM>;                       // (BLK_M,BLK_N)

  // S^T and dP^T: M = keys (64 per consumer warpgroup), N = queries, K = d.
  using TiledMmaKQ = TiledMmaSS<Element, kConsumerWarpGroups, kBlockM, kHeadDim>;
  // dV and dK: A = P^T / dS^T registers, B = dO^T / Q^T (MN-major views): N = d, K = queries.
  using TiledMmaDkDv = TiledMmaRS<Element, kConsumerWarpGroups, kHeadDim, kBlockM, GMMA::Major::MN>;
  // dQ = dS K: M = the 64 queries, N = d split between the two warpgroups, K = keys; dS (queries
  // contiguous in the dS^T tile) and K^T are both MN-major.
  using TiledMmaDq = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Element, Element, float, Shape<_64, Int<kHeadDim / 2>, Int<kBlockN>>, GMMA::Major::MN,
                           GMMA::Major::MN>(),
      Layout<Shape<_1, Int<kConsumerWarpGroups>, _1>>{}));

  // stmatrix of 16-bit accumulator tiles: dS^T for dQ, dK and dV in the epilogue.
  using StsAtom = Copy_Atom<SM90_U32x4_STSM_N, Element>;

  using TmaQdO = TmaCopy<SM90_TMA_LOAD, const Element, SmemQdOStage, kBlockM, kHeadDim>;
  using TmaKV = TmaCopy<SM90_TMA_LOAD, const Element, SmemKV, kBlockN, kHeadDim>;
  using TmaDkDv = TmaCopy<SM90_TMA_STORE, Element, SmemKV, kBlockN, kHeadDim>;
  static constexpr uint32_t kKVBytes = 2 * kBlockN * kHeadDim * sizeof(Element);
  static constexpr uint32_t kQdOStageBytes = 2 * kBlockM * kHeadDim * sizeof(Element);

  using Pipeline = cutlass::PipelineTmaAsync<kStages>;
  struct SharedStorage {
    // 1024-byte alignment: the period of the 128-byte swizzle that TMA and wgmma both apply.
    cute::array_aligned<Element, cute::cosize_v<SmemKV>, 1024> k;  // dK in the epilogue
    cute::array_aligned<Element, cute::cosize_v<SmemKV>, 1024> v;  // dV in the epilogue
    cute::array_aligned<Element, cute::cosize_v<SmemQdO>, 1024> q;
    cute::array_aligned<Element, cute::cosize_v<SmemQdO>, 1024> dout;
    cute::array_aligned<Element, cute::cosize_v<SmemDsT>, 1024> ds_t;
    cutlass::arch::ClusterTransactionBarrier kv_full;
    typename Pipeline::SharedStorage q_dout_pipeline;
  };
};

template <class Cfg>
struct FlashBwdSm90Args {
  FlashAttnBwdParams p;
  typename Cfg::TmaQdO tma_q;
  typename Cfg::TmaQdO tma_dout;
  typename Cfg::TmaKV tma_k;
  typename Cfg::TmaKV tma_v;
  typename Cfg::TmaDkDv tma_dk;
  typename Cfg::TmaDkDv tma_dv;
};

// The key tile of this CTA, its GQA group and the query tiles its band touches.
template <class Cfg>
struct BwdTile {
  int n_block, kv_head, batch;
  int head_begin, head_end;          // the query heads of the GQA group
  int n_begin;                       // first key
  int m_block_begin, m_block_end;    // query tiles [begin, end) of every head of the group

  // Host-callable so tests/cuda_host checks these ranges against the band's definition.
  __host__ __device__ BwdTile(const FlashAttnParams& a, const AttnBand& band, int n_block_, int kv_head_, int batch_)
      : n_block(n_block_), kv_head(kv_head_), batch(batch_) {
    const int group = int(a.heads) / int(a.kv_heads);
    head_begin = kv_head * group;
    head_end = head_begin + group;
    n_begin = n_block * Cfg::kBlockN;
    const int n_rows = min(Cfg::kBlockN, band.seqlen_k - n_begin);
    const int2 queries = band.queries_of_keys(n_begin, n_begin + n_rows);
    m_block_begin = queries.x / Cfg::kBlockM;
    m_block_end = queries.y > queries.x ? (queries.y + Cfg::kBlockM - 1) / Cfg::kBlockM : m_block_begin;
  }
};

// Grid: (key tiles, kv heads, batch).
template <class Cfg>
__device__ __forceinline__ BwdTile<Cfg> this_cta_tile(const FlashAttnParams& a) {
  return BwdTile<Cfg>(a, AttnBand(a), int(blockIdx.x), int(blockIdx.y), int(blockIdx.z));
}

template <class Tma>
__device__ __forceinline__ auto bwd_tma_tensor(const Tma& tma, int64_t rows, int64_t head_dim, int64_t heads,
                                               int64_t batch) {
  return tma.get_tma_tensor(make_shape(int32_t(rows), int32_t(head_dim), int32_t(heads), int32_t(batch)));
}

// Producer thread: K and V, then Q and dO of every (head of the group, query tile), in the
// order the consumers walk them.
template <class Cfg>
__device__ __forceinline__ void load_bwd_tiles(const FlashBwdSm90Args<Cfg>& args, typename Cfg::SharedStorage& smem,
                                               const BwdTile<Cfg>& t, typename Cfg::Pipeline& pipeline) {
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  const FlashAttnParams& a = args.p.attn;
  Tensor mK = bwd_tma_tensor(args.tma_k, a.seqlen_k, kHeadDim, a.kv_heads, a.batch);         // (S_k,d,H_kv,B)
  Tensor mV = bwd_tma_tensor(args.tma_v, a.seqlen_k, kHeadDim, a.kv_heads, a.batch);         // (S_k,d,H_kv,B)
  Tensor mQ = bwd_tma_tensor(args.tma_q, a.seqlen_q, kHeadDim, a.heads, a.batch);            // (S_q,d,H,B)
  Tensor mdO = bwd_tma_tensor(args.tma_dout, a.seqlen_q, kHeadDim, a.heads, a.batch);        // (S_q,d,H,B)
  auto tile_kv = Shape<Int<kBlockN>, Int<kHeadDim>>{};
  auto tile_q = Shape<Int<kBlockM>, Int<kHeadDim>>{};
  Tensor gK = local_tile(mK(_, _, t.kv_head, t.batch), tile_kv, make_coord(t.n_block, _0{}));  // (BLK_N,d)
  Tensor gV = local_tile(mV(_, _, t.kv_head, t.batch), tile_kv, make_coord(t.n_block, _0{}));  // (BLK_N,d)
  Tensor sK = make_tensor(make_smem_ptr(smem.k.data()), typename Cfg::SmemKV{});             // (BLK_N,d)
  Tensor sV = make_tensor(make_smem_ptr(smem.v.data()), typename Cfg::SmemKV{});             // (BLK_N,d)
  Tensor sQ = make_tensor(make_smem_ptr(smem.q.data()), typename Cfg::SmemQdO{});            // (BLK_M,d,STAGE)
  Tensor sdO = make_tensor(make_smem_ptr(smem.dout.data()), typename Cfg::SmemQdO{});        // (BLK_M,d,STAGE)
  auto [tKgK, tKsK] = tma_partition(args.tma_k, _0{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gK));
  auto [tVgV, tVsV] = tma_partition(args.tma_v, _0{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gV));

  smem.kv_full.arrive_and_expect_tx(Cfg::kKVBytes);
  copy(args.tma_k.with(reinterpret_cast<uint64_t&>(smem.kv_full), 0), tKgK, tKsK);
  copy(args.tma_v.with(reinterpret_cast<uint64_t&>(smem.kv_full), 0), tVgV, tVsV);
  auto write = cutlass::make_producer_start_state<typename Cfg::Pipeline>();
  for (int head = t.head_begin; head < t.head_end; ++head) {
    Tensor gQ = local_tile(mQ(_, _, head, t.batch), tile_q, make_coord(_, _0{}));            // (BLK_M,d,m)
    Tensor gdO = local_tile(mdO(_, _, head, t.batch), tile_q, make_coord(_, _0{}));          // (BLK_M,d,m)
    auto [tQgQ, tQsQ] = tma_partition(args.tma_q, _0{}, Layout<_1>{}, group_modes<0, 2>(sQ), group_modes<0, 2>(gQ));
    auto [tdOgdO, tdOsdO] =
        tma_partition(args.tma_dout, _0{}, Layout<_1>{}, group_modes<0, 2>(sdO), group_modes<0, 2>(gdO));
    const BwdTile<Cfg> tile = this_cta_tile<Cfg>(a);  // rebuilt per head: the producer has 24 registers
    for (int m_block = tile.m_block_begin; m_block < tile.m_block_end; ++m_block) {
      pipeline.producer_acquire(write);
      auto& full = *pipeline.producer_get_barrier(write);
      copy(args.tma_q.with(full, 0), tQgQ(_, m_block), tQsQ(_, write.index()));
      copy(args.tma_dout.with(full, 0), tdOgdO(_, m_block), tdOsdO(_, write.index()));
      ++write;
    }
  }
  pipeline.producer_tail(write);  // every stage released: all loads have landed
}

// Consumer warpgroups: dK/dV of their 64 keys over all query tiles, dQ contributions, epilogue.
template <class Cfg>
__device__ __forceinline__ void accumulate_and_store(const FlashBwdSm90Args<Cfg>& args,
                                                     typename Cfg::SharedStorage& smem, const BwdTile<Cfg>& t,
                                                     typename Cfg::Pipeline& pipeline,
                                                     int thread) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  constexpr int kConsumers = Cfg::kConsumerThreads;
  constexpr int kDsBarrier = 0, kEpilogueBarrier = 1;  // named barriers of the consumer threads
  const FlashAttnBwdParams& p = args.p;
  const FlashAttnParams& a = p.attn;
  const bool atomic_dq = p.dq_accum != nullptr;
  // Rebuilt from the (constant-bank) params where used rather than kept in registers.
  const auto band = [&] { return AttnBand(a); };

  Tensor sK = make_tensor(make_smem_ptr(smem.k.data()), typename Cfg::SmemKV{});             // (BLK_N,d)
  Tensor sKt = make_tensor(make_smem_ptr(smem.k.data()), typename Cfg::SmemKt{});            // (d,BLK_N)
  Tensor sV = make_tensor(make_smem_ptr(smem.v.data()), typename Cfg::SmemKV{});             // (BLK_N,d)
  Tensor sQ = make_tensor(make_smem_ptr(smem.q.data()), typename Cfg::SmemQdO{});            // (BLK_M,d,STAGE)
  Tensor sQt = make_tensor(make_smem_ptr(smem.q.data()), typename Cfg::SmemQdOt{});          // (d,BLK_M,STAGE)
  Tensor sdO = make_tensor(make_smem_ptr(smem.dout.data()), typename Cfg::SmemQdO{});        // (BLK_M,d,STAGE)
  Tensor sdOt = make_tensor(make_smem_ptr(smem.dout.data()), typename Cfg::SmemQdOt{});      // (d,BLK_M,STAGE)
  Tensor sDsT = make_tensor(make_smem_ptr(smem.ds_t.data()), typename Cfg::SmemDsT{});       // (BLK_N,BLK_M)
  Tensor sDs = make_tensor(make_smem_ptr(smem.ds_t.data()), typename Cfg::SmemDs{});         // (BLK_M,BLK_N)

  typename Cfg::TiledMmaKQ mma_kq;
  typename Cfg::TiledMmaDkDv mma_dkdv;
  typename Cfg::TiledMmaDq mma_dq;
  auto thr_kq = mma_kq.get_thread_slice(thread);
  auto thr_dkdv = mma_dkdv.get_thread_slice(thread);
  auto thr_dq = mma_dq.get_thread_slice(thread);
  Tensor tSrK = thr_kq.partition_fragment_A(sK);                                              // (MMA,MMA_M,MMA_K)
  Tensor tSrV = thr_kq.partition_fragment_A(sV);                                              // (MMA,MMA_M,MMA_K)
  Tensor tSrQ = thr_kq.partition_fragment_B(sQ);                                              // (MMA,MMA_N,MMA_K,STAGE)
  Tensor tSrdO = thr_kq.partition_fragment_B(sdO);                                            // (MMA,MMA_N,MMA_K,STAGE)
  Tensor tDrQt = thr_dkdv.partition_fragment_B(sQt);                                          // (MMA,MMA_N,MMA_K,STAGE)
  Tensor tDrdOt = thr_dkdv.partition_fragment_B(sdOt);                                        // (MMA,MMA_N,MMA_K,STAGE)
  Tensor tQrDs = thr_dq.partition_fragment_A(sDs);                                            // (MMA,MMA_M,MMA_K)
  Tensor tQrKt = thr_dq.partition_fragment_B(sKt);                                            // (MMA,MMA_N,MMA_K)

  auto tile_s = Shape<Int<kBlockN>, Int<kBlockM>>{};
  auto tile_kv = Shape<Int<kBlockN>, Int<kHeadDim>>{};
  auto tile_dq = Shape<Int<kBlockM>, Int<kHeadDim>>{};
  Tensor tScS = thr_kq.partition_C(make_identity_tensor(tile_s));                             // (MMA,MMA_M,MMA_N)->(n,m)
  Tensor tScS_rc = make_tensor(tScS.data(), acc_as_rows_cols(tScS.layout()));                // (ROWS,COLS)->(n,m)
  Tensor tQcQ = thr_dq.partition_C(make_identity_tensor(tile_dq));                            // (MMA,MMA_M,MMA_N)->(m,d)
  Tensor acc_s = partition_fragment_C(mma_kq, tile_s);                                        // (MMA,MMA_M,MMA_N)
  Tensor acc_dp = partition_fragment_C(mma_kq, tile_s);                                       // (MMA,MMA_M,MMA_N)
  Tensor probs = make_tensor(acc_s.data(), acc_as_rows_cols(acc_s.layout()));                 // (ROWS,COLS)
  Tensor dscores = make_tensor(acc_dp.data(), acc_as_rows_cols(acc_dp.layout()));             // (ROWS,COLS)
  Tensor rP = make_tensor<Element>(acc_s.layout());                                           // (MMA,MMA_M,MMA_N)
  Tensor rdS = make_tensor<Element>(acc_dp.layout());                                         // (MMA,MMA_M,MMA_N)
  Tensor tDrP = make_tensor(rP.data(), acc_as_operand_a(rP.layout()));                        // (MMA,MMA_M,MMA_K)
  Tensor tDrdS = make_tensor(rdS.data(), acc_as_operand_a(rdS.layout()));                     // (MMA,MMA_M,MMA_K)
  Tensor acc_dk = partition_fragment_C(mma_dkdv, tile_kv);                                    // (MMA,MMA_M,MMA_N)
  Tensor acc_dv = partition_fragment_C(mma_dkdv, tile_kv);                                    // (MMA,MMA_M,MMA_N)
  Tensor acc_dq = partition_fragment_C(mma_dq, tile_dq);                                      // (MMA,MMA_M,MMA_N)
  auto sts_ds = make_tiled_copy_C(typename Cfg::StsAtom{}, mma_kq);
  auto sts_ds_thr = sts_ds.get_thread_slice(thread);
  Tensor tSsDsT = sts_ds_thr.partition_D(sDsT);                                               // (CPY,CPY_N,CPY_M)
  clear(acc_dk);
  clear(acc_dv);
  constexpr int kRows = decltype(size<0>(probs))::value, kCols = decltype(size<1>(probs))::value;

  smem.kv_full.wait(0);
  typename Cfg::Pipeline::PipelineState read;  // stage 0, phase 0: the producer fills in order
  for (int head = t.head_begin; head < t.head_end; ++head) {
    const int64_t row_stats = (int64_t(t.batch) * a.heads + head) * a.seqlen_q;  // lse / D of (b, head)
    for (int m_block = t.m_block_begin; m_block < t.m_block_end; ++m_block) {
      const int m_begin = m_block * kBlockM;
      pipeline.consumer_wait(read);
      const int stage = read.index();
      wgmma_async<true>(mma_kq, tSrK, tSrQ(_, _, _, stage), acc_s);

      // Column by column (a column is one query: one lse, one D), so the per-query values
      // occupy registers one at a time next to the dK/dV accumulators.
      const bool masked = band().tile_needs_mask(m_begin, min(m_begin + kBlockM, a.seqlen_q), t.n_begin,
                                               t.n_begin + kBlockN);
      wgmma_wait<0>(acc_s);
      CUTE_UNROLL
      for (int c = 0; c < kCols; ++c) {
        const int i = m_begin + get<1>(tScS_rc(0, c));
        // lse in exp2 units; +inf for queries past S_q or without keys makes P exactly 0.
        const float lse = i < a.seqlen_q ? p.lse[row_stats + i] : -INFINITY;
        const float lse_log2 = lse == -INFINITY ? INFINITY : lse * float(M_LOG2E);
        CUTE_UNROLL
        for (int r = 0; r < kRows; ++r) {
          const int j = t.n_begin + get<0>(tScS_rc(r, 0));
          const bool allowed = !masked || (j >= band().first_key(i) && j < band().key_end(i));
          probs(r, c) = allowed ? exp2f(fmaf(probs(r, c), a.scale * float(M_LOG2E), -lse_log2)) : 0.f;
        }
      }
      // dP^T only now: its accumulator in flight during the exponentials, next to dK and dV,
      // does not fit in 240 registers at d = 128.
      wgmma_async<true>(mma_kq, tSrV, tSrdO(_, _, _, stage), acc_dp);
      wgmma_wait<0>(acc_dp);
      CUTE_UNROLL
      for (int c = 0; c < kCols; ++c) {
        const int i = m_begin + get<1>(tScS_rc(0, c));
        const float row_dot = i < a.seqlen_q ? p.row_dot[row_stats + i] : 0.f;
        CUTE_UNROLL
        for (int r = 0; r < kRows; ++r) dscores(r, c) = probs(r, c) * (dscores(r, c) - row_dot);
      }
      convert_fragment_into(acc_s, rP);
      convert_fragment_into(acc_dp, rdS);

      if (atomic_dq) {
        // dS^T goes to shared memory for dQ; the previous tile's dQ products must be done with it.
        cutlass::arch::NamedBarrier::sync(kConsumers, kDsBarrier);
        copy(sts_ds, sts_ds_thr.retile_S(rdS), tSsDsT);
        cutlass::arch::fence_view_async_shared();  // generic-proxy writes, read by wgmma
      }
      wgmma_async<false>(mma_dkdv, tDrP, tDrdOt(_, _, _, stage), acc_dv);
      wgmma_async<false>(mma_dkdv, tDrdS, tDrQt(_, _, _, stage), acc_dk);
      // Done with Q and dO. Waiting here, before dQ, frees P and dS: with them and the dQ
      // accumulator in flight at once, d = 128 would not fit in 240 registers.
      wgmma_wait<0>(acc_dv, acc_dk, tDrP, tDrdS);
      pipeline.consumer_release(read);
      ++read;

      if (atomic_dq) {
        cutlass::arch::NamedBarrier::sync(kConsumers, kDsBarrier);
        wgmma_async<true>(mma_dq, tQrDs, tQrKt, acc_dq);
        wgmma_wait<0>(acc_dq);
        float* dq_tile = p.dq_accum + ((int64_t(t.batch) * a.seqlen_q + m_begin) * a.heads + head) * kHeadDim;
        CUTE_UNROLL
        for (int e = 0; e < size(acc_dq); ++e) {
          const int m = get<0>(tQcQ(e)), d = get<1>(tQcQ(e));
          if (m_begin + m < a.seqlen_q) atomicAdd(dq_tile + int64_t(m) * a.heads * kHeadDim + d, acc_dq(e));
        }
      }
    }
  }

  // Epilogue: dK (scaled) and dV through the K/V buffers, once every warpgroup is done with K.
  CUTE_UNROLL
  for (int e = 0; e < size(acc_dk); ++e) acc_dk(e) *= a.scale;
  Tensor rdK = convert_fragment<Element>(acc_dk);                                            // (MMA,MMA_M,MMA_N)
  Tensor rdV = convert_fragment<Element>(acc_dv);                                            // (MMA,MMA_M,MMA_N)
  auto sts_kv = make_tiled_copy_C(typename Cfg::StsAtom{}, mma_dkdv);
  auto sts_kv_thr = sts_kv.get_thread_slice(thread);
  cutlass::arch::NamedBarrier::sync(kConsumers, kEpilogueBarrier);
  copy(sts_kv, sts_kv_thr.retile_S(rdK), sts_kv_thr.partition_D(sK));
  copy(sts_kv, sts_kv_thr.retile_S(rdV), sts_kv_thr.partition_D(sV));
  cutlass::arch::fence_view_async_shared();  // the TMA stores read through the async proxy
  cutlass::arch::NamedBarrier::sync(kConsumers, kEpilogueBarrier);
  if (thread == 0) {
    Tensor mdK = bwd_tma_tensor(args.tma_dk, a.seqlen_k, kHeadDim, a.kv_heads, a.batch);     // (S_k,d,H_kv,B)
    Tensor mdV = bwd_tma_tensor(args.tma_dv, a.seqlen_k, kHeadDim, a.kv_heads, a.batch);     // (S_k,d,H_kv,B)
    Tensor gdK = local_tile(mdK(_, _, t.kv_head, t.batch), tile_kv, make_coord(t.n_block, _0{}));  // (BLK_N,d)
    Tensor gdV = local_tile(mdV(_, _, t.kv_head, t.batch), tile_kv, make_coord(t.n_block, _0{}));  // (BLK_N,d)
    auto [tdKgdK, tdKsdK] = tma_partition(args.tma_dk, _0{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gdK));
    auto [tdVgdV, tdVsdV] = tma_partition(args.tma_dv, _0{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gdV));
    copy(args.tma_dk, tdKsdK, tdKgdK);
    copy(args.tma_dv, tdVsdV, tdVgdV);
    tma_store_arrive();
    tma_store_wait<0>();  // shared memory must outlive the stores' reads
  }
}

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1) flash_bwd_sm90_kernel(const __grid_constant__ FlashBwdSm90Args<Cfg> args) {
  extern __shared__ __align__(1024) char smem_buf[];
  auto& smem = *reinterpret_cast<typename Cfg::SharedStorage*>(smem_buf);
  const int warp_group = threadIdx.x / 128;

  using Pipeline = typename Cfg::Pipeline;
  typename Pipeline::Params pipeline_params;
  pipeline_params.transaction_bytes = Cfg::kQdOStageBytes;
  pipeline_params.role = warp_group == 0 ? Pipeline::ThreadCategory::Producer : Pipeline::ThreadCategory::Consumer;
  pipeline_params.is_leader = threadIdx.x == 0;
  pipeline_params.num_consumers = Cfg::kConsumerThreads;
  if (threadIdx.x == 0) {
    prefetch_tma_descriptor(args.tma_q.get_tma_descriptor());
    prefetch_tma_descriptor(args.tma_dout.get_tma_descriptor());
    prefetch_tma_descriptor(args.tma_k.get_tma_descriptor());
    prefetch_tma_descriptor(args.tma_v.get_tma_descriptor());
    smem.kv_full.init(1);
  }
  // The pipeline initialises its barriers (warp 0) and fences the inits, kv_full's included.
  Pipeline pipeline(smem.q_dout_pipeline, pipeline_params, Shape<_1, _1, _1>{});
  __syncthreads();

  // The tile is worked out after setmaxnreg: values live across it would have to fit the
  // launch's 168 registers.
  if (warp_group == 0) {
    cutlass::arch::warpgroup_reg_dealloc<Cfg::kProducerRegisters>();
    if (threadIdx.x == 0) load_bwd_tiles(args, smem, this_cta_tile<Cfg>(args.p.attn), pipeline);
  } else {
    cutlass::arch::warpgroup_reg_alloc<Cfg::kConsumerRegisters>();
    accumulate_and_store(args, smem, this_cta_tile<Cfg>(args.p.attn), pipeline, int(threadIdx.x) - 128);
  }
}

}  // namespace headmix::kernels::sm90
