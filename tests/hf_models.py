"""Small random transformers models of the four Llama-family architectures headmix.hf supports,
built from configs (no downloads), with weights large enough that attention is far from uniform."""

from __future__ import annotations

import math
import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FAMILIES = ["llama", "mistral", "qwen2", "qwen3"]
COMPRESSIBLE = ["llama", "mistral", "qwen2"]  # qwen3's k-norm is refused (docs/hf.md)

HEADS, KV_HEADS, HEAD_DIM, HIDDEN = 4, 2, 16, 64
SLIDING_WINDOW = 8  # mistral: shorter than the test sequences, so the window matters
VOCAB = 96


def config(family: str, *, layers: int = 2, kv_heads: int = KV_HEADS, **overrides):
    from transformers import AutoConfig

    extra = {"sliding_window": SLIDING_WINDOW} if family == "mistral" else {}
    return AutoConfig.for_model(
        family, vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=layers,
        num_attention_heads=HEADS, num_key_value_heads=kv_heads, head_dim=HEAD_DIM, max_position_embeddings=256,
        tie_word_embeddings=False, **extra, **overrides,
    )


def model(family: str, attn_implementation: str, dtype=torch.float64, **config_args):
    """A random model in eval mode; the same seed gives the same weights for every implementation."""
    from transformers import AutoModelForCausalLM

    built = AutoModelForCausalLM.from_config(config(family, **config_args), attn_implementation=attn_implementation,
                                             dtype=torch.float64)
    with torch.no_grad():
        for name, p in built.named_parameters():
            if p.dim() == 2:
                p.normal_(0, 1.5 / math.sqrt(p.shape[1]))
            elif name.endswith("bias"):
                p.normal_(0, 0.5)
            else:  # norm gains
                p.normal_(1, 0.2)
    return built.to(dtype).eval()


def same_weights(source, attn_implementation: str, dtype=None):
    """A copy of ``source`` running another attention implementation (and optionally dtype)."""
    import copy

    clone = copy.deepcopy(source)
    clone.set_attn_implementation(attn_implementation)
    return clone if dtype is None else clone.to(dtype)
