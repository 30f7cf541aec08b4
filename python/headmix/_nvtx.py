"""NVTX ranges named after the op (``headmix::flash_attn_fwd``) around every op call on CUDA
tensors, so an Nsight Systems or Nsight Compute timeline says which op launched a kernel.

Without a profiler attached an NVTX push/pop is a call into a no-op stub (well under a
microsecond). CPU tensors get no range (a CPU build of torch has no NVTX), and neither do
calls being traced by torch.compile: the range would be a graph break, and the compiled
graph's kernels are named in the trace anyway.
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def op_range(op: str, tensor: torch.Tensor):
    if not tensor.is_cuda or torch.compiler.is_compiling():
        yield
        return
    torch.cuda.nvtx.range_push(f"headmix::{op}")
    try:
        yield
    finally:
        torch.cuda.nvtx.range_pop()
