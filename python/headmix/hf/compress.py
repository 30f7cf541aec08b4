"""MEA §5.2 KV-cache compression of a pretrained transformers model, in place.

Per chosen layer, the K and V projections (weight and, for Qwen2, bias) are factored by the SVD
of ``headmix.nn.svd_virtual_heads`` into a projection to H' virtual heads and a rebuild
[H', H_kv]. The layer then produces, rotates and caches H' heads; the ``"headmix"`` attention
function rebuilds the H_kv heads from them (``mix_heads`` in prefill, inside ``vhead_decode``
in decode). RoPE acts alike on every head of a token, so it commutes with the rebuild and the
model's own rotary embedding (partial rotary included) is applied to the virtual keys unchanged.

A k/v bias is compressed with its weight: it is one more input column (the constant-1 input),
so a virtual head is x W'_j + b'_j and the rebuild gives back x W_g + b_g (exactly at H' = H_kv).

Qwen3 normalises each kv head's key (RMSNorm) before RoPE. That norm is not linear, so it must
act on the rebuilt heads: the cache would have to hold pre-norm, pre-RoPE virtual keys and the
decode kernel rebuild -> norm -> rotate every cached row at every step, which ``vhead_decode``
does not do; such models are refused.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..nn import svd_virtual_heads
from .attention import NAME

SUPPORTED_FAMILIES = ("llama", "mistral", "qwen2")


class LayerCompression(NamedTuple):
    """One compressed layer: its index and the relative Frobenius error of the truncated K and V
    projections, ||W - W_r||_F / ||W||_F (bias column included), the Eckart-Young optimum."""

    layer: int
    k_error: float
    v_error: float


@torch.no_grad()
def compress_kv_heads(model, num_virtual: int, layers="all") -> list[LayerCompression]:
    """Compresses ``model``'s KV cache to ``num_virtual`` virtual heads per chosen layer, in place.

    ``layers``: "all"; "half" (every second layer: 0, 2, 4, ...); "deep" (the second half of
    the stack); or a list of layer indices. Switches the model to ``attn_implementation="headmix"``,
    which rebuilds the kv heads. Returns the per-layer truncation errors.
    """
    config = model.config.get_text_config()
    family = config.model_type
    if family == "qwen3":
        raise ValueError("compress_kv_heads: Qwen3 normalises each kv head's key (k_norm) before RoPE; "
                         "the rebuild of compressed heads would have to precede that norm at every decode "
                         "step, which headmix's decode kernel does not do (see docs/hf.md)")
    if family not in SUPPORTED_FAMILIES:
        raise ValueError(f"compress_kv_heads supports the model families {SUPPORTED_FAMILIES}, got "
                         f"model_type = {family!r}")
    decoder_layers = model.get_decoder().layers
    chosen = _chosen_layers(layers, len(decoder_layers))
    report = []
    for index in chosen:
        attention = decoder_layers[index].self_attn
        heads = getattr(attention, "headmix_num_virtual", config.num_key_value_heads)
        if not 1 <= num_virtual <= heads:
            raise ValueError(f"num_virtual must be in [1, {heads}] (the kv heads of layer {index}), "
                             f"got {num_virtual}")
        k_error = _compress_projection(attention, "k", heads, num_virtual)
        v_error = _compress_projection(attention, "v", heads, num_virtual)
        attention.headmix_num_virtual = num_virtual
        report.append(LayerCompression(index, k_error, v_error))
    model.set_attn_implementation(NAME)
    return report


def _chosen_layers(layers, count: int) -> list[int]:
    if layers == "all":
        return list(range(count))
    if layers == "half":
        return list(range(0, count, 2))
    if layers == "deep":
        return list(range(count // 2, count))
    if isinstance(layers, str) or not all(isinstance(i, int) and 0 <= i < count for i in layers):
        raise ValueError(f"layers must be 'all', 'half', 'deep' or a list of layer indices in [0, {count}), "
                         f"got {layers!r}")
    return sorted(set(layers))


def _compress_projection(attention: nn.Module, side: str, heads: int, num_virtual: int) -> float:
    """Replaces ``{side}_proj`` by the projection to ``num_virtual`` heads and sets (or composes)
    ``headmix_w_{side}``; returns the relative Frobenius error of the truncation."""
    proj: nn.Linear = getattr(attention, f"{side}_proj")
    weight = proj.weight
    if proj.bias is not None:
        weight = torch.cat([weight, proj.bias[:, None]], dim=1)  # the bias is the weight of input 1
    projection, factor, singular = svd_virtual_heads(weight, heads, num_virtual)
    new_proj = nn.Linear(proj.in_features, projection.shape[0], bias=proj.bias is not None,
                         device=proj.weight.device, dtype=proj.weight.dtype)
    new_proj.weight.copy_(projection[:, : proj.in_features])
    if proj.bias is not None:
        new_proj.bias.copy_(projection[:, proj.in_features])
    previous = getattr(attention, f"headmix_w_{side}", None)
    rebuild = factor if previous is None else factor @ previous.double()
    setattr(attention, f"{side}_proj", new_proj)
    setattr(attention, f"headmix_w_{side}", nn.Parameter(rebuild.to(proj.weight.dtype), requires_grad=False))
    return (singular[num_virtual:].square().sum() / singular.square().sum()).sqrt().item()
