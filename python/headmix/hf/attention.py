"""``attn_implementation="headmix"``: transformers' attention-function registry entry.

transformers calls the attention function of a Llama-family layer with q [B, H, S_q, d] and
the keys/values its cache returned [B, H_kv, S_k, d]; we answer with ``headmix.flash_attn``
(causal, bottom-right aligned, GQA without repeating heads, the layer's sliding window). With a
:class:`~headmix.hf.HeadmixCache` the cache returns a :class:`CachedKV` instead of tensors and
the decode runs ``vhead_decode`` over the paged cache. A layer compressed by
:func:`~headmix.hf.compress_kv_heads` carries the rebuild weights ``headmix_w_k``/``_w_v``
[H', H_kv]: its keys/values have H' virtual heads, rebuilt to H_kv here (prefill) or inside
the decode kernel.

The mask registered beside it never builds a mask: headmix computes causal and sliding-window
masks itself, so it accepts only those (no padding, no packed sequences, no custom mask
functions) and refuses anything else with an error that says so.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, prepare_padding_mask

from ..ops import flash_attn, mix_heads
from .cache import CachedKV

NAME = "headmix"

SUPPORTED_MASKS = (
    "headmix attention supports causal and sliding-window attention over sequences without "
    "padding: attention_mask None or all ones (batch size 1, or sequences of equal length)"
)


def headmix_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, mask_function=None,
                 attention_mask=None, allow_is_causal_skip=True, **kwargs):
    """transformers' mask hook: returns None (headmix applies the causal/window mask itself),
    or raises for a mask headmix cannot express."""
    if not allow_is_causal_skip:
        # transformers turns the skip off exactly when the mask is more than causal + window:
        # packed sequences, block-wise or custom (or/and) mask functions.
        raise ValueError(f"{SUPPORTED_MASKS}; this model asks for a custom mask (packed sequences, "
                         "block-wise or added mask functions)")
    padding = prepare_padding_mask(attention_mask, kv_length, kv_offset)
    if padding is not None and not bool(padding.all()):
        raise ValueError(f"{SUPPORTED_MASKS}; got an attention_mask with padded positions. Use "
                         "attn_implementation='sdpa' for padded batches")
    return None


def headmix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                      sliding_window=None, **kwargs):
    """The attention function transformers calls for ``attn_implementation="headmix"``.

    query [B, H, S_q, d]; key/value [B, H_kv (or H'), S_k, d] or a :class:`CachedKV`.
    Returns (out [B, S_q, H, d], None): headmix never forms the attention weights.
    """
    _refuse_unsupported(module, attention_mask, dropout, kwargs)
    # HF's sliding window W lets query position p see keys p - W < j <= p: W - 1 to the left.
    window_left = -1 if sliding_window is None else sliding_window - 1
    w_k = getattr(module, "headmix_w_k", None)
    w_v = getattr(module, "headmix_w_v", None)
    q = query.transpose(1, 2)
    if isinstance(key, CachedKV) and key.cache.length > key.new_k.shape[1]:
        # Tokens cached before this call: attend over the cache (decode, chunked prefill).
        out = key.cache.attend(q.contiguous(), w_k=w_k, w_v=w_v, causal=True, window_left=window_left,
                               scale=scaling)
        return out, None
    if isinstance(key, CachedKV):  # prefill into an empty cache: the new rows are everything
        k, v = key.new_k, key.new_v
    else:
        k, v = key.transpose(1, 2), value.transpose(1, 2)
    if w_k is not None:
        k, v = mix_heads(k, w_k), mix_heads(v, w_v)
    out = flash_attn(q, k, v, scale=scaling, causal=True, window=(window_left, -1))
    return out, None


def _refuse_unsupported(module, attention_mask, dropout, kwargs) -> None:
    is_causal = kwargs.get("is_causal")
    if not (getattr(module, "is_causal", True) if is_causal is None else is_causal):
        raise ValueError(f"headmix attention is causal (decoder models); {type(module).__name__} is bidirectional")
    if attention_mask is not None:
        raise ValueError(f"{SUPPORTED_MASKS}; got a materialised attention mask (was the model built "
                         "with attn_implementation='headmix'?)")
    if dropout and module.training:
        raise ValueError(f"headmix attention has no attention dropout; got dropout = {dropout} "
                         "(set the config's attention_dropout to 0)")
    if kwargs.get("softcap") is not None or getattr(module, "sinks", None) is not None:
        raise ValueError("headmix attention supports neither logit softcapping nor attention sinks "
                         f"({type(module).__name__})")
    if kwargs.get("output_attentions"):
        raise ValueError("headmix attention does not form attention weights: output_attentions needs "
                         "attn_implementation='eager'")


def register() -> None:
    """Registers ``"headmix"`` with transformers (import of ``headmix.hf`` does it once)."""
    AttentionInterface.register(NAME, headmix_attention)
    AttentionMaskInterface.register(NAME, headmix_mask)
