"""Context parallelism: attention over a sequence whose tokens are spread across the ranks of a
torch.distributed process group (ring attention, lse merge, forward and backward).

``ring_flash_attn`` is ``flash_attn`` over a sharded sequence; ``ContextParallel`` (a group and
a token layout) makes ``headmix.iha_attention`` and the ``headmix.nn`` modules run the same way.
See docs/context_parallel.md.
"""

from .context import ContextParallel
from .layout import LAYOUTS, positions, shard, unshard
from .ring import ring_flash_attn

__all__ = ["LAYOUTS", "ContextParallel", "positions", "ring_flash_attn", "shard", "unshard"]
