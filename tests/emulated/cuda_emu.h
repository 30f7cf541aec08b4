#pragma once
// Runs CUDA kernel sources on the CPU, one CTA at a time. Every thread of a CTA is a fiber on
// one OS thread, switched only where a thread must wait for others (barriers and warp
// collectives), so the collectives are emulated exactly as the PTX ISA defines them: each lane
// writes its operands to a slot, the warp meets, each lane computes its result from all slots,
// and the warp meets again before the slots are reused.
//
// Besides running the kernels, the emulator checks them:
// - every access made by an emulated instruction (cp.async, ldmatrix, CuTe's UniversalCopy,
//   __ldg, atomicAdd) lies inside the launch's dynamic shared memory, inside a global buffer the
//   test registered (and not in a read-only one, for writes), or on the thread's own stack, and
//   is aligned to its size;
// - shared memory starts NaN-filled (0xff bytes) for every CTA; an emulated read of a 4-byte
//   word that nothing wrote is reported;
// - races: every thread carries a vector clock (the DJIT+/FastTrack happens-before relation),
//   joined where the PTX ISA orders memory between threads: __syncthreads, __syncwarp, named
//   barriers (bar.arrive releases, bar.sync releases and acquires) and mbarriers (an arrive
//   releases into the phase, a wait that sees the phase complete acquires it; sync_sm90.h).
//   Per shared-memory byte the emulator keeps the last writer and the readers since, each with
//   its own clock at the access. A write and another thread's read or write of the same byte
//   that no chain of barriers orders is reported, as is any access to the destination of a
//   cp.async that is still in flight;
// - deadlock: when every live thread waits, the error names each warp's wait;
// - schedules: threads run in increasing or decreasing order, and cp.async data lands when the
//   copy is issued or as late as legally possible (at the wait that retires its group), so an
//   access the emulator cannot see (plain C++ loads and stores) but that misses a barrier or a
//   wait changes the result between schedules.
// It checks indexing and synchronisation, not timing, the memory model's reorderings, the
// hardware's rounding of special functions or speed.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <setjmp.h>
#include <ucontext.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

namespace emu {
constexpr size_t kSharedMemoryBytes = 232448;  // H100/H200 opt-in maximum per block
}  // namespace emu

// The shared memory of the CTA being run, defined once per module (module.cpp), where each
// kernel's `extern __shared__` array is an alias of it.
extern "C" unsigned char emu_shared_memory[emu::kSharedMemoryBytes];

