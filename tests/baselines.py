"""Baselines of the low-precision accuracy rule that are not the reference itself: the flash
backward's own algorithm run in PyTorch (P and dS rounded to the input dtype, D from the rounded
output), against which every flash backward kernel, on a GPU or on the emulator, is measured."""

import torch

from headmix import reference


def flash_backward_in_pytorch(s, out, dout, dlse):
    """dq, dk, dv by the flash backward's formulas in PyTorch: float32 products from the rounded
    inputs, with P and dS rounded to the input dtype and D from the rounded output ``out``."""
    kw, dtype = s.kwargs, s.kwargs["q"].dtype
    q, k, v = (kw[name].float() for name in "qkv")
    group = q.shape[2] // k.shape[2]
    k, v = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
    scale = reference.attention_scale(kw["scale"], q.shape[-1])
    allowed = reference.allowed_keys(q.shape[1], k.shape[1], kw["causal"], kw["window_left"], kw["window_right"],
                                     q.device)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale
    lse = torch.logsumexp(scores.masked_fill(~allowed, float("-inf")), dim=-1, keepdim=True)
    probs = torch.exp(scores - lse).masked_fill(~allowed, 0.0).nan_to_num(0.0)
    row_dot = (dout.float() * out.float()).sum(-1).transpose(1, 2)[..., None] - dlse[..., None]
    dscores = probs * (torch.einsum("bqhd,bkhd->bhqk", dout.float(), v) - row_dot)
    probs, dscores = probs.to(dtype).float(), dscores.to(dtype).float()
    dq = torch.einsum("bhqk,bkhd->bqhd", dscores, k) * scale
    dk = torch.einsum("bhqk,bqhd->bkhd", dscores, q) * scale
    dv = torch.einsum("bhqk,bqhd->bkhd", probs, dout.float())

    def group_sum(t):
        return t.view(*t.shape[:2], -1, group, t.shape[-1]).sum(3)

    return dq.to(dtype), group_sum(dk).to(dtype), group_sum(dv).to(dtype)
