#pragma once
// Hopper flash-attention forward (sm_90a): TMA + wgmma, warp-specialised.
//
// One CTA of three warpgroups computes a 128-row query tile of one (batch, head).
// Producer (warpgroup 0): hands most of its registers to the consumers (setmaxnreg) and one
// thread issues every TMA load: Q once (its own transaction barrier), then the K and V tiles
// of the band through two kStages-deep pipelines (full barriers count TMA bytes, empty
// barriers count consumer threads), so loads run ahead of the math by kStages tiles.
// Consumers (warpgroups 1 and 2, 64 query rows each): S = Q K^T is an SS wgmma, O += P V an
// RS wgmma with P straight from the score registers. Tile n's softmax overlaps tile n-1's
// P V: the loop issues S_n = Q K_n and O += P_{n-1} V_{n-1}, waits for S_n only, masks and
// exponentiates it while P V runs, then waits for P V and rescales O. Key tiles outside the
// causal/window band are never loaded, so windowed cost scales with the window; only tiles
// that cross the band edge or the S_k tail are masked. TMA zero-fills rows past S_q / S_k.
// Epilogue: O (normalised, 16-bit) goes registers -> shared (stmatrix) -> global with one TMA
// store that clips rows past S_q; lse is written from registers (natural log; -inf and O = 0
// for rows without keys).
#include <cutlass/arch/barrier.h>
#include <cutlass/arch/reg_reconfig.h>
#include <cutlass/pipeline/sm90_pipeline.hpp>

#include "common/attn_band.cuh"
#include "common/online_softmax.cuh"
#include "params.h"
#include "sm90/flash_config.cuh"

namespace headmix::kernels::sm90 {

template <typename Element_, int kHeadDim_>
struct FlashFwdSm90Config {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kConsumerWarpGroups = 2;
  static constexpr int kConsumerThreads = 128 * kConsumerWarpGroups;
  static constexpr int kThreads = 128 + kConsumerThreads;
  static constexpr int kBlockM = 64 * kConsumerWarpGroups;  // query rows of a CTA
  static constexpr int kBlockN = 128;                        // keys of a tile
  static constexpr int kStages = 2;
  // Registers per thread after setmaxnreg: 40 + 2 x 232 = 3 x 168, the launch's share; the
  // producer's address arithmetic spills below 32.
  static constexpr int kProducerRegisters = 40;
  static constexpr int kConsumerRegisters = 232;
  static_assert(register_split_fits<kThreads, kProducerRegisters, kConsumerRegisters, kConsumerWarpGroups>());

  using SmemQ = SmemTile<Element, kBlockM, kHeadDim>;                  // (BLK_M,d); also O
  using SmemKV = SmemStages<Element, kBlockN, kHeadDim, kStages>;      // (BLK_N,d,STAGE)
  using SmemVt = SmemStagesT<Element, kBlockN, kHeadDim, kStages>;     // (d,BLK_N,STAGE)
  using SmemKVStage = decltype(take<0, 2>(SmemKV{}));                  // (BLK_N,d)

  using TiledMmaQK = TiledMmaSS<Element, kConsumerWarpGroups, kBlockN, kHeadDim>;
  using TiledMmaPV = TiledMmaRS<Element, kConsumerWarpGroups, kHeadDim, kBlockN, GMMA::Major::MN>;

  using TmaQ = TmaCopy<SM90_TMA_LOAD, const Element, SmemQ, kBlockM, kHeadDim>;
  using TmaKV = TmaCopy<SM90_TMA_LOAD, const Element, SmemKVStage, kBlockN, kHeadDim>;
  using TmaO = TmaCopy<SM90_TMA_STORE, Element, SmemQ, kBlockM, kHeadDim>;
  static constexpr uint32_t kQBytes = kBlockM * kHeadDim * sizeof(Element);
  static constexpr uint32_t kKVTileBytes = kBlockN * kHeadDim * sizeof(Element);

