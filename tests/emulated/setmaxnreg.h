#pragma once
// setmaxnreg.{inc,dec}.sync.aligned.u32 N, as the PTX ISA defines it: every thread of the
// warpgroup executes it with the same N, a multiple of 8 in 24..256; .dec lowers the warpgroup's
// per-thread register count to N and releases the difference to the CTA's pool; .inc raises it
// to N, waiting until the pool holds enough. The pool holds only what .dec released (the launch
// granted every thread its share, warpgroup.h). Reported: a count outside the rules, an .inc
// that lowers or a .dec that raises the count, and an .inc that can never be granted: at once
// when even every other live warpgroup dropping to 24 registers would not free enough, or as a
// deadlock naming the .inc if it waits for a release that never comes.
#include <string>

#include "warpgroup.h"

namespace emu {

inline std::string describe_pool(int need) {
  return "needs " + std::to_string(need) + " registers; the CTA's pool holds " + std::to_string(warpgroups().pool);
}

// Registers the other warpgroups with live threads could still release.
inline int releasable_elsewhere(int me) {
  const WarpgroupState& s = warpgroups();
  int total = 0;
  for (int w = 0; w < int(s.groups.size()); ++w) {
    bool live = false;
    for (int t = w * kWarpgroupThreads; t < (w + 1) * kWarpgroupThreads; ++t) live = live || !rt().fibers[t]->done;
    if (w != me && live) total += (s.groups[w].registers - 24) * kWarpgroupThreads;
  }
  return total;
}

inline void setmaxnreg(bool increase, int count) {
  const std::string name = std::string("setmaxnreg.") + (increase ? "inc" : "dec") + ".sync.aligned.u32 " +
                           std::to_string(count);
  if (count < 24 || count > 256 || count % 8 != 0) {
    fail(name + ": the count must be a multiple of 8 in 24..256 (" + where() + ")");
  }
  warpgroup_collective(name, [&](Warpgroup& g) {
    WarpgroupState& s = warpgroups();
    const int w = warpgroup_id();
    const std::string who = name + " in warpgroup " + std::to_string(w) + " (at " + std::to_string(g.registers) +
                            " registers per thread)";
    if (increase ? count < g.registers : count > g.registers) {
      fail(who + (increase ? " would lower" : " would raise") + " the count");
    }
    const int change = (count - g.registers) * kWarpgroupThreads;
    if (!increase) {
      s.pool -= change;
      g.registers = count;
      ++s.pool_gate.generation;
      ++rt().progress;
      return;
    }
    if (change > s.pool + releasable_elsewhere(w)) fail(who + " can never be granted: it " + describe_pool(change));
    while (s.pool < change) block_on(s.pool_gate, " waits at " + who + ", which " + describe_pool(change));
    s.pool -= change;
    g.registers = count;
  });
}

}  // namespace emu