namespace emu {

[[noreturn]] inline void fail(const std::string& what) { throw std::runtime_error("CUDA emulator: " + what); }

// How a launch is scheduled (see the header comment).
struct Schedule {
  bool reverse_threads = false;  // run threads in decreasing order
  bool early_cp_async = false;   // cp.async (and TMA, tma_sm90.h) data lands at issue instead of at its wait
};

// A vector clock: per thread of the CTA, the last of its accesses that is ordered before.
using Clock = std::vector<uint32_t>;

// What a barrier that orders memory passes on: the join of the clocks released into the
// current generation (or phase), and that of the last completed one, which waiters acquire.
struct SyncClock {
  Clock accumulated, published;
  void publish() {
    published.swap(accumulated);
    accumulated.clear();
  }
};

struct Barrier {
  int expected = 0, arrived = 0;
  uint64_t generation = 0;
  const char* name = "";
  SyncClock clock;  // used by __syncthreads and __syncwarp, not by the other warp collectives
};

struct Copy16 {
  unsigned char* dst;
  const void* src;
  bool valid;  // false: zero-fill without reading src
};

struct Fiber {
  ucontext_t start{};
  jmp_buf context{};
  std::vector<char> stack;
  int id = 0;
  bool started = false, done = false;
  std::string error;
  Barrier* waiting = nullptr;  // the barrier this thread waits at, and its generation then
  uint64_t waiting_generation = 0;
  std::deque<std::vector<Copy16>> committed;  // cp.async groups, oldest first
  std::vector<Copy16> open_group;
  std::string blocked_on;  // a named-barrier or mbarrier wait, for the deadlock report
  // TMA stores (tma_sm90.h) by bulk async-group, oldest first: each reads shared memory when it runs.
  std::deque<std::vector<std::function<void()>>> bulk_committed;
  std::vector<std::function<void()>> bulk_open;
};

// An mbarrier (sync_sm90.h): arrivals still expected in the current phase, the transaction
// bytes still expected (may go negative before the matching expect_tx), the phase number.
struct MBarrier {
  bool initialised = false;
  uint32_t expected = 0, pending = 0, phase = 0;
  int64_t tx = 0;
  Barrier gate;  // its generation advances with the phase, to wake the waiting fibers
  Clock accumulated;            // arrivals (and transaction sources) of the current phase
  std::array<Clock, 2> completed;  // by parity: the join of the last completed phase of that parity
  std::vector<std::function<void()>> deferred_tx;  // TMA loads not landed yet (tma_sm90.h)
};

// One of the 16 named barriers (bar.sync / bar.arrive with an id and a thread count).
struct NamedBarrier {
  int expected = 0, arrived = 0;  // expected 0: idle
  Barrier gate;                   // its clock: bar.arrive and bar.sync release, bar.sync acquires
};

// A global buffer the kernels may touch.
struct Region {
  const char* base;
  size_t bytes;
  std::string name;
  bool writable;
};

// One access to a shared byte: the thread and its own clock at the time.
struct Access {
  int32_t thread = -1;  // -1: none
  uint32_t clock = 0;
};

// Per byte of shared memory: the last write and the reads since that no later read covers.
struct ByteState {
  static constexpr int kReaders = 4;
  Access writer;
  std::array<Access, kReaders> readers;
  int32_t more_readers = -1;    // beyond kReaders: index of a clock of all reads in Runtime::read_sets
  int32_t in_flight = -1;       // thread whose cp.async will write it, -1: none
  bool written = false;         // by an emulated write
  bool async_write = false;     // the last write came through the async proxy (async_proxy_sm90.h)
};

constexpr size_t kStackBytes = 256 << 10;

struct Runtime {
  std::vector<std::unique_ptr<Fiber>> fibers;  // a pool: stacks are reused across CTAs
  int threads = 0;
  Fiber* current = nullptr;
  jmp_buf scheduler{};
  Barrier cta;
  std::vector<Barrier> warps;                  // for warp collectives
  std::vector<Clock> clocks;                   // per thread
  std::vector<Clock> read_sets;                // per CTA: reads of bytes with more than kReaders readers
  std::vector<std::vector<uint32_t>> proxy_fences;  // per thread: its clock at each fence.proxy.async
  std::vector<std::array<uint64_t, 8>> slots;  // per thread
  uint64_t progress = 0;                       // barrier phases completed and threads finished
  uint3 block_idx{}, block_dim{}, grid_dim{};
  unsigned char* smem = emu_shared_memory;
  size_t smem_bytes = 0;                       // dynamic shared memory of the launch
  std::vector<ByteState> shadow = std::vector<ByteState>(kSharedMemoryBytes);
  std::vector<Region> regions;
  std::function<size_t(const char*)> count_nans;  // in a 16-byte chunk cp.async reads
  size_t nans_read = 0;
  Schedule schedule;
  std::function<void()> kernel;
  std::unordered_map<size_t, MBarrier> mbarriers;  // by shared offset, per CTA
  std::array<NamedBarrier, 16> named_barriers;
  // Other emulated units' per-CTA state (wgmma_sm90.h): reset as each CTA starts, checked once
  // every thread of it has exited.
  std::vector<void (*)()> on_cta_start, on_cta_end;
};

inline Runtime& rt() {
  static Runtime* r = new Runtime;  // never destroyed: fibers may outlive static destruction order
  return *r;
}

inline int thread_id() { return rt().current->id; }
inline int lane() { return thread_id() % 32; }
inline int warp_id() { return thread_id() / 32; }

// ---- fibers and barriers

inline void yield() {
  if (!_setjmp(rt().current->context)) _longjmp(rt().scheduler, 1);
}

inline void complete_generation(Barrier& b) {
  b.arrived = 0;
  ++b.generation;
  ++rt().progress;
  b.clock.publish();
}

inline void barrier_wait(Barrier& b) {
  Fiber* f = rt().current;
  const uint64_t generation = b.generation;
  if (++b.arrived == b.expected) return complete_generation(b);
  f->waiting = &b;
  f->waiting_generation = generation;
  while (b.generation == generation) yield();
  f->waiting = nullptr;
}

// ---- happens-before

inline Clock& my_clock() { return rt().clocks[thread_id()]; }

inline void join(Clock& into, const Clock& from) {
  if (into.size() < from.size()) into.resize(from.size(), 0);
  for (size_t t = 0; t < from.size(); ++t) into[t] = std::max(into[t], from[t]);
}

// Everything this thread did so far is ordered before whoever acquires `into`; what it does
// next is not (its own entry moves on).
inline void release(Clock& into) {
  join(into, my_clock());
  ++my_clock()[thread_id()];
}

inline void acquire(const Clock& from) { join(my_clock(), from); }

// Whether accesses of thread `observer` with clock `clock` are ordered after `a`.
inline bool ordered_after(const Access& a, int observer, const Clock& clock) {
  return a.thread == observer || clock[a.thread] >= a.clock;
}

// Whether the current thread's accesses from now on are ordered after `a`.
inline bool ordered_after(const Access& a) { return ordered_after(a, thread_id(), my_clock()); }

// A barrier all its threads wait at (__syncthreads, __syncwarp): release, meet, acquire.
inline void ordering_barrier_wait(Barrier& b) {
  release(b.clock.accumulated);
  barrier_wait(b);
  acquire(b.clock.published);
}

inline std::array<uint64_t, 8>& my_slot() { return rt().slots[thread_id()]; }
inline const std::array<uint64_t, 8>& lane_slot(int l) { return rt().slots[warp_id() * 32 + l]; }

// Between two warp barriers every lane's slot is final: `compute` may read them all.
template <class Compute>
inline void warp_exchange(Compute&& compute) {
  Barrier& warp = rt().warps[warp_id()];
  barrier_wait(warp);
  compute();
  barrier_wait(warp);
}

inline void fiber_main() {
  Fiber* f = rt().current;
  try {
    rt().kernel();
  } catch (const std::exception& e) {
    f->error = e.what();
  }
  f->done = true;
  ++rt().progress;
  // An exited thread no longer counts at __syncthreads (as on the hardware).
  Barrier& cta = rt().cta;
  if (--cta.expected > 0 && cta.arrived == cta.expected) complete_generation(cta);
  _longjmp(rt().scheduler, 1);
}

inline void start_fiber() { fiber_main(); }

inline std::string describe_deadlock() {
  Runtime& r = rt();
  std::string out = "deadlock: every live thread waits;";
  for (int w = 0; w * 32 < r.threads; ++w) {
    int done = 0, cta = 0, warp = 0, other = 0;
    std::string first_other;
    for (int t = w * 32; t < std::min(r.threads, w * 32 + 32); ++t) {
      const Fiber& f = *r.fibers[t];
      done += f.done;
      cta += !f.done && f.waiting == &r.cta;
      warp += !f.done && f.waiting == &r.warps[w];
      if (!f.done && !f.blocked_on.empty() && other++ == 0) first_other = "thread " + std::to_string(t) + f.blocked_on;
    }
    out += " warp " + std::to_string(w) + ": " + std::to_string(cta) + " at __syncthreads, " +
           std::to_string(warp) + " at a warp collective or __syncwarp, " + std::to_string(done) + " exited";
    if (other) out += ", " + std::to_string(other) + " at a named barrier or mbarrier (" + first_other + ")";
    out += ";";
  }
  return out;
}

// TMA loads not landed yet (tma_sm90.h, late schedule) land when no thread can move without
// them: the latest point the PTX ISA allows. Returns whether there were any.
inline bool land_deferred_tx() {
  bool any = false;
  for (auto& [offset, m] : rt().mbarriers) {
    auto work = std::move(m.deferred_tx);
    m.deferred_tx.clear();
    for (auto& land : work) land();
    // Its waiters look again (and say afresh what they wait for) even if the phase did not complete.
    if (!work.empty()) ++m.gate.generation;
    any = any || !work.empty();
  }
  return any;
}

// Runs one CTA to completion; throws on a deadlock, an exception in any thread, or cp.async
// copies never waited for.
inline void run_cta(uint3 block_idx, int threads) {
  Runtime& r = rt();
  r.block_idx = block_idx;
  r.threads = threads;
  r.cta = Barrier{threads, 0, 0, "__syncthreads"};
  r.warps.assign((threads + 31) / 32, Barrier{32, 0, 0, "warp"});
  r.clocks.resize(threads);
  for (int t = 0; t < threads; ++t) {
    r.clocks[t].assign(threads, 0);
    r.clocks[t][t] = 1;  // accesses carry clock >= 1, so a zero entry orders nothing
  }
  r.read_sets.clear();
  r.proxy_fences.assign(threads, {});
  r.slots.assign(threads, {});
  r.mbarriers.clear();
  r.named_barriers = {};
  for (auto hook : r.on_cta_start) hook();
  while (int(r.fibers.size()) < threads) {
    r.fibers.push_back(std::make_unique<Fiber>());
    r.fibers.back()->stack.resize(kStackBytes);
  }
  for (int t = 0; t < threads; ++t) {
    Fiber& f = *r.fibers[t];
    f.id = t;
    f.started = f.done = false;
    f.error.clear();
    f.waiting = nullptr;
    f.committed.clear();
    f.open_group.clear();
    f.blocked_on.clear();
    f.bulk_committed.clear();
    f.bulk_open.clear();
  }
  ucontext_t here;
  for (bool live = true; live;) {
    const uint64_t before = r.progress;
    live = false;
    for (int i = 0; i < threads; ++i) {
      Fiber& f = *r.fibers[r.schedule.reverse_threads ? threads - 1 - i : i];
      if (f.done) continue;
      live = true;
      if (f.waiting != nullptr && f.waiting->generation == f.waiting_generation) continue;  // still blocked
      r.current = &f;
      if (!_setjmp(r.scheduler)) {
        if (f.started) _longjmp(f.context, 1);
        f.started = true;
        getcontext(&f.start);
        f.start.uc_stack.ss_sp = f.stack.data();
        f.start.uc_stack.ss_size = f.stack.size();
        f.start.uc_link = nullptr;
        makecontext(&f.start, start_fiber, 0);
        swapcontext(&here, &f.start);
      }
      // The emulator's own errors already say where; anything else (a CuTe assertion) gets the thread.
      if (f.error.rfind("CUDA emulator: ", 0) == 0) throw std::runtime_error(f.error);
      if (!f.error.empty()) fail("block (" + std::to_string(block_idx.x) + "," + std::to_string(block_idx.y) + "," +
                                 std::to_string(block_idx.z) + ") thread " + std::to_string(f.id) + ": " + f.error);
    }
    if (live && r.progress == before && !land_deferred_tx()) fail(describe_deadlock());
  }
  for (auto hook : r.on_cta_end) hook();
  for (int t = 0; t < threads; ++t) {
    if (!r.fibers[t]->committed.empty() || !r.fibers[t]->open_group.empty()) {
      fail("thread " + std::to_string(t) + " exited with cp.async copies never waited for");
    }
    bool stores = !r.fibers[t]->bulk_open.empty();
    for (const auto& group : r.fibers[t]->bulk_committed) stores = stores || !group.empty();
    if (stores) {
      fail("thread " + std::to_string(t) + " exited with TMA stores whose shared-memory reads it never waited for");
    }
  }
  for (const auto& [offset, m] : r.mbarriers) {
    if (!m.deferred_tx.empty()) {
      fail("the CTA exited with TMA loads completing on the mbarrier at shared offset " + std::to_string(offset) +
           " that no thread waited for");
    }
  }
}

// ---- memory checks

inline bool on_own_stack(const void* p) {
  const char* c = static_cast<const char*>(p);
  const auto& stack = rt().current->stack;
  return c >= stack.data() && c < stack.data() + stack.size();
}

inline bool in_shared_buffer(const void* p) {
  const auto* c = static_cast<const unsigned char*>(p);
  return c >= rt().smem && c < rt().smem + kSharedMemoryBytes;
}

inline std::string where() {
  return "thread " + std::to_string(thread_id()) + " of block (" + std::to_string(rt().block_idx.x) + "," +
         std::to_string(rt().block_idx.y) + "," + std::to_string(rt().block_idx.z) + ")";
}

inline size_t shared_offset(const void* p, size_t bytes, const char* what) {
  const size_t offset = size_t(static_cast<const unsigned char*>(p) - rt().smem);
  if (offset + bytes > rt().smem_bytes) {
    fail(std::string(what) + " of " + std::to_string(bytes) + " bytes at shared offset " + std::to_string(offset) +
         " outside the launch's " + std::to_string(rt().smem_bytes) + " bytes of dynamic shared memory (" + where() +
         ")");
  }
  return offset;
}

inline void check_alignment(const void* p, size_t align, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % align != 0) {
    fail(std::string(what) + " at an address not aligned to " + std::to_string(align) + " bytes (" + where() + ")");
  }
}