  using Pipeline = cutlass::PipelineTmaAsync<kStages>;
  struct SharedStorage {
    // 1024-byte alignment: the period of the 128-byte swizzle that TMA and wgmma both apply.
    cute::array_aligned<Element, cute::cosize_v<SmemQ>, 1024> q;
    cute::array_aligned<Element, cute::cosize_v<SmemKV>, 1024> k;
    cute::array_aligned<Element, cute::cosize_v<SmemKV>, 1024> v;
    cute::array_aligned<Element, cute::cosize_v<SmemQ>, 1024> o;
    cutlass::arch::ClusterTransactionBarrier q_full;
    typename Pipeline::SharedStorage k_pipeline;
    typename Pipeline::SharedStorage v_pipeline;
  };
};

// Kernel argument: the plain Params plus the TMA descriptors the launcher built from them.
template <class Cfg>
struct FlashFwdSm90Args {
  FlashAttnFwdParams p;
  typename Cfg::TmaQ tma_q;
  typename Cfg::TmaKV tma_k;
  typename Cfg::TmaKV tma_v;
  typename Cfg::TmaO tma_o;
};

// The query tile of this CTA and the key tiles its band touches.
template <class Cfg>
struct FwdTile {
  int m_block, head, batch, kv_head;
  int m_begin, m_rows;                // first query row, rows inside S_q
  int n_block_begin, n_block_end;     // key tiles [begin, end); empty when the rows see no key

