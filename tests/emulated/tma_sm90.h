#pragma once
// Hopper's tensor memory accelerator as the PTX ISA defines it, for the emulated CuTe TMA atoms
// (include/cute/arch/copy_sm90_tma.hpp), over the tensor maps of tensor_map.h:
// - cp.async.bulk.tensor.Nd...mbarrier::complete_tx::bytes (load, tile mode): the box at the
//   given signed tensor coordinates, elementStrides apart, is written densely to shared memory
//   (dim 0 fastest) under the map's swizzle; elements outside the tensor read as zero; the
//   transaction bytes of the whole box, zero fill included, complete on the mbarrier.
// - cp.async.bulk.tensor.Nd.global.shared::cta.bulk_group (store): the same box read from shared
//   memory; elements outside the tensor are not written.
// - cp.async.bulk.commit_group / cp.async.bulk.wait_group.read N: a thread's stores form bulk
//   async-groups; the wait returns once all but the N newest groups have read their source.
// - prefetch.tensormap and cp.async.bulk.prefetch.tensor are hints: only the map is checked.
// Swizzles act on absolute shared-memory address bits (the offset in the emulated shared
// window): 32/64/128-byte modes XOR address bits [7, 7+b) into [4, 4+b) for b = 1/2/3, CuTe's
// Swizzle<b,4,3>. Checked: the map was encoded, the instruction's rank is the map's, the shared
// box lies 128-byte aligned inside the launch's shared memory, every global element it touches
// lies in a registered buffer (writable, for stores), the mbarrier was initialised.
// When data moves (Schedule::early_cp_async): at issue, or as late as the ISA allows: a load
// lands only once no thread can move without it (cuda_emu.h land_deferred_tx), a store reads
// shared memory at the wait_group.read that retires its group. A read of the tile that no
// mbarrier wait orders after the load, or shared memory reused before the store's wait, then
// changes the results between schedules.
// Not modelled (reported): interleaved maps, the NaN out-of-bound fill, a swizzled box whose
// inner dimension is narrower than the swizzle span.
// Race check (cuda_emu.h, async_proxy_sm90.h): a load's landing writes count as the issuer's as
// of the issue and complete_tx releases that clock to the mbarrier's waiters; a store's source
// is read at issue through the async proxy (plain writes to it need fence.proxy.async).
#include <array>
#include <string>
#include <utility>

#include "async_proxy_sm90.h"
#include "sync_sm90.h"
#include "tensor_map.h"

