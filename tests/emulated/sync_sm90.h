#pragma once
// Hopper's thread synchronisation as the PTX ISA defines it, for the emulated CUTLASS barrier
// and cluster headers (include/cutlass/arch/barrier.h, include/cute/arch/cluster_sm90.hpp):
// - mbarrier: init with an arrival count; each phase completes when its pending arrivals and
//   its transaction bytes (expect_tx adds, complete_tx removes; the count may dip below zero
//   until the matching expect_tx) both reach zero; try_wait.parity(p) succeeds once the phase
//   of parity p has completed, i.e. while the current phase's parity differs from p.
// - named barriers bar.sync / bar.arrive with an id (0 is __syncthreads) and a thread count.
// - elect.sync over a full warp elects lane 0.
// Reported: use before init, a second init, arrival counts and transaction bytes that cannot
// match, thread counts that disagree at one named barrier, and (as deadlocks) every wait that
// can never complete, naming the barrier, the parity awaited and what it still expects.
// Memory order (the race check's vector clocks, cuda_emu.h): an mbarrier arrive releases into
// the current phase, as does a complete_tx with the clock of the copy's issuer; a wait that
// finds the phase of its parity complete acquires that phase. bar.arrive releases; bar.sync
// releases and, once the barrier completes, acquires what every arrival released.
#include <cstdint>
#include <string>

#include "cuda_emu.h"