inline void check_global(const void* p, size_t bytes, bool write, const char* what) {
  const char* c = static_cast<const char*>(p);
  for (const Region& region : rt().regions) {
    if (c >= region.base && c + bytes <= region.base + region.bytes) {
      if (write && !region.writable) fail(std::string(what) + " writes into read-only " + region.name + " (" + where() + ")");
      return;
    }
  }
  fail(std::string(what) + " of " + std::to_string(bytes) + " bytes outside every global buffer (" + where() + ")");
}

[[noreturn]] inline void race(const char* what, size_t offset, const char* other, int32_t thread) {
  fail(std::string("shared-memory race: ") + what + " at shared offset " + std::to_string(offset) + " by " + where() +
       " and " + other + (thread >= 0 ? " by thread " + std::to_string(thread) : std::string(" by several threads")) +
       " with no barrier between them");
}

inline Access this_access() { return Access{thread_id(), my_clock()[thread_id()]}; }

// Records a read in the byte's read set, dropping the reads this one is ordered after (a write
// ordered after this read is then ordered after them too).
inline void record_read(ByteState& s) {
  Runtime& r = rt();
  const Access me = this_access();
  if (s.more_readers >= 0) {
    Clock& reads = r.read_sets[s.more_readers];
    reads[me.thread] = std::max(reads[me.thread], me.clock);
    return;
  }
  int kept = 0;
  for (const Access& a : s.readers) {
    if (a.thread >= 0 && !ordered_after(a)) s.readers[kept++] = a;
  }
  if (kept < ByteState::kReaders) {
    s.readers[kept++] = me;
    for (int i = kept; i < ByteState::kReaders; ++i) s.readers[i] = Access{};
    return;
  }
  // Many unordered readers (a value every thread reads): keep them all as one clock.
  Clock reads(r.threads, 0);
  for (const Access& a : s.readers) reads[a.thread] = a.clock;
  reads[me.thread] = me.clock;
  s.readers.fill(Access{});
  s.more_readers = int32_t(r.read_sets.size());
  r.read_sets.push_back(std::move(reads));
}

