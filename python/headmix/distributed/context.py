"""``ContextParallel``: a process group and a token layout, the one value that the IHA / MEA
functions and modules take to run over a sequence split across ranks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from . import layout as layouts


@dataclass(frozen=True)
class ContextParallel:
    """Tokens of one sequence spread over the ranks of ``group`` (None = the default group) in
    ``layout`` ("zigzag" balances a causal mask; "contiguous" suits a sliding window, where a
    rank then only talks to its neighbours, and allows uneven shards)."""

    group: object = None
    layout: str = "zigzag"

    def __post_init__(self):
        layouts.check_layout(self.layout)

    @property
    def rank(self) -> int:
        return dist.get_rank(self.group)

    @property
    def world_size(self) -> int:
        return dist.get_world_size(self.group)

    def shard(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """This rank's tokens of the full tensor x [B, N, ...] (token dim ``dim``)."""
        return layouts.shard(x, self.rank, self.world_size, self.layout, dim)

    def unshard(self, x_local: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """The full tensor from every rank's tokens (all_gather, outside autograd)."""
        return layouts.unshard(x_local, self.group, self.layout, dim)

    def positions(self, total: int, device=None) -> torch.Tensor:
        """Global positions of this rank's tokens in a sequence of ``total`` tokens."""
        return layouts.positions(total, self.rank, self.world_size, self.layout, device)