namespace emu {

inline size_t mbarrier_offset(const void* bar) {
  check_alignment(bar, 8, "mbarrier");
  if (!in_shared_buffer(bar)) fail("mbarrier outside shared memory (" + where() + ")");
  return shared_offset(bar, 8, "mbarrier");
}

inline std::string describe(size_t offset, const MBarrier& m) {
  return "mbarrier at shared offset " + std::to_string(offset) + " (phase " + std::to_string(m.phase) + ", " +
         std::to_string(m.pending) + " of " + std::to_string(m.expected) + " arrivals and " + std::to_string(m.tx) +
         " transaction bytes outstanding)";
}

inline MBarrier& initialised_mbarrier(const void* bar, const char* what) {
  const size_t offset = mbarrier_offset(bar);
  MBarrier& m = rt().mbarriers[offset];
  if (!m.initialised) {
    fail(std::string(what) + " on the mbarrier at shared offset " + std::to_string(offset) +
         " before its init (" + where() + ")");
  }
  return m;
}

inline void complete_phase_if_done(MBarrier& m) {
  if (m.pending != 0 || m.tx != 0) return;
  m.completed[m.phase & 1u].swap(m.accumulated);
  m.accumulated.clear();
  ++m.phase;
  m.pending = m.expected;
  ++m.gate.generation;
  ++rt().progress;
}

inline void mbarrier_init(const void* bar, uint32_t count) {
  const size_t offset = mbarrier_offset(bar);
  if (count == 0 || count >= (1u << 20)) {
    fail("mbarrier init with " + std::to_string(count) + " arrivals (1 .. 2^20 - 1) (" + where() + ")");
  }
  MBarrier& m = rt().mbarriers[offset];
  if (m.initialised) fail("second init of the " + describe(offset, m) + " without an invalidate (" + where() + ")");
  m = MBarrier{};
  m.initialised = true;
  m.expected = m.pending = count;
}

inline void mbarrier_invalidate(const void* bar) {
  initialised_mbarrier(bar, "invalidate").initialised = false;
}

inline void mbarrier_expect_tx(const void* bar, uint32_t bytes) {
  MBarrier& m = initialised_mbarrier(bar, "expect_tx");
  m.tx += bytes;
}

inline void mbarrier_arrive(const void* bar) {
  MBarrier& m = initialised_mbarrier(bar, "arrive");
  if (m.pending == 0) {
    fail("arrive on the " + describe(mbarrier_offset(bar), m) +
         ": every expected arrival of this phase has happened and it waits for its bytes (" + where() + ")");
  }
  release(m.accumulated);
  --m.pending;
  complete_phase_if_done(m);
}

// `source`: the clock of the thread whose asynchronous copy wrote the bytes, as of its issue;
// waiters of the phase are ordered after that copy. Null: the calling thread's own clock.
inline void mbarrier_complete_tx(const void* bar, uint32_t bytes, const Clock* source = nullptr) {
  MBarrier& m = initialised_mbarrier(bar, "complete_tx");
  if (source) {
    join(m.accumulated, *source);
  } else {
    release(m.accumulated);
  }
  m.tx -= bytes;
  // With every arrival in, no expect_tx can come to balance a negative count this phase.
  if (m.pending == 0 && m.tx < 0) {
    fail("complete_tx of " + std::to_string(bytes) + " bytes exceeds what the " +
         describe(mbarrier_offset(bar), m) + " was told to expect (" + where() + ")");
  }
  complete_phase_if_done(m);
}

inline bool mbarrier_phase_done(const MBarrier& m, uint32_t parity) { return (m.phase & 1u) != (parity & 1u); }

// A wait that found the phase of `parity` complete: ordered after everything released into it.
inline bool acquire_phase(const MBarrier& m, uint32_t parity) {
  acquire(m.completed[parity & 1u]);
  return true;
}

// Suspends the calling thread until `gate` moves on; `note` says what it waits for if it never does.
inline void block_on(Barrier& gate, std::string note) {
  Fiber* f = rt().current;
  f->blocked_on = std::move(note);
  f->waiting = &gate;
  f->waiting_generation = gate.generation;
  yield();
  f->waiting = nullptr;
  f->blocked_on.clear();
}

inline std::string parity_note(const char* verb, const void* bar, const MBarrier& m, uint32_t parity) {
  return std::string(" ") + verb + " for parity " + std::to_string(parity & 1u) + " of the " +
         describe(mbarrier_offset(bar), m);
}

inline bool mbarrier_test_wait(const void* bar, uint32_t parity) {
  const MBarrier& m = initialised_mbarrier(bar, "test_wait");
  if (mbarrier_phase_done(m, parity)) return acquire_phase(m, parity);
  yield();  // a spin on test_wait must let the others run (and be seen if it never ends)
  return false;
}

inline void mbarrier_wait(const void* bar, uint32_t parity) {
  MBarrier& m = initialised_mbarrier(bar, "wait");
  while (!mbarrier_phase_done(m, parity)) block_on(m.gate, parity_note("waits", bar, m, parity));
  acquire_phase(m, parity);
}

// try_wait may suspend for a while before it answers: here, until the barrier moves on.
inline bool mbarrier_try_wait(const void* bar, uint32_t parity) {
  MBarrier& m = initialised_mbarrier(bar, "try_wait");
  if (mbarrier_phase_done(m, parity)) return acquire_phase(m, parity);
  block_on(m.gate, parity_note("try_waits", bar, m, parity));
  return mbarrier_phase_done(m, parity) && acquire_phase(m, parity);
}

inline NamedBarrier& named_barrier(uint32_t id, uint32_t threads, const char* what) {
  if (id == 0 || id >= 16) {
    fail(std::string(what) + " on named barrier " + std::to_string(id) + " (1 .. 15; 0 is __syncthreads) (" +
         where() + ")");
  }
  if (threads == 0 || threads % 32 || int(threads) > rt().threads) {
    fail(std::string(what) + " with " + std::to_string(threads) + " threads: a multiple of 32 up to the block's " +
         std::to_string(rt().threads) + " (" + where() + ")");
  }
  NamedBarrier& b = rt().named_barriers[id];
  if (b.expected == 0) b.expected = int(threads);
  if (b.expected != int(threads)) {
    fail(std::string(what) + " on named barrier " + std::to_string(id) + " counts " + std::to_string(threads) +
         " threads while others at it count " + std::to_string(b.expected) + " (" + where() + ")");
  }
  return b;
}

inline bool named_barrier_arrive_one(NamedBarrier& b) {
  release(b.gate.clock.accumulated);
  if (++b.arrived < b.expected) return false;
  b.arrived = b.expected = 0;
  ++b.gate.generation;
  ++rt().progress;
  b.gate.clock.publish();
  return true;
}

inline void named_barrier_arrive(uint32_t id, uint32_t threads) {
  named_barrier_arrive_one(named_barrier(id, threads, "bar.arrive"));
}

inline void named_barrier_sync(uint32_t id, uint32_t threads) {
  NamedBarrier& b = named_barrier(id, threads, "bar.sync");
  const uint64_t generation = b.gate.generation;
  if (!named_barrier_arrive_one(b)) {
    while (b.gate.generation == generation) {
      block_on(b.gate, " waits at named barrier " + std::to_string(id) + " for " + std::to_string(threads) + " threads");
    }
  }
  acquire(b.gate.clock.published);
}

// elect.sync with a full mask: every lane of the warp takes part; lane 0 is elected.
inline bool elect_one() {
  warp_exchange([] {});
  return lane() == 0;
}

}  // namespace emu