// The first read of the byte's read set that the current thread is not ordered after, if any.
inline std::optional<int32_t> unordered_reader(const ByteState& s) {
  for (const Access& a : s.readers) {
    if (a.thread >= 0 && !ordered_after(a)) return a.thread;
  }
  if (s.more_readers >= 0) {
    const Clock& reads = rt().read_sets[s.more_readers];
    for (int32_t t = 0; t < int32_t(reads.size()); ++t) {
      if (reads[t] != 0 && !ordered_after(Access{t, reads[t]})) return t;
    }
  }
  return std::nullopt;
}

// An emulated read of `bytes` shared bytes: in bounds, written, and ordered after their writer.
inline void shared_read(const void* p, size_t bytes, const char* what) {
  Runtime& r = rt();
  const size_t offset = shared_offset(p, bytes, what);
  const int me = thread_id();
  for (size_t i = offset; i < offset + bytes; ++i) {
    ByteState& s = r.shadow[i];
    if (s.in_flight >= 0) {
      if (s.in_flight == me) fail(std::string(what) + " reads the destination of its own cp.async before the wait (" + where() + ")");
      race(what, i, "a cp.async still in flight", s.in_flight);
    }
    if (s.writer.thread >= 0 && !ordered_after(s.writer)) race(what, i, "a write", s.writer.thread);
    record_read(s);
  }
  // Never written: every byte of a whole 4-byte word still holds the 0xff fill.
  for (size_t word = offset / 4 * 4; word < offset + bytes; word += 4) {
    bool fill = true;
    for (size_t i = word; i < word + 4 && i < r.smem_bytes; ++i) fill = fill && !r.shadow[i].written && r.smem[i] == 0xff;
    if (fill) fail(std::string(what) + " reads shared offset " + std::to_string(word) + ", which no thread wrote (" + where() + ")");
  }
}