  __device__ FwdTile(const FlashAttnParams& a, const AttnBand& band) {
    m_block = gridDim.x - 1 - blockIdx.x;  // longest (causal) tiles first, short ones fill the tail
    head = blockIdx.y;
    batch = blockIdx.z;
    kv_head = head / int(a.heads / a.kv_heads);
    m_begin = m_block * Cfg::kBlockM;
    m_rows = min(Cfg::kBlockM, band.seqlen_q - m_begin);
    const int2 keys = band.keys_of_rows(m_begin, m_begin + m_rows);
    n_block_begin = keys.x / Cfg::kBlockN;
    n_block_end = keys.y > keys.x ? (keys.y + Cfg::kBlockN - 1) / Cfg::kBlockN : n_block_begin;
  }
};

// (S, d, heads, B) view of a TMA descriptor's tensor, as the launcher described it.
template <class Tma>
__device__ __forceinline__ auto tma_tensor(const Tma& tma, int64_t rows, int64_t head_dim, int64_t heads, int64_t batch) {
  return tma.get_tma_tensor(make_shape(int32_t(rows), int32_t(head_dim), int32_t(heads), int32_t(batch)));
}

// Producer thread: Q, then K_n and V_n for every key tile of the band, each as soon as the
// consumers have released the stage it goes to.
template <class Cfg>
__device__ __forceinline__ void load_tiles(const FlashFwdSm90Args<Cfg>& args, typename Cfg::SharedStorage& smem,
                                           const FwdTile<Cfg>& t, typename Cfg::Pipeline& k_pipeline,
                                           typename Cfg::Pipeline& v_pipeline) {
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  const FlashAttnParams& a = args.p.attn;
  Tensor mQ = tma_tensor(args.tma_q, a.seqlen_q, kHeadDim, a.heads, a.batch);            // (S_q,d,H,B)
  Tensor mK = tma_tensor(args.tma_k, a.seqlen_k, kHeadDim, a.kv_heads, a.batch);         // (S_k,d,H_kv,B)
  Tensor mV = tma_tensor(args.tma_v, a.seqlen_k, kHeadDim, a.kv_heads, a.batch);         // (S_k,d,H_kv,B)
  Tensor gQ = local_tile(mQ(_, _, t.head, t.batch), Shape<Int<kBlockM>, Int<kHeadDim>>{},
                         make_coord(t.m_block, _0{}));                                    // (BLK_M,d)
  Tensor gK = local_tile(mK(_, _, t.kv_head, t.batch), Shape<Int<kBlockN>, Int<kHeadDim>>{},
                         make_coord(_, _0{}));                                            // (BLK_N,d,n)
  Tensor gV = local_tile(mV(_, _, t.kv_head, t.batch), Shape<Int<kBlockN>, Int<kHeadDim>>{},
                         make_coord(_, _0{}));                                            // (BLK_N,d,n)
  Tensor sQ = make_tensor(make_smem_ptr(smem.q.data()), typename Cfg::SmemQ{});           // (BLK_M,d)
  Tensor sK = make_tensor(make_smem_ptr(smem.k.data()), typename Cfg::SmemKV{});          // (BLK_N,d,STAGE)
  Tensor sV = make_tensor(make_smem_ptr(smem.v.data()), typename Cfg::SmemKV{});          // (BLK_N,d,STAGE)
  auto [tQgQ, tQsQ] = tma_partition(args.tma_q, _0{}, Layout<_1>{}, group_modes<0, 2>(sQ), group_modes<0, 2>(gQ));
  auto [tKgK, tKsK] = tma_partition(args.tma_k, _0{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gK));
  auto [tVgV, tVsV] = tma_partition(args.tma_v, _0{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gV));

  smem.q_full.arrive_and_expect_tx(Cfg::kQBytes);
  copy(args.tma_q.with(reinterpret_cast<uint64_t&>(smem.q_full), 0), tQgQ, tQsQ);
  auto write = cutlass::make_producer_start_state<typename Cfg::Pipeline>();
  for (int n_block = t.n_block_begin; n_block < t.n_block_end; ++n_block) {
    k_pipeline.producer_acquire(write);
    copy(args.tma_k.with(*k_pipeline.producer_get_barrier(write), 0), tKgK(_, n_block), tKsK(_, write.index()));
    v_pipeline.producer_acquire(write);
    copy(args.tma_v.with(*v_pipeline.producer_get_barrier(write), 0), tVgV(_, n_block), tVsV(_, write.index()));
    ++write;
  }
  // Returns only once the consumers have released every stage, i.e. all loads have landed.
  k_pipeline.producer_tail(write);
  v_pipeline.producer_tail(write);
}

// Consumer warpgroups: the attention of their 64 rows each, then the epilogue.
// `thread` is the index among the consumer threads.
template <class Cfg>
__device__ __forceinline__ void attend_and_store(const FlashFwdSm90Args<Cfg>& args,
                                                 typename Cfg::SharedStorage& smem, const FwdTile<Cfg>& t,
                                                 const AttnBand& band, typename Cfg::Pipeline& k_pipeline,
                                                 typename Cfg::Pipeline& v_pipeline, int thread) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  const FlashAttnParams& a = args.p.attn;
  Tensor sQ = make_tensor(make_smem_ptr(smem.q.data()), typename Cfg::SmemQ{});           // (BLK_M,d)
  Tensor sK = make_tensor(make_smem_ptr(smem.k.data()), typename Cfg::SmemKV{});          // (BLK_N,d,STAGE)
  Tensor sVt = make_tensor(make_smem_ptr(smem.v.data()), typename Cfg::SmemVt{});         // (d,BLK_N,STAGE)

