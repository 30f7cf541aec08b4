#pragma once
// wgmma.mma_async.sync.aligned.m64nNk16.f32.{bf16,f16}.{bf16,f16} (A from shared memory or from
// registers, B from shared memory) and wgmma.fence / commit_group / wait_group, as the PTX ISA
// defines them ("Asynchronous Warpgroup Level Matrix Multiply-Accumulate Instructions"):
// - all 128 threads of the warpgroup execute the same instruction (warpgroup.h collects their
//   operands); the two matrix descriptors and scale-d must agree between them;
// - shared-memory operands are found through their 64-bit matrix descriptors (decode_descriptor,
//   element_address); register A and the accumulator D use the ISA's fragment layouts;
// - D = scale-d * C + (scale-a * A)(scale-b * B), products exact, summed in fp32 in k order;
// - asynchrony: the result reaches the D registers only when wgmma.wait_group retires its group;
//   until then they hold NaN, so a read before the wait shows. A later wgmma of the same
//   accumulator accumulates onto the pending value (the ISA orders wgmmas of one accumulator).
//   The shared memory read at issue is read again at retire: a difference means the stage was
//   overwritten, i.e. released, before the wait, and is reported with the warpgroup and address;
//   so is an A register (RS) written while its wgmma is in flight, which the ISA also forbids;
// - commit_group closes the warpgroup's open wgmmas into a group; wait_group N retires all but
//   the N newest groups; a CTA that ends with wgmmas not retired is reported.
// Shared-memory reads are checked for bounds and never-written words and go through the race
// check as async-proxy reads (async_proxy_sm90.h) at issue and again at retire, by the thread
// that performs the warpgroup's instruction; its later arrive on a stage's empty barrier then
// orders the next write of the stage after them.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "async_proxy_sm90.h"
#include "warpgroup.h"