// An emulated write: ordered after every earlier access of other threads.
inline void shared_write(const void* p, size_t bytes, const char* what, bool from_cp_async = false) {
  Runtime& r = rt();
  const size_t offset = shared_offset(p, bytes, what);
  const int me = thread_id();
  for (size_t i = offset; i < offset + bytes; ++i) {
    ByteState& s = r.shadow[i];
    if (s.in_flight >= 0 && !(from_cp_async && s.in_flight == me)) race(what, i, "a cp.async still in flight", s.in_flight);
    if (s.writer.thread >= 0 && !ordered_after(s.writer)) race(what, i, "a write", s.writer.thread);
    if (const auto reader = unordered_reader(s)) race(what, i, "a read", *reader);
    s.writer = this_access();
    s.readers.fill(Access{});
    s.more_readers = -1;
    s.written = true;
    s.async_write = false;
  }
}

// Global or shared (or the thread's own registers, unchecked) by address.
inline void emulated_read(const void* p, size_t bytes, const char* what) {
  check_alignment(p, bytes, what);
  if (in_shared_buffer(p)) return shared_read(p, bytes, what);
  if (!on_own_stack(p)) check_global(p, bytes, false, what);
}

inline void emulated_write(const void* p, size_t bytes, const char* what) {
  check_alignment(p, bytes, what);
  if (in_shared_buffer(p)) return shared_write(p, bytes, what);
  if (!on_own_stack(p)) check_global(p, bytes, true, what);
}

