"""Token layouts: which global tokens each rank holds, and shard/unshard of [B, N, ...] tensors.

``contiguous``: rank r holds one slice, ranks in order; slices may differ in length (shard
splits N as evenly as it can, the first ranks taking the extra tokens). Under a causal mask
the last rank does W times the work of the first, but with a sliding window each rank needs
only its neighbours' keys.

``zigzag``: the sequence is cut into 2W equal chunks and rank r holds chunks r and 2W-1-r,
in that order. Under a causal mask every rank then sees the same number of (query, key)
pairs: an early chunk with few keys is paired with a late chunk with many. Needs N % 2W == 0.

A layout is described by segments: per rank, the list of (global start, length) it holds, in
the order of its local tensor.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

LAYOUTS = ("contiguous", "zigzag")

Segment = tuple[int, int]  # (global start, length)


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def layout_error(layout: str, lengths: list[int]) -> str | None:
    """Why per-rank local lengths cannot form the layout, or None."""
    if layout == "zigzag" and (len(set(lengths)) != 1 or lengths[0] % 2):
        return (f"the zigzag layout needs the same even local length on every rank (N divisible by "
                f"2*world_size), got local lengths {lengths}; use layout='contiguous' for uneven shards")
    return None


def segments(layout: str, lengths: list[int]) -> list[list[Segment]]:
    """Per rank, the (global start, length) segments of its local tensor, from every rank's
    local length (see layout_error for the lengths a layout accepts)."""
    if layout == "contiguous":
        starts = [sum(lengths[:r]) for r in range(len(lengths))]
        return [[(start, n)] for start, n in zip(starts, lengths)]
    world, chunk = len(lengths), lengths[0] // 2
    return [[(r * chunk, chunk), ((2 * world - 1 - r) * chunk, chunk)] for r in range(world)]


def _full_segments(layout: str, total: int, world: int) -> list[list[Segment]]:
    if layout == "zigzag" and total % (2 * world):
        raise ValueError(f"the zigzag layout needs N divisible by 2*world_size = {2 * world}, got N = {total}")
    lengths = [total // world + (r < total % world) for r in range(world)]
    return segments(layout, lengths)


def positions(total: int, rank: int, world: int, layout: str, device=None) -> torch.Tensor:
    """Global positions [N_local] (int64) of the tokens rank holds when N = total is sharded."""
    check_layout(layout)
    parts = [torch.arange(s, s + n, device=device) for s, n in _full_segments(layout, total, world)[rank]]
    return torch.cat(parts)


def shard(x: torch.Tensor, rank: int, world: int, layout: str, dim: int = 1) -> torch.Tensor:
    """Rank's share of the full tensor x along ``dim`` (the token dim), differentiable."""
    check_layout(layout)
    parts = [x.narrow(dim, s, n) for s, n in _full_segments(layout, x.shape[dim], world)[rank]]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim)


def unshard(x_local: torch.Tensor, group, layout: str, dim: int = 1) -> torch.Tensor:
    """The full tensor from every rank's share (the inverse of shard), on every rank.

    A plain all_gather, outside autograd: for inspecting results and tests. Training computes
    its loss on local tokens and lets the ring's backward carry gradients across ranks.
    """
    check_layout(layout)
    world = dist.get_world_size(group)
    length = torch.tensor([x_local.shape[dim]], device=x_local.device)
    lengths = [torch.zeros_like(length) for _ in range(world)]
    dist.all_gather(lengths, length, group=group)
    lengths = [int(n) for n in lengths]
    error = layout_error(layout, lengths)
    if error:
        raise ValueError(error)
    # all_gather needs equal sizes: pad every share to the longest.
    longest = max(lengths)
    pad = list(x_local.shape)
    pad[dim] = longest - x_local.shape[dim]
    padded = torch.cat([x_local.detach(), x_local.new_zeros(pad)], dim).contiguous()
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded, group=group)
    shape = list(x_local.shape)
    shape[dim] = sum(lengths)
    full = x_local.new_empty(shape)
    for r, segs in enumerate(segments(layout, lengths)):
        offset = 0
        for start, n in segs:
            full.narrow(dim, start, n).copy_(gathered[r].narrow(dim, offset, n))
            offset += n
    return full
