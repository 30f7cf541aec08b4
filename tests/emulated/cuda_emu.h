#pragma once
// Runs CUDA kernel sources on the CPU. Every thread of a CTA is a fiber (ucontext) on one OS
// thread, switched only at barriers, so the warp collectives the decode kernels use (shuffles,
// votes, ldmatrix, mma.sync) are emulated exactly as the PTX ISA defines them: each lane writes
// its operands to a slot, the warp meets at a barrier, each lane computes its result from all
// slots, and the warp meets again before the slots are reused. cp.async copies wait in their
// commit group until cp.async.wait_group retires it, so a read that comes before its wait sees
// stale shared memory. Shared and global memory are host memory; the emulator checks every
// ldmatrix and cp.async address and can count NaNs in the global chunks cp.async reads.
// It checks indexing and synchronisation order, not timing, memory-model races or hardware
// rounding.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <ucontext.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

namespace emu {

[[noreturn]] inline void fail(const std::string& what) { throw std::runtime_error("CUDA emulator: " + what); }

struct Barrier {
  int expected = 0, arrived = 0;
  uint64_t generation = 0;
};

struct Copy16 {
  void* dst;
  const void* src;
  bool valid;  // false: zero-fill without reading src
};

struct Fiber {
  ucontext_t context{};
  std::vector<char> stack;
  uint3 thread_idx{};
  bool done = false;
  std::string error;
  std::deque<std::vector<Copy16>> committed;  // cp.async groups, oldest first
  std::vector<Copy16> open_group;
};

struct Runtime {
  std::vector<std::unique_ptr<Fiber>> fibers;
  Fiber* current = nullptr;
  ucontext_t scheduler{};
  Barrier cta;
  std::vector<Barrier> warps;
  std::vector<std::array<uint64_t, 8>> slots;  // per thread
  uint64_t progress = 0;                       // barrier phases completed and fibers finished
  uint3 block_idx{}, block_dim{};
  unsigned char* smem = nullptr;
  size_t smem_bytes = 0;
  std::vector<std::pair<const char*, size_t>> global_reads;  // where cp.async may read
  std::function<size_t(const char*)> count_nans;             // in a 16-byte chunk cp.async reads
  size_t nans_read = 0;
  std::function<void()> kernel;
};

inline Runtime& rt() {
  static Runtime r;
  return r;
}

inline void yield() { swapcontext(&rt().current->context, &rt().scheduler); }

inline void barrier_wait(Barrier& b) {
  const uint64_t generation = b.generation;
  if (++b.arrived == b.expected) {
    b.arrived = 0;
    ++b.generation;
    ++rt().progress;
    return;
  }
  while (b.generation == generation) yield();
}

inline int thread_id() { return int(rt().current->thread_idx.x); }
inline int lane() { return thread_id() % 32; }
inline std::array<uint64_t, 8>& my_slot() { return rt().slots[thread_id()]; }
inline const std::array<uint64_t, 8>& lane_slot(int l) { return rt().slots[thread_id() / 32 * 32 + l]; }

// Between two warp barriers every lane's slot is final: `compute` may read them all.
template <class Compute>
inline void warp_exchange(Compute&& compute) {
  Barrier& warp = rt().warps[thread_id() / 32];
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
  swapcontext(&f->context, &rt().scheduler);
}

// Runs one CTA to completion; throws on a deadlock (a barrier some thread never reaches), an
// exception in any thread, or cp.async copies never waited for.
inline void run_cta(uint3 block_idx, int threads, const std::function<void()>& kernel) {
  Runtime& r = rt();
  r.block_idx = block_idx;
  r.block_dim = make_uint3(unsigned(threads), 1, 1);
  r.kernel = kernel;
  r.fibers.clear();
  r.cta = Barrier{threads};
  r.warps.assign((threads + 31) / 32, Barrier{32});
  r.slots.assign(threads, {});
  for (int t = 0; t < threads; ++t) {
    auto f = std::make_unique<Fiber>();
    f->stack.resize(256 << 10);
    f->thread_idx = make_uint3(unsigned(t), 0, 0);
    getcontext(&f->context);
    f->context.uc_stack.ss_sp = f->stack.data();
    f->context.uc_stack.ss_size = f->stack.size();
    makecontext(&f->context, fiber_main, 0);
    r.fibers.push_back(std::move(f));
  }
  for (bool live = true; live;) {
    const uint64_t before = r.progress;
    live = false;
    for (auto& f : r.fibers) {
      if (f->done) continue;
      live = true;
      r.current = f.get();
      swapcontext(&r.scheduler, &f->context);
    }
    for (auto& f : r.fibers) {
      if (!f->error.empty()) fail("thread " + std::to_string(f->thread_idx.x) + ": " + f->error);
    }
    if (live && r.progress == before) fail("deadlock: every live thread waits at a barrier");
  }
  for (auto& f : r.fibers) {
    if (!f->committed.empty() || !f->open_group.empty()) fail("cp.async copies never waited for");
  }
}

inline void check_shared(const void* p, size_t bytes, const char* what) {
  const auto* c = static_cast<const unsigned char*>(p);
  if (c < rt().smem || c + bytes > rt().smem + rt().smem_bytes) {
    fail(std::string(what) + " outside the dynamic shared memory");
  }
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) fail(std::string(what) + " not 16-byte aligned");
}

inline void land(const Copy16& c) {
  if (c.valid) {
    std::memcpy(c.dst, c.src, 16);
  } else {
    std::memset(c.dst, 0, 16);
  }
}

}  // namespace emu

// ---- the CUDA built-ins the kernels use
#define threadIdx (emu::rt().current->thread_idx)
#define blockIdx (emu::rt().block_idx)
#define blockDim (emu::rt().block_dim)

template <class A, class B>
inline std::common_type_t<A, B> min(A a, B b) { return a < b ? a : b; }
template <class A, class B>
inline std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }

template <class T>
inline T __ldg(const T* p) { return *p; }

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
inline void __syncwarp(unsigned = 0xffffffffu) { emu::barrier_wait(emu::rt().warps[emu::thread_id() / 32]); }
inline void __syncthreads() { emu::barrier_wait(emu::rt().cta); }
inline int __syncthreads_or(int predicate) {
  emu::my_slot()[1] = predicate != 0;
  emu::barrier_wait(emu::rt().cta);
  int any = 0;
  for (const auto& slot : emu::rt().slots) any |= int(slot[1]);
  emu::barrier_wait(emu::rt().cta);
  return any;
}