  typename Cfg::TiledMmaQK mma_qk;
  typename Cfg::TiledMmaPV mma_pv;
  auto thr_qk = mma_qk.get_thread_slice(thread);
  auto thr_pv = mma_pv.get_thread_slice(thread);
  Tensor tSrQ = thr_qk.partition_fragment_A(sQ);                                          // (MMA,MMA_M,MMA_K)
  Tensor tSrK = thr_qk.partition_fragment_B(sK);                                          // (MMA,MMA_N,MMA_K,STAGE)
  Tensor tOrVt = thr_pv.partition_fragment_B(sVt);                                        // (MMA,MMA_N,MMA_K,STAGE)
  auto tile_s = Shape<Int<kBlockM>, Int<kBlockN>>{};
  auto tile_o = Shape<Int<kBlockM>, Int<kHeadDim>>{};
  Tensor tScS = thr_qk.partition_C(make_identity_tensor(tile_s));                         // (MMA,MMA_M,MMA_N)->(m,n)
  Tensor tScS_rc = make_tensor(tScS.data(), acc_as_rows_cols(tScS.layout()));             // (ROWS,COLS)->(m,n)
  Tensor acc_o = partition_fragment_C(mma_pv, tile_o);                                     // (MMA,MMA_M,MMA_N)
  Tensor acc_o_rc = make_tensor(acc_o.data(), acc_as_rows_cols(acc_o.layout()));          // (ROWS,d)
  Tensor acc_s = partition_fragment_C(mma_qk, tile_s);                                     // (MMA,MMA_M,MMA_N)
  Tensor scores = make_tensor(acc_s.data(), acc_as_rows_cols(acc_s.layout()));            // (ROWS,COLS)
  Tensor rP = make_tensor<Element>(acc_s.layout());                                       // (MMA,MMA_M,MMA_N)
  Tensor tOrP = make_tensor(rP.data(), acc_as_operand_a(rP.layout()));                    // (MMA,MMA_M,MMA_K)
  constexpr int kRows = decltype(size<0>(acc_o_rc))::value;
  OnlineSoftmax<kRows> softmax(a.scale);
  float rescale[kRows];
  clear(acc_o);

  // Masks (where the tile needs it) and exponentiates the scores of key tile n_block in acc_s.
  auto softmax_of_tile = [&](int n_block) {
    const int n_begin = n_block * kBlockN;
    if (band.tile_needs_mask(t.m_begin, t.m_begin + t.m_rows, n_begin, n_begin + kBlockN)) {
      mask_to_band(scores, tScS_rc, band, t.m_begin, n_begin);
    }
    softmax.exp_scores(scores, rescale);
  };

  smem.q_full.wait(0);
  if (t.n_block_begin < t.n_block_end) {
    typename Cfg::Pipeline::PipelineState read;  // stage 0, phase 0: the producer fills in order
    k_pipeline.consumer_wait(read);
    wgmma_async<true>(mma_qk, tSrQ, tSrK(_, _, _, read.index()), acc_s);
    wgmma_wait<0>(acc_s);
    k_pipeline.consumer_release(read);
    softmax_of_tile(t.n_block_begin);  // O is still 0: nothing to rescale
    convert_fragment_into(acc_s, rP);

    for (int n_block = t.n_block_begin + 1; n_block < t.n_block_end; ++n_block) {
      auto next = read;
      ++next;
      k_pipeline.consumer_wait(next);
      wgmma_async<true>(mma_qk, tSrQ, tSrK(_, _, _, next.index()), acc_s);
      v_pipeline.consumer_wait(read);
      wgmma_async<false>(mma_pv, tOrP, tOrVt(_, _, _, read.index()), acc_o);
      wgmma_wait<1>(acc_s);  // S_n is ready; P_{n-1} V_{n-1} may still run
      k_pipeline.consumer_release(next);
      softmax_of_tile(n_block);
      wgmma_wait<0>(acc_o, tOrP);
      v_pipeline.consumer_release(read);
      OnlineSoftmax<kRows>::rescale_rows(acc_o_rc, rescale);
      convert_fragment_into(acc_s, rP);
      read = next;
    }
    v_pipeline.consumer_wait(read);
    wgmma_async<false>(mma_pv, tOrP, tOrVt(_, _, _, read.index()), acc_o);
    wgmma_wait<0>(acc_o);
    v_pipeline.consumer_release(read);
  }