// ---- cp.async

inline void land(const Copy16& c) {
  // The issuing thread's wait orders the landing; the write itself is checked against others.
  for (size_t i = 0; i < 16; ++i) rt().shadow[size_t(c.dst - rt().smem) + i].in_flight = -1;
  shared_write(c.dst, 16, "cp.async landing", true);
  if (c.valid) {
    std::memcpy(c.dst, c.src, 16);
  } else {
    std::memset(c.dst, 0, 16);
  }
}

inline void cp_async_issue(void* smem_dst, const void* gmem_src, bool valid) {
  check_alignment(smem_dst, 16, "cp.async destination");
  if (!in_shared_buffer(smem_dst)) fail("cp.async destination outside shared memory (" + where() + ")");
  const size_t offset = shared_offset(smem_dst, 16, "cp.async destination");
  if (valid) {
    check_alignment(gmem_src, 16, "cp.async source");
    check_global(gmem_src, 16, false, "cp.async source");
    if (rt().count_nans) rt().nans_read += rt().count_nans(static_cast<const char*>(gmem_src));
  }
  // The copy may land any time until its wait: from now on no other thread may touch these bytes.
  shared_write(smem_dst, 16, "cp.async issue", true);
  const Copy16 copy{static_cast<unsigned char*>(smem_dst), gmem_src, valid};
  if (rt().schedule.early_cp_async) {
    land(copy);
    // Still in flight for the checks until the wait retires it.
  }
  for (size_t i = 0; i < 16; ++i) rt().shadow[offset + i].in_flight = thread_id();
  rt().current->open_group.push_back(copy);
}

