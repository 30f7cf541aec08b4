"""The agreement every context-parallel call starts with, and the plan it yields.

One ``all_gather_object`` per call carries each rank's local length, the facts that must be
equal on every rank (batch, heads, head dims, dtype, mask, layout ...) and any local error.
Every rank then checks the same gathered data and raises the same error, naming the ranks and
the values: a rank with bad inputs must not leave the others waiting in a ring exchange that
never comes. The gathered lengths also place uneven contiguous shards.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist

from . import layout as layouts
from .bands import block_call


@dataclass(frozen=True)
class Plan:
    """Who holds which global tokens, as seen from this rank."""

    group: object  # torch.distributed ProcessGroup (None = the default group)
    rank: int  # within group
    world: int
    segments: list[list[layouts.Segment]]  # per rank: (global start, length) in local order

    def length(self, rank: int) -> int:
        return sum(n for _, n in self.segments[rank])

    def local_segments(self, rank: int) -> list[tuple[int, int, int]]:
        """(local offset, global start, length) of each segment of rank's tensor."""
        out, offset = [], 0
        for start, n in self.segments[rank]:
            out.append((offset, start, n))
            offset += n
        return out

    def scaled(self, factor: int) -> Plan:
        """The plan over a sequence with ``factor`` consecutive entries per token (IHA's P
        interleaved pseudo-tokens: token n becomes virtual tokens n*P ... n*P + P - 1)."""
        segs = [[(s * factor, n * factor) for s, n in rank_segs] for rank_segs in self.segments]
        return Plan(self.group, self.rank, self.world, segs)

    def peer(self, rank: int) -> int:
        """Global rank of a rank of the group (what point-to-point ops take)."""
        return rank if self.group is None else dist.get_global_rank(self.group, rank)

    def last_step(self, causal: bool, window: tuple[int, int]) -> int:
        """The last ring step t (rank r computing with the keys of rank r - t) at which some
        rank has a block in the band; the ring stops there, so with a window a rank exchanges
        only with the ranks the window reaches. Every rank computes the same value."""
        last = 0
        for step in range(1, self.world):
            for r in range(self.world):
                owner = (r - step) % self.world
                if any(block_call(qs, qn, ks, kn, causal, window) is not None
                       for qs, qn in self.segments[r] for ks, kn in self.segments[owner]):
                    last = step
                    break
        return last


def agree(group, layout: str, local_length: int, same: dict, local_error: str | None, what: str) -> Plan:
    """Exchanges (local_length, same, local_error) between the ranks of ``group`` and returns
    the plan, or raises the same RuntimeError on every rank. ``same`` maps names to values that
    must be equal on all ranks; ``what`` names the call in messages."""
    layouts.check_layout(layout)
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    gathered = [None] * world
    dist.all_gather_object(gathered, (local_length, same, local_error), group=group)
    errors = [f"rank {r}: {err}" for r, (_, _, err) in enumerate(gathered) if err]
    if errors:
        raise RuntimeError(f"{what}: bad input on {len(errors)} of {world} ranks; " + "; ".join(errors))
    for name in same:
        values = [s[name] for _, s, _ in gathered]
        if any(v != values[0] for v in values):
            per_rank = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
            raise RuntimeError(f"{what}: {name} must be the same on every rank, got {per_rank}")
    lengths = [n for n, _, _ in gathered]
    error = layouts.layout_error(layout, lengths)
    if error:
        raise RuntimeError(f"{what}: {error}")
    return Plan(group, rank, world, layouts.segments(layout, lengths))
