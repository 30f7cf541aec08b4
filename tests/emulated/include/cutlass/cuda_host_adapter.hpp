#pragma once
// CUTLASS's host adapter as nvcc 13 compiles it: with the tensor-map paths, so that
// make_tma_copy reaches cuTensorMapEncodeTiled through cudaGetDriverEntryPointByVersion, which
// the emulator provides (tensor_map.h says why the version macros are set here).
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <driver_types.h>

#include <cstdio>
#include <cutlass/cutlass.h>
#include <cutlass/platform/platform.h>
#include <cutlass/trace.h>

#define __CUDACC_VER_MAJOR__ 13
#define __CUDACC_VER_MINOR__ 0
#include_next <cutlass/cuda_host_adapter.hpp>
#undef __CUDACC_VER_MAJOR__
#undef __CUDACC_VER_MINOR__
