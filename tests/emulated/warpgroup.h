#pragma once
// Warpgroup collectives: the four warps 4w..4w+3 (threads 128w..128w+127) of a CTA that Hopper's
// .sync.aligned warpgroup instructions (wgmma.*, setmaxnreg) require to execute the same
// instruction together. Each thread names the instruction it executes and leaves its operands
// in its slot; the last of the 128 to arrive checks that all named the same instruction, then
// performs it for the whole warpgroup from all slots (writing each thread's results through the
// pointers it left) before any of them continues. A warpgroup whose threads meet at different
// instructions is reported with who executed what; one whose threads never all arrive (a warp
// skipped the instruction or exited) is reported as a deadlock naming the instruction waited at.
#include <algorithm>
#include <array>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda_emu.h"
#include "sync_sm90.h"

namespace emu {

constexpr int kWarpgroupThreads = 128;

// A wgmma.mma_async issued by a warpgroup and not yet retired by wgmma.wait_group.
struct WgmmaInFlight {
  std::string instruction;
  std::vector<uint32_t> smem_offsets;  // every 2-byte element it read, as read at issue
  std::vector<uint16_t> smem_values;
  std::vector<std::pair<float*, float>> results;  // each thread's D registers and their values
  std::vector<std::pair<const uint32_t*, uint32_t>> a_registers;  // RS: each thread's A, as at issue
};

// What a thread leaves at a warpgroup wgmma.mma_async.
struct WgmmaOperands {
  uint64_t desc_a = 0, desc_b = 0;  // shared-memory matrix descriptors (desc_a: SS only)
  const uint32_t* a[4] = {};        // the A fragment's registers (RS only)
  int scale_d = 1;
  std::array<float*, 128> d{};      // the D (= C) registers, up to N = 256
};

struct Warpgroup {
  Barrier gate;
  int arrived = 0;
  std::array<std::string, kWarpgroupThreads> instruction;
  std::array<WgmmaOperands, kWarpgroupThreads> wgmma;
  // wgmma.commit_group closes the open batch; wait_group N retires the oldest groups.
  std::vector<WgmmaInFlight> open;
  std::deque<std::vector<WgmmaInFlight>> committed;
  // D registers of in-flight wgmmas: the value they will receive, and how many in-flight
  // wgmmas still write them (a later wgmma of the same batch accumulates onto the value).
  struct Pending {
    float value;
    int writers;
  };
  std::unordered_map<float*, Pending> pending;
  int registers = 0;  // per thread, as the launch granted or setmaxnreg left it (setmaxnreg.h)
};

// Per CTA: its warpgroups and the registers setmaxnreg.dec released and .inc not yet took back.
struct WarpgroupState {
  std::vector<Warpgroup> groups;
  int pool = 0;
  Barrier pool_gate;  // moves on whenever registers return to the pool
};

inline WarpgroupState& warpgroups() {
  static WarpgroupState* state = new WarpgroupState;
  return *state;
}

// setmaxnreg's starting point: a launch of __launch_bounds__(threads, 1) grants every thread an
// equal share of the SM's 64K registers, in steps of 8, at most setmaxnreg's 256.
inline int launch_registers_per_thread() { return std::min(256, 65536 / rt().threads / 8 * 8); }

// Per CTA: fresh warpgroups, an empty register pool.
inline void start_warpgroups() {
  WarpgroupState& s = warpgroups();
  s.groups.assign(rt().threads / kWarpgroupThreads, Warpgroup{});
  for (Warpgroup& g : s.groups) g.registers = launch_registers_per_thread();
  s.pool = 0;
}

inline const bool warpgroups_registered = (rt().on_cta_start.push_back(&start_warpgroups), true);

inline int warpgroup_id() { return thread_id() / kWarpgroupThreads; }
inline int warpgroup_lane() { return thread_id() % kWarpgroupThreads; }

inline Warpgroup& my_warpgroup() {
  const int w = warpgroup_id();
  if ((w + 1) * kWarpgroupThreads > rt().threads) {
    fail("a warpgroup instruction in thread " + std::to_string(thread_id()) + " of a block of " +
         std::to_string(rt().threads) + " threads: warpgroups are 128 whole threads");
  }
  return warpgroups().groups[w];
}

inline std::string mismatch(const Warpgroup& g, int w) {
  std::string out = "warpgroup " + std::to_string(w) + " meets at different instructions:";
  for (int t = 0; t < kWarpgroupThreads;) {
    int end = t;
    while (end + 1 < kWarpgroupThreads && g.instruction[end + 1] == g.instruction[t]) ++end;
    out += " threads " + std::to_string(w * kWarpgroupThreads + t) + "-" + std::to_string(w * kWarpgroupThreads + end) +
           " at " + g.instruction[t] + ";";
    t = end + 1;
  }
  return out;
}

// The calling thread, its slot filled, executes `instruction` with its warpgroup: `perform` runs
// once, by the last thread to arrive, with every slot final.
inline void warpgroup_collective(const std::string& instruction, const std::function<void(Warpgroup&)>& perform) {
  Warpgroup& g = my_warpgroup();
  const int w = warpgroup_id();
  g.instruction[warpgroup_lane()] = instruction;
  const uint64_t generation = g.gate.generation;
  if (++g.arrived < kWarpgroupThreads) {
    while (g.gate.generation == generation) {
      block_on(g.gate, " waits at " + instruction + " for the rest of warpgroup " + std::to_string(w));
    }
    return;
  }
  g.arrived = 0;
  for (const std::string& other : g.instruction) {
    if (other != instruction) fail(mismatch(g, w) + " (" + where() + ")");
  }
  perform(g);
  ++g.gate.generation;
  ++rt().progress;
}

}  // namespace emu
