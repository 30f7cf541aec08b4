"""headmix: cross-head attention kernels (IHA, MEA) for PyTorch.

Importing the package registers every op under ``torch.ops.headmix`` (CPU always, CUDA when
the build has it), with fake kernels for ``torch.compile`` and autograd formulas.
"""

import torch  # noqa: F401  (loads libtorch before the extension)

from . import _C  # registers the ops
from . import nn  # the modules, so `import headmix` is enough for headmix.nn (and headmix.cache)
from .ops import (
    flash_attn,
    iha_attention,
    kv_cache_append,
    mix_heads,
    vhead_decode,
)
from .rope import rope_tables

build_info = dict(_C.build_info)

__all__ = [
    "build_info",
    "flash_attn",
    "iha_attention",
    "kv_cache_append",
    "mix_heads",
    "nn",
    "rope_tables",
    "vhead_decode",
]
