#pragma once
// CuTe's TMA copy traits (make_tma_copy, tma_partition) as the CUDA build compiles them: with
// nvcc 13's tensor-map path, so make_tma_copy encodes its descriptor with cuTensorMapEncodeTiled
// (tensor_map.h says why the version macros are set here), and with -DNDEBUG, so an encode the
// driver refuses is printed and ignored as on a GPU build (the emulated TMA instructions then
// report the unencoded map) instead of aborting the test process.
#include <cuda.h>

#include <cassert>
#include <cute/algorithm/prefetch.hpp>
#include <cute/atom/copy_atom.hpp>
#include <cute/atom/copy_traits.hpp>
#include <cute/atom/copy_traits_sm90_tma_swizzle.hpp>
#include <cute/numeric/integral_ratio.hpp>
#include <cutlass/cuda_host_adapter.hpp>
#include <iostream>

#define __CUDACC_VER_MAJOR__ 13
#define __CUDACC_VER_MINOR__ 0
#ifdef NDEBUG
#include_next <cute/atom/copy_traits_sm90_tma.hpp>
#else
#define NDEBUG
#include <cassert>
#include_next <cute/atom/copy_traits_sm90_tma.hpp>
#undef NDEBUG
#include <cassert>
#endif
#undef __CUDACC_VER_MAJOR__
#undef __CUDACC_VER_MINOR__