inline void cp_async_commit() {
  Fiber* f = rt().current;
  f->committed.push_back(std::move(f->open_group));
  f->open_group.clear();
}

inline void cp_async_wait_groups(size_t pending) {
  Fiber* f = rt().current;
  while (f->committed.size() > pending) {
    for (const Copy16& c : f->committed.front()) {
      if (rt().schedule.early_cp_async) {
        for (size_t i = 0; i < 16; ++i) rt().shadow[size_t(c.dst - rt().smem) + i].in_flight = -1;
      } else {
        land(c);
      }
    }
    f->committed.pop_front();
  }
}

// ---- launches

// Runs every CTA of grid x block with `smem_bytes` of dynamic shared memory, calling `kernel`
// in every thread. Shared memory is refilled with 0xff bytes (NaN) before each CTA.
inline void launch(dim3 grid, dim3 block, size_t smem_bytes, std::function<void()> kernel) {
  Runtime& r = rt();
  if (smem_bytes > kSharedMemoryBytes) {
    fail("a launch asks for " + std::to_string(smem_bytes) + " bytes of dynamic shared memory; an H100 has " +
         std::to_string(kSharedMemoryBytes));
  }
  const int threads = int(block.x * block.y * block.z);
  if (threads <= 0 || threads > 1024 || block.y != 1 || block.z != 1) fail("blocks must be 1-D with 1..1024 threads");
  if (grid.y > 65535 || grid.z > 65535) fail("grid.y and grid.z must be at most 65535");
  r.block_dim = make_uint3(block.x, block.y, block.z);
  r.grid_dim = make_uint3(grid.x, grid.y, grid.z);
  r.smem_bytes = smem_bytes;
  r.kernel = std::move(kernel);
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        std::memset(r.smem, 0xff, kSharedMemoryBytes);
        std::fill(r.shadow.begin(), r.shadow.begin() + std::max<size_t>(smem_bytes, 1), ByteState{});
        run_cta(make_uint3(x, y, z), threads);
      }
    }
  }
}

}  // namespace emu

// ---- the CUDA built-ins the kernels use

// Defines a kernel's `extern __shared__` array as an alias of the emulator's shared memory.
#define EMU_SHARED_MEMORY_ALIAS(type, name) extern type name[] __attribute__((alias("emu_shared_memory")));

#define threadIdx (make_uint3(unsigned(emu::rt().current->id), 0u, 0u))
#define blockIdx (emu::rt().block_idx)
#define blockDim (emu::rt().block_dim)
#define gridDim (emu::rt().grid_dim)

