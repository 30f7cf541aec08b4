"""Peak memory of one call: the CUDA allocator's high-water mark, or on the CPU the process's
resident-set high-water mark."""

from __future__ import annotations

import ctypes
import gc
import re
from typing import Callable

import torch


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M).group(1)) * 1024


# glibc's malloc_trim returns freed heap pages to the OS; elsewhere there is nothing to trim.
_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", lambda pad: 0)


def _cpu_peak_rss(fn) -> int | None:
    # tracemalloc does not see torch's allocations and torch keeps no CPU allocator statistics,
    # so read the kernel's resident-set high-water mark instead: return freed heap pages to the
    # OS (else the call could reuse them unseen), reset the mark to the current RSS (writing
    # "5" to /proc/self/clear_refs, Linux >= 4.0), call once and take the rise. No subprocess
    # is needed because the mark is reset, not compared with an earlier maximum.
    gc.collect()
    _malloc_trim(0)
    try:
        before = _proc_status_bytes("VmRSS")
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:  # not Linux, or /proc not writable: say "unknown" rather than guess
        return None
    fn()
    return _proc_status_bytes("VmHWM") - before


def peak_memory(fn: Callable, device: torch.device) -> int | None:
    """Bytes at the peak of one fn() call above what was live before it (workspace + outputs)."""
    device = torch.device(device)
    if device.type == "cpu":
        return _cpu_peak_rss(fn)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