namespace emu::wgmma {

// ---- matrix descriptors
//
// PTX ISA, "Matrix Descriptor Format" (asynchronous-warpgroup-level-matrix-shared-memory-layout-
// matrix-descriptor): bits 13-0 start address, 29-16 leading dimension byte offset (LBO), 45-32
// stride dimension byte offset (SBO), each encoded as (x & 0x3FFFF) >> 4; bits 51-49 the matrix
// base offset (valid for the swizzled modes only); bits 63-62 the swizzle mode: 0 none, 1 128-byte,
// 2 64-byte, 3 32-byte.
struct Descriptor {
  uint32_t start, lbo, sbo;  // bytes
  uint32_t base_offset;
  uint32_t swizzle_bytes;    // 0: none
};

inline Descriptor decode_descriptor(uint64_t bits) {
  const auto field = [&](int lsb) { return uint32_t((bits >> lsb) & 0x3FFF) << 4; };
  constexpr uint32_t kSwizzleBytes[4] = {0, 128, 64, 32};
  return Descriptor{field(0), field(16), field(32), uint32_t((bits >> 49) & 7), kSwizzleBytes[(bits >> 62) & 3]};
}

// The swizzles permute the 16-byte chunks of each 128-byte row of shared memory by the row's
// index within the repeating pattern (1024, 512, 256 bytes for 128B, 64B, 32B): chunk bits 6-4
// (128B), 5-4 (64B) or 4 (32B) are XORed with the same number of bits of the row, address bits
// 9-7 — on absolute shared-memory addresses. The ISA's base offset: it "is 0 when the repeating
// pattern of the specified swizzling mode starts" at a 1024 / 512 / 256-byte boundary;
// "otherwise, the base offset must be a non-zero value, computed using ... base offset =
// (pattern start addr >> 0x7) & 0x7". So it names the row at which the pattern starts, which we
// subtract from the address's row; it describes where the pattern starts, not where the
// descriptor's matrix starts: a matrix whose start address lies inside a pattern that starts on
// the boundary (the dQ wgmma at d = 64, whose B starts 64 bytes into a 128-byte row) has base
// offset 0 and is swizzled by its absolute address bits like every other address of the pattern.
// It is the situation of every K-major 128B operand past its first k-block: CuTe's descriptors
// always carry base offset 0 and step along K by adding 32 bytes to the start address, inside
// one 128-byte row. (Shared addresses here are offsets into the emulator's 1024-byte-aligned
// shared memory, cute/arch/util.hpp.)
inline uint32_t swizzle(uint32_t address, const Descriptor& d) {
  if (d.swizzle_bytes == 0) return address;
  const uint32_t row_bits = d.swizzle_bytes / 16 - 1;
  const uint32_t row = ((address >> 7) - d.base_offset) & row_bits;
  return address ^ (row << 4);
}

// The shared address of element (mn, k) of a 16-bit operand (mn: the row of A or the column of
// B), per the ISA's "Shared Memory Matrix Layout": the matrix is built of core matrices of eight
// 16-byte rows. K-major: a core-matrix row holds 8 k of one mn; without swizzle a core matrix is
// 128 contiguous bytes, LBO apart along k and SBO apart along mn; with a W-byte swizzle its rows
// are W bytes apart (the k of one wgmma, 32 bytes, lie within one swizzle row) and SBO separates
// groups of 8 mn (LBO unused). MN-major: a core-matrix row holds 8 mn of one k; without swizzle
// as for K-major with the roles of LBO (along k) and SBO (along mn) kept; with a W-byte swizzle
// W/2 consecutive mn are contiguous, rows of 8 k are W bytes apart, LBO separates groups of W/2
// mn and SBO groups of 8 k.
inline uint32_t element_address(const Descriptor& d, bool mn_major, uint32_t mn, uint32_t k) {
  const uint32_t w = d.swizzle_bytes;
  uint32_t a = d.start;
  if (!mn_major && w == 0) a += mn / 8 * d.sbo + k / 8 * d.lbo + mn % 8 * 16 + k % 8 * 2;
  if (!mn_major && w != 0) a += mn / 8 * d.sbo + mn % 8 * w + k * 2;
  if (mn_major && w == 0) a += mn / 8 * d.sbo + k / 8 * d.lbo + k % 8 * 16 + mn % 8 * 2;
  if (mn_major && w != 0) a += mn / (w / 2) * d.lbo + k / 8 * d.sbo + k % 8 * w + mn % (w / 2) * 2;
  return swizzle(a, d);
}

// ---- fragment layouts (PTX ISA, "Register Fragments and Shared Memory Matrix Layouts" for
// wgmma .m64nNk16): warp w of the warpgroup holds rows 16w..16w+15 of A and D, laid out within
// the warp as mma.m16n8k16's: with g = lane / 4 and t = lane % 4,
//   A (f16/bf16, 4 registers of 2 elements, element i = 0..7): row g + 8 ((i >> 1) & 1),
//     k 2t + (i & 1) + 8 (i >> 2);
//   D (f32, N/2 registers, register i): row g + 8 ((i >> 1) & 1), column 8 (i >> 2) + 2t + (i & 1).
struct RowCol {
  int row, col;
};
inline RowCol fragment_element(int thread, int i) {
  const int lane = thread % 32, g = lane / 4, t = lane % 4;
  return {16 * (thread / 32) + g + 8 * ((i >> 1) & 1), 8 * (i >> 2) + 2 * t + (i & 1)};
}

// ---- the instruction

struct Instruction {
  int n;
  bool a_from_registers, a_mn_major, b_mn_major;
  float scale_a, scale_b;
  float (*to_float)(uint16_t);  // the 16-bit element type
  std::string name;
};

// A 16-bit element of shared memory, bounds- and initialisation-checked, remembered for the
// second read at retire.
inline float read_element(const Instruction& ins, uint32_t address, WgmmaInFlight& op, const char* operand) {
  Runtime& r = rt();
  if (address + 2 > r.smem_bytes) {
    fail(ins.name + " reads operand " + operand + " at shared offset " + std::to_string(address) + ", outside the launch's " +
         std::to_string(r.smem_bytes) + " bytes of dynamic shared memory (warpgroup " + std::to_string(warpgroup_id()) + ")");
  }
  const uint32_t word = address / 4 * 4;
  bool never_written = word + 4 <= r.smem_bytes;
  for (uint32_t i = word; i < word + 4 && never_written; ++i) never_written = !r.shadow[i].written && r.smem[i] == 0xff;
  if (never_written) {
    fail(ins.name + " reads operand " + operand + " at shared offset " + std::to_string(word) +
         ", which no thread wrote (warpgroup " + std::to_string(warpgroup_id()) + ")");
  }
  // Through the async proxy: ordered after its writer, and after a proxy fence for plain writes.
  async_proxy_read(r.smem + address, 2, "wgmma operand");
  uint16_t bits;
  std::memcpy(&bits, r.smem + address, 2);
  op.smem_offsets.push_back(address);
  op.smem_values.push_back(bits);
  return ins.to_float(bits);
}

template <class Element>
float element_to_float(uint16_t bits) {
  return float(Element::bitcast(bits));
}

// wgmma.mma_async instructions emulated so far (each counted once per warpgroup), so a test can
// tell that CuTe's GMMA atoms reached this emulation.
inline uint64_t& issued() {
  static uint64_t count = 0;
  return count;
}

inline void fence() { warpgroup_collective("wgmma.fence", [](Warpgroup&) {}); }

inline void commit() {
  warpgroup_collective("wgmma.commit_group", [](Warpgroup& g) {
    g.committed.push_back(std::move(g.open));
    g.open.clear();
  });
}

inline void retire(Warpgroup& g, const WgmmaInFlight& op, int w) {
  for (size_t i = 0; i < op.smem_offsets.size(); ++i) {
    uint16_t now;
    std::memcpy(&now, rt().smem + op.smem_offsets[i], 2);
    if (now != op.smem_values[i]) {
      fail("shared offset " + std::to_string(op.smem_offsets[i]) + ", read by " + op.instruction + " of warpgroup " +
           std::to_string(w) + ", changed between its issue and the wgmma.wait_group that retires it: the stage was " +
           "overwritten (released) too early");
    }
    // The read lasts until the retire: whoever writes these bytes next must be ordered after it.
    async_proxy_read(rt().smem + op.smem_offsets[i], 2, "wgmma operand");
  }
  for (const auto& [reg, value] : op.a_registers) {
    if (*reg != value) {
      fail("an A register of " + op.instruction + " of warpgroup " + std::to_string(w) +
           " was written before the wgmma.wait_group that retires it");
    }
  }
  for (const auto& [reg, value] : op.results) {
    auto it = g.pending.find(reg);
    if (--it->second.writers == 0) {
      *reg = it->second.value;
      g.pending.erase(it);
    }
  }
}

inline void wait(int pending_groups) {
  warpgroup_collective("wgmma.wait_group " + std::to_string(pending_groups), [&](Warpgroup& g) {
    while (int(g.committed.size()) > pending_groups) {
      for (const WgmmaInFlight& op : g.committed.front()) retire(g, op, warpgroup_id());
      g.committed.pop_front();
    }
  });
}

// The calling thread's part of a wgmma.mma_async: its slot (warpgroup.h) holds its operands.
inline void mma_async(const Instruction& ins) {
  warpgroup_collective(ins.name, [&](Warpgroup& g) {
    const int w = warpgroup_id();
    const WgmmaOperands& first = g.wgmma[0];
    for (const WgmmaOperands& other : g.wgmma) {
      if (other.desc_a != first.desc_a || other.desc_b != first.desc_b || other.scale_d != first.scale_d) {
        fail(ins.name + ": the threads of warpgroup " + std::to_string(w) +
             " give different matrix descriptors or scale-d");
      }
    }
    WgmmaInFlight op;
    op.instruction = ins.name;
    float a[64][16], b[16][256];
    const Descriptor desc_a = decode_descriptor(first.desc_a), desc_b = decode_descriptor(first.desc_b);
    for (int m = 0; m < 64; ++m) {
      for (int k = 0; k < 16 && !ins.a_from_registers; ++k) {
        a[m][k] = read_element(ins, element_address(desc_a, ins.a_mn_major, m, k), op, "A");
      }
    }
    for (int t = 0; t < kWarpgroupThreads && ins.a_from_registers; ++t) {
      for (int i = 0; i < 8; ++i) {
        const RowCol e = fragment_element(t, i);  // an A element's (row, k) maps like D's (row, column)
        a[e.row][e.col] = ins.to_float(uint16_t(*g.wgmma[t].a[i / 2] >> (16 * (i % 2))));
      }
      for (const uint32_t* reg : g.wgmma[t].a) op.a_registers.emplace_back(reg, *reg);
    }
    for (int n = 0; n < ins.n; ++n) {
      for (int k = 0; k < 16; ++k) b[k][n] = read_element(ins, element_address(desc_b, ins.b_mn_major, n, k), op, "B");
    }
    for (int t = 0; t < kWarpgroupThreads; ++t) {
      for (int i = 0; i < ins.n / 2; ++i) {
        float* reg = g.wgmma[t].d[i];
        const RowCol e = fragment_element(t, i);
        auto it = g.pending.find(reg);
        float d = first.scale_d == 0 ? 0.f : it != g.pending.end() ? it->second.value : *reg;
        for (int k = 0; k < 16; ++k) d += (ins.scale_a * a[e.row][k]) * (ins.scale_b * b[k][e.col]);
        op.results.emplace_back(reg, d);
        Warpgroup::Pending& p = g.pending[reg];
        p.value = d;
        ++p.writers;
        *reg = std::numeric_limits<float>::quiet_NaN();
      }
    }
    g.open.push_back(std::move(op));
    ++issued();
  });
}

// At the end of a CTA every wgmma must have been retired.
inline void end_cta() {
  const WarpgroupState& s = warpgroups();
  for (size_t w = 0; w < s.groups.size(); ++w) {
    size_t in_flight = s.groups[w].open.size();
    for (const auto& group : s.groups[w].committed) in_flight += group.size();
    if (in_flight) {
      fail("warpgroup " + std::to_string(w) + " exited with " + std::to_string(in_flight) +
           " wgmma.mma_async never retired by wgmma.wait_group");
    }
  }
}

inline const bool end_cta_registered = (rt().on_cta_end.push_back(&end_cta), true);

}  // namespace emu::wgmma
