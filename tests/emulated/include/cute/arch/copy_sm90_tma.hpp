#pragma once
// Emulated TMA atoms (tma_sm90.h): SM90_TMA_LOAD and SM90_TMA_STORE with their 1D..5D forms
// and prefetches, tma_store_arrive (cp.async.bulk.commit_group) and tma_store_wait
// (cp.async.bulk.wait_group.read), under their own names and signatures, so CuTe's TMA copy
// traits and the kernels bind to them. Multicast, im2col, reduce and bulk copies stay CuTe's
// host branch, which throws "not emulated".
#include <cute/arch/config.hpp>
#include <cute/arch/copy.hpp>
#include <cute/arch/copy_sm90.hpp>
#include <cute/config.hpp>

#include "cute_atoms.h"
#include "tma_sm90.h"

#define SM90_TMA_LOAD_1D SM90_TMA_LOAD_1D_on_gpu
#define SM90_TMA_LOAD_2D SM90_TMA_LOAD_2D_on_gpu
#define SM90_TMA_LOAD_3D SM90_TMA_LOAD_3D_on_gpu
#define SM90_TMA_LOAD_4D SM90_TMA_LOAD_4D_on_gpu
#define SM90_TMA_LOAD_5D SM90_TMA_LOAD_5D_on_gpu
#define SM90_TMA_LOAD SM90_TMA_LOAD_on_gpu
#define SM90_TMA_STORE_1D SM90_TMA_STORE_1D_on_gpu
#define SM90_TMA_STORE_2D SM90_TMA_STORE_2D_on_gpu
#define SM90_TMA_STORE_3D SM90_TMA_STORE_3D_on_gpu
#define SM90_TMA_STORE_4D SM90_TMA_STORE_4D_on_gpu
#define SM90_TMA_STORE_5D SM90_TMA_STORE_5D_on_gpu
#define SM90_TMA_STORE SM90_TMA_STORE_on_gpu
#define tma_store_arrive tma_store_arrive_on_gpu
#define tma_store_wait tma_store_wait_on_gpu
#include_next <cute/arch/copy_sm90_tma.hpp>
#undef SM90_TMA_LOAD_1D
#undef SM90_TMA_LOAD_2D
#undef SM90_TMA_LOAD_3D
#undef SM90_TMA_LOAD_4D
#undef SM90_TMA_LOAD_5D
#undef SM90_TMA_LOAD
#undef SM90_TMA_STORE_1D
#undef SM90_TMA_STORE_2D
#undef SM90_TMA_STORE_3D
#undef SM90_TMA_STORE_4D
#undef SM90_TMA_STORE_5D
#undef SM90_TMA_STORE
#undef tma_store_arrive
#undef tma_store_wait

namespace cute {

// A load or store of any rank: the number of coordinates is the instruction's dimensionality.
struct SM90_TMA_LOAD {
  template <class... Coords>
  static void copy(void const* desc_ptr, uint64_t* mbar_ptr, uint64_t /*cache_hint*/, void* smem_ptr,
                   Coords const&... coords) {
    static_assert(sizeof...(Coords) >= 1 && sizeof...(Coords) <= 5);
    emu::tma_load(desc_ptr, mbar_ptr, smem_ptr, {int32_t(coords)...}, int(sizeof...(Coords)));
  }
  struct PREFETCH {
    template <class... Coords>
    static void copy(void const* desc_ptr, Coords const&...) {
      emu::tma_prefetch(desc_ptr, int(sizeof...(Coords)));
    }
  };
};
using SM90_TMA_LOAD_1D = SM90_TMA_LOAD;
using SM90_TMA_LOAD_2D = SM90_TMA_LOAD;
using SM90_TMA_LOAD_3D = SM90_TMA_LOAD;
using SM90_TMA_LOAD_4D = SM90_TMA_LOAD;
using SM90_TMA_LOAD_5D = SM90_TMA_LOAD;

struct SM90_TMA_STORE {
  template <class... Coords>
  static void copy(void const* desc_ptr, void const* smem_ptr, Coords const&... coords) {
    static_assert(sizeof...(Coords) >= 1 && sizeof...(Coords) <= 5);
    emu::tma_store(desc_ptr, smem_ptr, {int32_t(coords)...}, int(sizeof...(Coords)));
  }
};
using SM90_TMA_STORE_1D = SM90_TMA_STORE;
using SM90_TMA_STORE_2D = SM90_TMA_STORE;
using SM90_TMA_STORE_3D = SM90_TMA_STORE;
using SM90_TMA_STORE_4D = SM90_TMA_STORE;
using SM90_TMA_STORE_5D = SM90_TMA_STORE;

inline void tma_store_arrive() { emu::bulk_commit_group(); }

template <int Count>
inline void tma_store_wait() { emu::bulk_wait_group_read(size_t(Count)); }

}  // namespace cute
