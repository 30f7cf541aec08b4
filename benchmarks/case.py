"""What a benchmark describes: a Case per shape (inputs, the headmix call, its PyTorch
baseline, the useful bytes and FLOPs), and the helpers that build them."""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch


@dataclasses.dataclass
class Case:
    """One benchmarked shape: build() makes the inputs and returns (headmix_fn, baseline_fn).

    Both functions return their outputs (compared with each other once). bytes is the minimum
    traffic (inputs read once, outputs written once), flops the useful work (masked-out
    attention not counted); either may be 0 when it means nothing for the op. targets holds
    acceptance thresholds: "max_peak_mem" (bytes, headmix) and "min_speedup".
    """

    op: str
    variant: str
    shape: dict
    build: Callable[[], tuple[Callable, Callable]]
    bytes: float = 0.0
    flops: float = 0.0
    targets: dict = dataclasses.field(default_factory=dict)


def randn(*shape, device, dtype, scale=1.0, requires_grad=False):
    """Fresh N(0, scale^2) data (never zeros: docs/support.md), optionally a leaf that needs grad."""
    x = torch.randn(*shape, device=device, dtype=dtype) * scale
    return x.requires_grad_(requires_grad)


def grads_of(forward: Callable, inputs, grad_out: torch.Tensor) -> Callable:
    """fn() returning d forward() / d inputs for the upstream gradient grad_out.

    The graph is built by the first (untimed) call and kept (retain_graph), so timed calls run
    the backward alone, as a training step's backward would.
    """
    graph = []

    def backward():
        if not graph:
            graph.append(forward())
        return torch.autograd.grad(graph[0], inputs, grad_out, retain_graph=True)

    return backward


def shape_text(shape: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in shape.items())
