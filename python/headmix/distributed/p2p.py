"""Point-to-point exchange of tensors between ring neighbours."""

from __future__ import annotations

import torch
import torch.distributed as dist

from .plan import Plan

# One tag per kind of message, so a K/V block is never matched with a gradient block even
# when both are in flight between the same two ranks.
TAG_KV, TAG_GRAD, TAG_HOME = 1, 2, 3


def exchange(plan: Plan, send: list[torch.Tensor], dst: int, recv: list[torch.Tensor], src: int,
             tag: int) -> list:
    """Posts sends of ``send`` to rank dst and receives into ``recv`` from rank src (ranks of
    plan's group); returns the requests to wait on. Empty tensors (a rank holding no tokens)
    are skipped on both sides alike, since both know every rank's length."""
    send = [t for t in send if t.numel()]
    recv = [t for t in recv if t.numel()]
    ops = [dist.P2POp(dist.isend, t, plan.peer(dst), plan.group, tag) for t in send]
    ops += [dist.P2POp(dist.irecv, t, plan.peer(src), plan.group, tag) for t in recv]
    return dist.batch_isend_irecv(ops) if ops else []


def wait(requests: list) -> None:
    for request in requests:
        request.wait()