  float lse[kRows];
  softmax.finish(acc_o_rc, lse);
  Tensor rO = convert_fragment<Element>(acc_o);                                          // (MMA,MMA_M,MMA_N)
  Tensor sO = make_tensor(make_smem_ptr(smem.o.data()), typename Cfg::SmemQ{});           // (BLK_M,d)
  auto sts_o = make_tiled_copy_C(Copy_Atom<SM90_U32x4_STSM_N, Element>{}, mma_pv);
  auto sts_thr = sts_o.get_thread_slice(thread);
  copy(sts_o, sts_thr.retile_S(rO), sts_thr.partition_D(sO));
  // The TMA store reads shared memory through the async proxy: fence the stmatrix writes,
  // then wait for every consumer thread's rows.
  cutlass::arch::fence_view_async_shared();
  cutlass::arch::NamedBarrier::sync(Cfg::kConsumerThreads, 0);
  if (thread == 0) {
    Tensor mO = tma_tensor(args.tma_o, a.seqlen_q, kHeadDim, a.heads, a.batch);          // (S_q,d,H,B)
    Tensor gO = local_tile(mO(_, _, t.head, t.batch), tile_o, make_coord(t.m_block, _0{}));  // (BLK_M,d)
    auto [tOgO, tOsO] = tma_partition(args.tma_o, _0{}, Layout<_1>{}, group_modes<0, 2>(sO), group_modes<0, 2>(gO));
    copy(args.tma_o, tOsO, tOgO);
    tma_store_arrive();
    tma_store_wait<0>();  // shared memory must outlive the store's reads
  }

  // Column 0 of each quad holds its rows' lse.
  Tensor tOcO = thr_pv.partition_C(make_identity_tensor(tile_o));                         // (MMA,MMA_M,MMA_N)->(m,d)
  Tensor tOcO_rc = make_tensor(tOcO.data(), acc_as_rows_cols(tOcO.layout()));            // (ROWS,d)->(m,d)
  if (get<1>(tOcO_rc(0, 0)) == 0) {
    float* lse_row = args.p.lse + (int64_t(t.batch) * a.heads + t.head) * a.seqlen_q + t.m_begin;
    CUTE_UNROLL
    for (int r = 0; r < kRows; ++r) {
      const int i = get<0>(tOcO_rc(r, 0));
      if (i < t.m_rows) lse_row[i] = lse[r];
    }
  }
}

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1) flash_fwd_sm90_kernel(const __grid_constant__ FlashFwdSm90Args<Cfg> args) {
  extern __shared__ __align__(1024) char smem_buf[];
  auto& smem = *reinterpret_cast<typename Cfg::SharedStorage*>(smem_buf);
  const AttnBand band(args.p.attn);
  const FwdTile<Cfg> tile(args.p.attn, band);
  const int warp_group = threadIdx.x / 128;

  using Pipeline = typename Cfg::Pipeline;
  typename Pipeline::Params pipeline_params;
  pipeline_params.transaction_bytes = Cfg::kKVTileBytes;
  pipeline_params.role = warp_group == 0 ? Pipeline::ThreadCategory::Producer : Pipeline::ThreadCategory::Consumer;
  pipeline_params.is_leader = threadIdx.x == 0;
  pipeline_params.num_consumers = Cfg::kConsumerThreads;
  if (threadIdx.x == 0) {
    prefetch_tma_descriptor(args.tma_q.get_tma_descriptor());
    prefetch_tma_descriptor(args.tma_k.get_tma_descriptor());
    prefetch_tma_descriptor(args.tma_v.get_tma_descriptor());
    prefetch_tma_descriptor(args.tma_o.get_tma_descriptor());
    smem.q_full.init(1);
  }
  // The pipelines initialise their barriers (warp 0) and fence the inits, q_full's included.
  Pipeline k_pipeline(smem.k_pipeline, pipeline_params, Shape<_1, _1, _1>{});
  Pipeline v_pipeline(smem.v_pipeline, pipeline_params, Shape<_1, _1, _1>{});
  __syncthreads();

  if (warp_group == 0) {
    cutlass::arch::warpgroup_reg_dealloc<Cfg::kProducerRegisters>();
    if (threadIdx.x == 0) load_tiles(args, smem, tile, k_pipeline, v_pipeline);
  } else {
    cutlass::arch::warpgroup_reg_alloc<Cfg::kConsumerRegisters>();
    attend_and_store(args, smem, tile, band, k_pipeline, v_pipeline, int(threadIdx.x) - 128);
  }
}

}  // namespace headmix::kernels::sm90
