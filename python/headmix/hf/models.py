"""IHA and MEA as the attention of a transformers Llama model (continued-pretraining experiments).

``HeadmixLlamaConfig`` is a ``LlamaConfig`` with the layer kind and its options;
``HeadmixLlamaForCausalLM`` is Llama with every decoder layer's attention replaced by
:class:`headmix.nn.InterleavedHeadAttention` or :class:`headmix.nn.ExplicitMultiheadAttention`.
Both are registered with the Auto classes (model_type ``"headmix_llama"``), so
``save_pretrained`` / ``AutoModelForCausalLM.from_pretrained`` round-trip the extra parameters
(the mixing weights alpha, collapse, w_lc and the output norm).

IHA's layer schedule: ``iha_window`` (original tokens) makes layers sliding-window;
``iha_global_every = k`` keeps every k-th layer (indices k-1, 2k-1, ...) global, the IHA
paper's (k-1):1 schedule (k = 5: four windowed layers, then a global one).

The layers take no transformers cache (their own KV caches are ``headmix.nn``'s): the config
sets ``use_cache=False``, and ``generate()`` recomputes the sequence at each step.
"""

from __future__ import annotations

from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from ..nn import ExplicitMultiheadAttention, InterleavedHeadAttention

KINDS = ("iha", "mea")


class HeadmixLlamaConfig(LlamaConfig):
    """Llama plus ``headmix_attention`` ("iha" or "mea") and its options: ``pseudo_heads`` (IHA,
    default num_attention_heads), ``iha_window`` and ``iha_global_every`` (the schedule above),
    ``num_virtual_heads`` (MEA, default num_key_value_heads)."""

    model_type = "headmix_llama"

    def __init__(self, headmix_attention="iha", pseudo_heads=None, iha_window=None, iha_global_every=None,
                 num_virtual_heads=None, use_cache=False, **kwargs):
        if headmix_attention not in KINDS:
            raise ValueError(f"headmix_attention must be one of {KINDS}, got {headmix_attention!r}")
        self.headmix_attention = headmix_attention
        self.pseudo_heads = pseudo_heads
        self.iha_window = iha_window
        self.iha_global_every = iha_global_every
        self.num_virtual_heads = num_virtual_heads
        super().__init__(use_cache=use_cache, **kwargs)

    def iha_layer_window(self, layer_idx: int):
        """The window of IHA layer ``layer_idx``: None (global) or ``iha_window``."""
        every = self.iha_global_every
        return None if every and layer_idx % every == every - 1 else self.iha_window


class HeadmixAttention(nn.Module):
    """A decoder layer's ``self_attn``: the transformers call on the outside, a headmix module
    (``inner``) inside. The module applies its own RoPE, so transformers' position embeddings
    are not used; sequences start at position 0."""

    def __init__(self, config: HeadmixLlamaConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        dim, heads = config.hidden_size, config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or dim // heads
        if head_dim * heads != dim:
            raise ValueError(f"headmix layers need head_dim * num_attention_heads = hidden_size, got "
                             f"{head_dim} * {heads} != {dim}")
        if config.attention_bias:
            raise ValueError("headmix IHA/MEA layers have no projection biases: set attention_bias=False")
        theta, positions = config.rope_parameters["rope_theta"], config.max_position_embeddings
        common = {"rope_theta": theta, "max_seqlen": positions}
        if config.headmix_attention == "iha":
            self.inner = InterleavedHeadAttention(dim, heads, config.pseudo_heads,
                                                  window=config.iha_layer_window(layer_idx), **common)
            positions *= self.inner.pseudo  # IHA rotates at virtual positions n*P + p
        else:
            self.inner = ExplicitMultiheadAttention(dim, heads, config.num_key_value_heads,
                                                    num_virtual_heads=config.num_virtual_heads,
                                                    eps=config.rms_norm_eps, **common)
        self._rope = (positions, head_dim, theta)

    def reset_rope_tables(self) -> None:
        """Recomputes the RoPE tables, which a checkpoint does not hold (non-persistent buffers)."""
        positions, rotary_dim, theta = self._rope
        self.inner._rope_buffers(positions, rotary_dim, theta, self.inner.cos.device)

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, cache=None, **kwargs):
        if cache is not None:
            raise ValueError("headmix IHA/MEA layers take no transformers cache: use_cache=False (generate() "
                             "then recomputes the sequence; headmix.nn's modules have their own KV caches)")
        if attention_mask is not None:
            raise ValueError("headmix IHA/MEA layers are causal over unpadded sequences: attention_mask None or "
                             "all ones, with attn_implementation='headmix'")
        return self.inner(hidden_states), None


class HeadmixLlamaForCausalLM(LlamaForCausalLM):
    """Llama whose attention layers are headmix IHA or MEA layers (``HeadmixLlamaConfig``)."""

    config_class = HeadmixLlamaConfig

    def __init__(self, config: HeadmixLlamaConfig):
        super().__init__(config)
        for index, layer in enumerate(self.model.layers):
            layer.self_attn = HeadmixAttention(config, index)
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # transformers builds the model on the meta device and loads only what the checkpoint
        # holds, so the non-persistent RoPE tables come back empty: recompute them.
        model = super().from_pretrained(*args, **kwargs)
        for layer in model.model.layers:
            layer.self_attn.reset_rope_tables()
        return model


def register_models() -> None:
    AutoConfig.register(HeadmixLlamaConfig.model_type, HeadmixLlamaConfig, exist_ok=True)
    AutoModelForCausalLM.register(HeadmixLlamaConfig, HeadmixLlamaForCausalLM, exist_ok=True)
