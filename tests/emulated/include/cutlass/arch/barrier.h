#pragma once
// Emulated CUTLASS barriers: ClusterBarrier and ClusterTransactionBarrier (mbarrier),
// NamedBarrier (bar.sync / bar.arrive) and the barrier fences, under their own names and with
// their own member functions, executing sync_sm90.h. CUTLASS's pipelines (PipelineAsync,
// PipelineTmaAsync) and the kernels bind to them unchanged. Clusters are one CTA.
#include "cute_atoms.h"
#include "async_proxy_sm90.h"
#include "sync_sm90.h"

#define ClusterBarrier ClusterBarrier_on_gpu
#define ClusterTransactionBarrier ClusterTransactionBarrier_on_gpu
#define NamedBarrier NamedBarrier_on_gpu
#define fence_barrier_init fence_barrier_init_on_gpu
#define fence_view_async_shared fence_view_async_shared_on_gpu
#include_next <cutlass/arch/barrier.h>
#undef ClusterBarrier
#undef ClusterTransactionBarrier
#undef NamedBarrier
#undef fence_barrier_init
#undef fence_view_async_shared

namespace cutlass::arch {

struct ClusterBarrier {
  using ValueType = uint64_t;
  ValueType barrier_;

  void init(uint32_t arrive_count) const { init(&barrier_, arrive_count); }
  bool test_wait(uint32_t phase, uint32_t pred = true) const { return test_wait(&barrier_, phase, pred); }
  bool try_wait(uint32_t phase) const { return try_wait(&barrier_, phase); }
  void wait(uint32_t phase) const { wait(&barrier_, phase); }
  void arrive() const { arrive(&barrier_); }
  void arrive(uint32_t cta_id, uint32_t pred = true) const { arrive(&barrier_, cta_id, pred); }

  static void init(ValueType const* smem_ptr, uint32_t arrive_count) { emu::mbarrier_init(smem_ptr, arrive_count); }
  static void wait(ValueType const* smem_ptr, uint32_t phase) { emu::mbarrier_wait(smem_ptr, phase); }
  static bool test_wait(ValueType const* smem_ptr, uint32_t phase, uint32_t pred) {
    return pred ? emu::mbarrier_test_wait(smem_ptr, phase) : false;
  }
  static bool try_wait(ValueType const* smem_ptr, uint32_t phase) { return emu::mbarrier_try_wait(smem_ptr, phase); }
  static void arrive(ValueType const* smem_ptr, uint32_t cta_id, uint32_t pred) {
    if (cta_id != 0) emu::fail("remote mbarrier arrive to CTA " + std::to_string(cta_id) + ": clusters are one CTA");
    if (pred) emu::mbarrier_arrive(smem_ptr);
  }
  static void arrive(ValueType const* smem_ptr) { emu::mbarrier_arrive(smem_ptr); }
  static void invalidate(ValueType const* smem_ptr) { emu::mbarrier_invalidate(smem_ptr); }
};

struct ClusterTransactionBarrier : public ClusterBarrier {
  void arrive_and_expect_tx(uint32_t transaction_bytes) const { arrive_and_expect_tx(&barrier_, transaction_bytes); }
  void arrive_and_expect_tx(uint32_t transaction_bytes, uint32_t cta_id, uint32_t pred = 1u) const {
    arrive_and_expect_tx(&barrier_, transaction_bytes, cta_id, pred);
  }
  void expect_transaction(uint32_t transaction_bytes) const { expect_transaction(&barrier_, transaction_bytes); }
  void complete_transaction(uint32_t transaction_bytes, uint32_t pred = 1) const {
    complete_transaction(&barrier_, 0, transaction_bytes, pred);
  }
  void complete_transaction(uint32_t dst_cta_id, uint32_t transaction_bytes, uint32_t pred) const {
    complete_transaction(&barrier_, dst_cta_id, transaction_bytes, pred);
  }

  static void arrive_and_expect_tx(ValueType const* smem_ptr, uint32_t transaction_bytes) {
    emu::mbarrier_expect_tx(smem_ptr, transaction_bytes);
    emu::mbarrier_arrive(smem_ptr);
  }
  static void arrive_and_expect_tx(ValueType const* smem_ptr, uint32_t transaction_bytes, uint32_t cta_id,
                                   uint32_t pred) {
    if (cta_id != 0) emu::fail("remote mbarrier arrive to CTA " + std::to_string(cta_id) + ": clusters are one CTA");
    if (pred) arrive_and_expect_tx(smem_ptr, transaction_bytes);
  }
  static void expect_transaction(ValueType const* smem_ptr, uint32_t transaction_bytes) {
    emu::mbarrier_expect_tx(smem_ptr, transaction_bytes);
  }
  static void complete_transaction(ValueType const* smem_ptr, uint32_t dst_cta_id, uint32_t transaction_bytes,
                                   uint32_t pred = 1) {
    if (dst_cta_id != 0) emu::fail("complete_tx to CTA " + std::to_string(dst_cta_id) + ": clusters are one CTA");
    if (pred) emu::mbarrier_complete_tx(smem_ptr, transaction_bytes);
  }
};

// CUTLASS numbers user barriers after the ones it reserves, as the hardware ids it uses.
class NamedBarrier {
 public:
  static constexpr uint32_t ReservedNamedBarrierCount = static_cast<uint32_t>(ReservedNamedBarriers::FirstUserBarrier);

  NamedBarrier(uint32_t num_threads, uint32_t id = 0) : num_threads_(num_threads), id_(id + ReservedNamedBarrierCount) {}
  NamedBarrier(uint32_t num_threads, ReservedNamedBarriers reserved)
      : num_threads_(num_threads), id_(static_cast<uint32_t>(reserved)) {}

  void arrive_and_wait() const { emu::named_barrier_sync(id_, num_threads_); }
  void arrive_and_wait_unaligned() const { emu::named_barrier_sync(id_, num_threads_); }
  void arrive() const { emu::named_barrier_arrive(id_, num_threads_); }
  void arrive_unaligned() const { emu::named_barrier_arrive(id_, num_threads_); }
  void sync() const { arrive_and_wait(); }

  static void arrive_and_wait(uint32_t num_threads, uint32_t barrier_id) {
    emu::named_barrier_sync(barrier_id + ReservedNamedBarrierCount, num_threads);
  }
  static void arrive_and_wait(uint32_t num_threads, ReservedNamedBarriers reserved) {
    emu::named_barrier_sync(static_cast<uint32_t>(reserved), num_threads);
  }
  static void arrive(uint32_t num_threads, uint32_t barrier_id) {
    emu::named_barrier_arrive(barrier_id + ReservedNamedBarrierCount, num_threads);
  }
  static void arrive(uint32_t num_threads, ReservedNamedBarriers reserved) {
    emu::named_barrier_arrive(static_cast<uint32_t>(reserved), num_threads);
  }
  static void sync(uint32_t num_threads, uint32_t barrier_id) { arrive_and_wait(num_threads, barrier_id); }
  static void sync(uint32_t num_threads, ReservedNamedBarriers reserved) { arrive_and_wait(num_threads, reserved); }

 private:
  uint32_t num_threads_, id_;
};

// fence.mbarrier_init orders the inits before other CTAs of the cluster use the barriers; the
// emulator runs one-CTA clusters, where it has nothing to order. fence.proxy.async makes this
// thread's plain shared-memory writes visible to the async proxy (async_proxy_sm90.h).
inline void fence_barrier_init() {}
inline void fence_view_async_shared() { emu::fence_proxy_async(); }

}  // namespace cutlass::arch