// CUDA's overload set of min/max (non-templates, so they win over cute::min/max as under nvcc).
#define EMU_MIN_MAX(A, B, R)                                    \
  inline R min(A a, B b) { return std::min<R>(a, b); } \
  inline R max(A a, B b) { return std::max<R>(a, b); }
EMU_MIN_MAX(int, int, int)
EMU_MIN_MAX(unsigned, unsigned, unsigned)
EMU_MIN_MAX(int, unsigned, unsigned)
EMU_MIN_MAX(unsigned, int, unsigned)
EMU_MIN_MAX(long, long, long)
EMU_MIN_MAX(unsigned long, unsigned long, unsigned long)
EMU_MIN_MAX(long, unsigned long, unsigned long)
EMU_MIN_MAX(unsigned long, long, unsigned long)
EMU_MIN_MAX(long long, long long, long long)
EMU_MIN_MAX(unsigned long long, unsigned long long, unsigned long long)
EMU_MIN_MAX(long long, unsigned long long, unsigned long long)
EMU_MIN_MAX(unsigned long long, long long, unsigned long long)
EMU_MIN_MAX(float, float, float)
EMU_MIN_MAX(double, double, double)
EMU_MIN_MAX(float, double, double)
EMU_MIN_MAX(double, float, double)
#undef EMU_MIN_MAX

// Device intrinsics that CUTLASS names in templates the kernels never instantiate; defined per
// the PTX ISA (dp4a, prmt, fma.rn.f16x2) so the templates compile as host code.
inline int __dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; ++i) c += int(int8_t(a >> (8 * i))) * int(int8_t(b >> (8 * i)));
  return c;
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned selector) {
  const uint64_t bytes = uint64_t(x) | (uint64_t(y) << 32);
  unsigned out = 0;
  for (int i = 0; i < 4; ++i) out |= unsigned((bytes >> (8 * ((selector >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return out;
}
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
  return __half2(__float2half(__half2float(a.x) * __half2float(b.x) + __half2float(c.x)),
                 __float2half(__half2float(a.y) * __half2float(b.y) + __half2float(c.y)));
}

template <class T>
inline T __ldg(const T* p) {
  emu::check_alignment(p, sizeof(T), "__ldg");
  emu::check_global(p, sizeof(T), false, "__ldg");
  return *p;
}

inline float atomicAdd(float* address, float value) {
  emu::check_alignment(address, 4, "atomicAdd");
  emu::check_global(address, 4, true, "atomicAdd");
  const float old = *address;
  *address = old + value;
  return old;
}

template <class T>
inline T emu_shuffle(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8);
  if (mask != 0xffffffffu) emu::fail("only full-warp shuffles are emulated");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  emu::my_slot()[0] = bits;
  T out{};
  emu::warp_exchange([&] { std::memcpy(&out, &emu::lane_slot(src & 31)[0], sizeof(T)); });
  return out;
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src) { return emu_shuffle(mask, v, src); }
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) { return emu_shuffle(mask, v, emu::lane() ^ lane_mask); }

inline int __any_sync(unsigned, int predicate) {
  emu::my_slot()[0] = predicate != 0;
  int any = 0;
  emu::warp_exchange([&] {
    for (int l = 0; l < 32; ++l) any |= int(emu::lane_slot(l)[0]);
  });
  return any;
}
inline void __syncwarp(unsigned = 0xffffffffu) { emu::ordering_barrier_wait(emu::rt().warps[emu::warp_id()]); }
inline void __syncthreads() { emu::ordering_barrier_wait(emu::rt().cta); }
inline int __syncthreads_or(int predicate) {
  emu::my_slot()[1] = predicate != 0;
  emu::ordering_barrier_wait(emu::rt().cta);
  int any = 0;
  for (int t = 0; t < emu::rt().threads; ++t) any |= !emu::rt().fibers[t]->done && int(emu::rt().slots[t][1]);
  emu::barrier_wait(emu::rt().cta);
  return any;
}