namespace emu {

// Calls visit(byte offset in the dense shared box, address of the global element or nullptr
// when it lies outside the tensor) for every element of the box at `coords`.
template <class Visit>
inline void walk_box(const TensorMap& m, const std::array<int32_t, 5>& coords, Visit&& visit) {
  uint32_t counts[5] = {1, 1, 1, 1, 1};
  uint64_t total = 1;
  for (int i = 0; i < m.rank; ++i) total *= counts[i] = m.traversed(i);
  for (uint64_t linear = 0; linear < total; ++linear) {
    uint64_t rest = linear, address = m.address;
    bool inside = true;
    for (int i = 0; i < m.rank; ++i) {
      const int64_t x = int64_t(coords[i]) + int64_t(rest % counts[i]) * m.step(i);
      rest /= counts[i];
      inside = inside && x >= 0 && uint64_t(x) < m.dims[i];
      address += uint64_t(x) * m.strides[i];
    }
    visit(size_t(linear) * m.element_bytes, inside ? reinterpret_cast<char*>(address) : nullptr);
  }
}

inline size_t swizzled(const TensorMap& m, size_t shared_address) {
  if (m.swizzle_bytes == 0) return shared_address;
  const size_t rows = m.swizzle_bytes / 16 - 1;  // 1, 3 or 7: which bits of the 128-byte row index
  return shared_address ^ (((shared_address >> 7) & rows) << 4);
}

// The checks every tensor copy makes; returns the shared offset of the box.
inline size_t check_tensor_copy(const TensorMap& m, int rank, const void* smem, const char* what) {
  if (rank != m.rank) {
    fail(std::string(what) + "." + std::to_string(rank) + "d with a rank-" + std::to_string(m.rank) +
         " tensor map (" + where() + ")");
  }
  if (m.interleave != CU_TENSOR_MAP_INTERLEAVE_NONE) fail(std::string(what) + ": interleaved maps are not emulated");
  const uint32_t inner = m.box[0] * m.element_bytes;
  if (m.swizzle_bytes != 0 && inner != m.swizzle_bytes) {
    fail(std::string(what) + ": a box " + std::to_string(inner) + " bytes wide under the " +
         std::to_string(m.swizzle_bytes) + "-byte swizzle is not emulated");
  }
  if (!in_shared_buffer(smem)) {
    fail(std::string(what) + " with a shared-memory box outside shared memory (" + where() + ")");
  }
  const size_t offset = shared_offset(smem, m.box_bytes(), what);
  if (offset % 128) {
    fail(std::string(what) + " with a shared-memory box at offset " + std::to_string(offset) +
         ", not 128-byte aligned (" + where() + ")");
  }
  return offset;
}

inline void tma_load(const void* desc, uint64_t* mbar, void* smem, const std::array<int32_t, 5>& coords, int rank) {
  const char* what = "cp.async.bulk.tensor load";
  const TensorMap m = tensor_map_at(desc, what);
  const size_t box = check_tensor_copy(m, rank, smem, what);
  if (m.oob_fill != CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) {
    fail(std::string(what) + ": the NaN out-of-bound fill is not emulated");
  }
  MBarrier& barrier = initialised_mbarrier(mbar, "cp.async.bulk.tensor complete_tx");
  walk_box(m, coords, [&](size_t, const char* g) {
    if (g != nullptr) check_global(g, m.element_bytes, false, "cp.async.bulk.tensor load source");
  });
  const int issuer = thread_id();
  // The landing writes are the issuer's as of the issue (race check); what the issuer does next
  // is not ordered before the mbarrier's waiters.
  const Clock issued = my_clock();
  const Access by{issuer, issued[issuer]};
  ++my_clock()[issuer];
  auto land = [m, coords, box, mbar, issuer, issued, by] {
    Runtime& r = rt();
    r.current = r.fibers[issuer].get();  // the transaction completes on behalf of the issuing thread
    walk_box(m, coords, [&](size_t offset, const char* g) {
      const size_t a = swizzled(m, box + offset);
      async_proxy_write(a, m.element_bytes, "cp.async.bulk.tensor load landing", by, issued);
      if (g != nullptr) {
        std::memcpy(r.smem + a, g, m.element_bytes);
      } else {
        std::memset(r.smem + a, 0, m.element_bytes);
      }
    });
    try {
      mbarrier_complete_tx(mbar, m.box_bytes(), &issued);
    } catch (const std::runtime_error& e) {
      fail(std::string(e.what()).substr(std::string("CUDA emulator: ").size()) + ": the whole box of a TMA load (" +
           std::to_string(m.box_bytes()) + " bytes, zero fill included)");
    }
  };
  if (rt().schedule.early_cp_async) {
    land();
  } else {
    barrier.deferred_tx.push_back(std::move(land));
  }
}

inline void tma_store(const void* desc, const void* smem, const std::array<int32_t, 5>& coords, int rank) {
  const char* what = "cp.async.bulk.tensor store";
  const TensorMap m = tensor_map_at(desc, what);
  const size_t box = check_tensor_copy(m, rank, smem, what);
  walk_box(m, coords, [&](size_t, const char* g) {
    if (g != nullptr) check_global(g, m.element_bytes, true, "cp.async.bulk.tensor store destination");
  });
  // The source is read through the async proxy: plain writes to it need fence.proxy.async.
  async_proxy_read(rt().smem + box, m.box_bytes(), "cp.async.bulk.tensor store source");
  auto read_and_write = [m, coords, box] {
    walk_box(m, coords, [&](size_t offset, char* g) {
      if (g != nullptr) std::memcpy(g, rt().smem + swizzled(m, box + offset), m.element_bytes);
    });
  };
  if (rt().schedule.early_cp_async) {
    read_and_write();
    rt().current->bulk_open.push_back([] {});
  } else {
    rt().current->bulk_open.push_back(std::move(read_and_write));
  }
}

inline void bulk_commit_group() {
  Fiber* f = rt().current;
  f->bulk_committed.push_back(std::move(f->bulk_open));
  f->bulk_open.clear();
}

inline void bulk_wait_group_read(size_t pending) {
  Fiber* f = rt().current;
  while (f->bulk_committed.size() > pending) {
    for (auto& store : f->bulk_committed.front()) store();
    f->bulk_committed.pop_front();
  }
}

inline void tma_prefetch(const void* desc, int rank) {
  const TensorMap m = tensor_map_at(desc, "cp.async.bulk.prefetch.tensor");
  if (rank != m.rank) fail("cp.async.bulk.prefetch.tensor." + std::to_string(rank) + "d with a rank-" +
                           std::to_string(m.rank) + " tensor map (" + where() + ")");
}

}  // namespace emu
