"""A transformers ``Cache`` whose layers are headmix KV caches (contiguous or paged).

``model.generate(ids, cache=HeadmixCache(model.config, max_tokens=…, block_size=…))``
decodes through ``kv_cache_append`` and ``vhead_decode``. Each layer's cache is allocated at the
first update with the head count that layer produces, so an MEA-compressed layer
(:func:`~headmix.hf.compress_kv_heads`) stores only its H' virtual heads: H'/H_kv of the bytes.

transformers passes whatever ``Cache.update`` returns straight to the attention function; this
cache returns a :class:`CachedKV` (the layer's headmix cache and the rows just written), which
only the ``"headmix"`` attention function reads, so the cache needs
``attn_implementation="headmix"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from ..cache import KVCache


@dataclass
class CachedKV:
    """What a :class:`HeadmixCache` layer hands the attention function in place of K/V tensors."""

    cache: KVCache
    new_k: torch.Tensor  # [B, S_new, heads, d]: the rows this call appended (rotated)
    new_v: torch.Tensor


class HeadmixCacheLayer(CacheLayerMixin):
    """One layer: a :class:`headmix.cache.KVCache` of ``max_tokens`` rows, made at the first update."""

    is_sliding = False  # keeps every row; the attention function applies the layer's window
    is_compileable = False
    is_croppable = True

    def __init__(self, max_tokens: int, block_size: int | None = None):
        super().__init__()
        self.max_tokens, self.block_size = max_tokens, block_size
        self.kv: KVCache | None = None

    def lazy_initialization(self, key_states, value_states) -> None:
        batch, heads, _, d = key_states.shape
        self.kv = KVCache(batch, self.max_tokens, heads, d, head_dim_v=value_states.shape[-1],
                          dtype=key_states.dtype, device=key_states.device, block_size=self.block_size)
        self.device = key_states.device
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if torch.is_grad_enabled() and (key_states.requires_grad or value_states.requires_grad):
            raise ValueError("HeadmixCache is for inference (vhead_decode has no gradient): run under "
                             "torch.no_grad(), or train without a cache")
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new_k, new_v = key_states.transpose(1, 2), value_states.transpose(1, 2)  # [B, S, heads, d]
        self.kv.append(new_k.contiguous(), new_v.contiguous())
        view = CachedKV(self.kv, new_k, new_v)
        return view, view

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_seq_length(self) -> int:
        return 0 if self.kv is None else self.kv.length

    def get_max_length(self) -> int:
        return self.max_tokens

    @property
    def nbytes(self) -> int:
        return 0 if self.kv is None else self.kv.nbytes

    def reset(self) -> None:
        if self.kv is not None:
            self.kv.seqlens.zero_()
            self.kv.length = 0

    def crop(self, tokens_to_remove: int) -> None:
        """Forgets the last ``-tokens_to_remove`` rows (transformers' convention: a negative count);
        the kernels never read rows past the sequence lengths, so nothing is cleared."""
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count of rows to remove, got {tokens_to_remove}")
        if self.kv is not None and tokens_to_remove:
            length = max(0, self.kv.length + tokens_to_remove)
            self.kv.seqlens.fill_(length)
            self.kv.length = length

    def reorder_cache(self, beam_idx) -> None:
        raise NotImplementedError("HeadmixCache keeps each sequence's rows in place: beam search "
                                  "(reorder_cache) is not supported; use greedy or sampling decoding")


class HeadmixCache(Cache):
    """A :class:`HeadmixCacheLayer` per decoder layer of ``config``.

    ``max_tokens``: prompt plus generated tokens per sequence; ``block_size``: a paged cache of
    that many rows per block (the vLLM/FlashAttention layout), contiguous when None.
    """

    def __init__(self, config, max_tokens: int, *, block_size: int | None = None):
        layers = config.get_text_config().num_hidden_layers
        super().__init__(layers=[HeadmixCacheLayer(max_tokens, block_size) for _ in range(layers)])

    @property
    def nbytes(self) -> int:
        """Bytes of K/V storage over all layers (allocated at the first forward)."""
        return sum(layer.nbytes for layer in self.layers)
