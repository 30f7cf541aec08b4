#pragma once
// Emulated cp.async atoms (16 bytes, .cg, with and without zero-fill) and their group
// discipline, per the PTX ISA: a copy joins the thread's open group, commit_group closes it,
// wait_group N retires all but the N newest groups; the data lands some time before the wait
// that retires its group (cuda_emu.h chooses when, by schedule).
#include "cute_atoms.h"

#define SM80_CP_ASYNC_CACHEGLOBAL SM80_CP_ASYNC_CACHEGLOBAL_on_gpu
#define SM80_CP_ASYNC_CACHEGLOBAL_ZFILL SM80_CP_ASYNC_CACHEGLOBAL_ZFILL_on_gpu
#define cp_async_fence cp_async_fence_on_gpu
#define cp_async_wait cp_async_wait_on_gpu
#include_next <cute/arch/copy_sm80.hpp>
#undef SM80_CP_ASYNC_CACHEGLOBAL
#undef SM80_CP_ASYNC_CACHEGLOBAL_ZFILL
#undef cp_async_fence
#undef cp_async_wait

namespace cute {

template <class TS, class TD = TS>
struct SM80_CP_ASYNC_CACHEGLOBAL_ZFILL {
  using SRegisters = TS[1];
  using DRegisters = TD[1];
  static_assert(sizeof(TS) == 16 && sizeof(TD) == 16, "cp.async.cg copies 16 bytes");
  static void copy(TS const& gmem_src, TD& smem_dst, bool pred) { emu::cp_async_issue(&smem_dst, &gmem_src, pred); }
};

template <class TS, class TD = TS>
struct SM80_CP_ASYNC_CACHEGLOBAL {
  using SRegisters = TS[1];
  using DRegisters = TD[1];
  static_assert(sizeof(TS) == 16 && sizeof(TD) == 16, "cp.async.cg copies 16 bytes");
  static void copy(TS const& gmem_src, TD& smem_dst) { emu::cp_async_issue(&smem_dst, &gmem_src, true); }
};

inline void cp_async_fence() { emu::cp_async_commit(); }

template <int N>
inline void cp_async_wait() { emu::cp_async_wait_groups(size_t(N)); }

template <int N>
inline void cp_async_wait(Int<N>) { emu::cp_async_wait_groups(size_t(N)); }

}  // namespace cute
