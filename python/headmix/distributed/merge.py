"""Merging partial attention results over disjoint key sets by their log-sum-exp."""

from __future__ import annotations

import torch


def merge_into(out_acc: torch.Tensor, lse_acc: torch.Tensor, out: torch.Tensor, lse: torch.Tensor) -> None:
    """out_acc [B, S, H, d_v] and lse_acc [B, H, S] (float32, or float64) become the result
    over the union of their keys and those of (out, lse), in place.

    The merged lse is logaddexp of the two; each output is weighted by exp(its lse - merged).
    Rows where both are empty (lse = -inf) stay 0 with lse = -inf instead of 0 * NaN.
    """
    merged = torch.logaddexp(lse_acc, lse.to(lse_acc.dtype))
    empty = merged == float("-inf")
    safe = torch.where(empty, 0.0, merged)
    w_acc = torch.where(empty, 0.0, torch.exp(lse_acc - safe)).transpose(1, 2).unsqueeze(-1)
    w_new = torch.where(empty, 0.0, torch.exp(lse.to(lse_acc.dtype) - safe)).transpose(1, 2).unsqueeze(-1)
    out_acc.mul_(w_acc).add_(out.to(out_acc.dtype) * w_new)
    lse_acc.copy_(merged)
