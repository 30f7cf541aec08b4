#pragma once
// CUTLASS's sm90 pipelines, compiled as the CUDA build compiles the kernels (-DNDEBUG): their
// debug-only role checks are a PTX breakpoint, which a host compiler cannot assemble. The
// barriers they use are the emulated ones (include/cutlass/arch/barrier.h).
#ifdef NDEBUG
#include_next <cutlass/pipeline/sm90_pipeline.hpp>
#else
#define NDEBUG
#include_next <cutlass/pipeline/sm90_pipeline.hpp>
#undef NDEBUG
#endif
