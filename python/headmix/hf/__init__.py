"""Hugging Face transformers integration (``pip install headmix[hf]``).

Importing this module registers ``attn_implementation="headmix"`` with transformers, so any
Llama-family model (Llama, Mistral, Qwen2, Qwen3) runs its attention through
``headmix.flash_attn``; :class:`HeadmixCache` makes ``generate()`` decode through headmix's
paged KV cache (``kv_cache_append`` + ``vhead_decode``); :func:`compress_kv_heads` turns a
pretrained GQA model's KV cache into MEA virtual heads in one call; ``HeadmixLlamaConfig`` /
``HeadmixLlamaForCausalLM`` (model_type "headmix_llama", registered with the Auto classes) are
Llama with IHA or MEA attention layers. ``import headmix`` never
needs transformers; only this module does.
"""

try:
    import transformers  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "headmix.hf needs the transformers package: pip install 'headmix[hf]'"
    ) from error

from .attention import headmix_attention, headmix_mask, register
from .cache import HeadmixCache
from .compress import LayerCompression, compress_kv_heads
from .models import HeadmixLlamaConfig, HeadmixLlamaForCausalLM, register_models

register()
register_models()

__all__ = [
    "HeadmixCache",
    "HeadmixLlamaConfig",
    "HeadmixLlamaForCausalLM",
    "LayerCompression",
    "compress_kv_heads",
    "headmix_attention",
    "headmix_mask",
    "register",
    "register_models",
]
