"""Attention modules built on the headmix ops: IHA, MEA, and MEA's KV-cache compression.

Both modules take x [B, N, dim] and an optional :class:`~headmix.cache.KVCache` (from
``make_cache``). Without a cache they run causal attention over the whole sequence (training,
prefill); with one they append the new tokens and attend over everything cached (prefill into
the cache, then token-by-token decode; inference only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import _shapes
from .cache import KVCache
from .distributed.layers import mea_attention
from .ops import flash_attn, iha_attention, mix_heads
from .rope import apply_rope, rope_tables


class _RopeModule(nn.Module):
    """Holds float32 RoPE tables (``cos``, ``sin``) that follow the module across devices but keep
    float32 through ``.to(dtype)`` / ``.half()`` / ``.bfloat16()`` / ``.double()`` (the ops take
    float32 tables: bfloat16 angles would be wrong by whole radians at long positions).

    The buffers hold the tables' bits as int32: ``Module.to`` and the dtype shorthands cast only
    floating-point buffers and move every buffer to the new device (documented behaviour), so
    no override of the module's conversion is needed. ``Module.type(dst)``, which casts every
    buffer, would scramble the bits; the tables refuse to be read after it.
    """

    def _rope_buffers(self, positions: int, rotary_dim: int, theta: float, device) -> None:
        cos, sin = rope_tables(positions, rotary_dim, theta=theta, device=device)
        self.register_buffer("_cos_bits", cos.view(torch.int32), persistent=False)
        self.register_buffer("_sin_bits", sin.view(torch.int32), persistent=False)

    @property
    def cos(self) -> torch.Tensor:
        return _float32_table(self._cos_bits)

    @property
    def sin(self) -> torch.Tensor:
        return _float32_table(self._sin_bits)


def _float32_table(bits: torch.Tensor) -> torch.Tensor:
    if bits.dtype != torch.int32:
        raise RuntimeError(f"the RoPE tables were cast to {bits.dtype} (Module.type casts every buffer); "
                           "use .to(dtype) or .half()/.bfloat16()/.double(), which keep them float32")
    return bits.view(torch.float32)


class InterleavedHeadAttention(_RopeModule):
    """Interleaved Head Attention (IHA): P pseudo-heads per head, each a learned mix of all heads.

    Every head's P pseudo-queries/keys/values are linear combinations of the H original ones
    (alpha_q, alpha_k, alpha_v, [H, P*H]); the P pseudo-tokens of each token are interleaved into
    one causal sequence of N*P virtual tokens (RoPE at virtual position n*P + p), and the output
    is collapsed back to H heads by ``collapse`` [P*H, H].

    Initialisation: alpha is identity-expanded (pseudo-head p of head h copies head h) and
    ``collapse`` averages a head's P pseudo-heads. With P = 1 this is exactly multi-head
    attention with RoPE; for P > 1 no weights give plain MHA exactly (the flat causal mask lets a
    query see P copies of each past key), so training starts near it, not at it.

    ``window`` (original tokens) restricts each virtual query to the last window*P virtual keys.

    ``context_parallel`` (a ``headmix.distributed.ContextParallel``): x holds this rank's tokens
    of a sequence split across ranks; ``max_seqlen`` counts the whole sequence.
    """

    def __init__(self, dim, num_heads, pseudo_heads=None, *, window=None, rope_theta=10000.0,
                 rotary_dim=None, max_seqlen=4096, context_parallel=None, device=None, dtype=None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim = {dim} must be divisible by num_heads = {num_heads}")
        factory = {"device": device, "dtype": dtype}
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.pseudo = num_heads if pseudo_heads is None else pseudo_heads
        _shapes.iha_window_left(window, self.pseudo)  # a bad window fails here, not at the first call
        self.window = window
        self.context_parallel = context_parallel
        self.qkv = nn.Linear(dim, 3 * dim, bias=False, **factory)
        self.out = nn.Linear(dim, dim, bias=False, **factory)
        expand = torch.eye(num_heads, **factory).repeat(1, self.pseudo)  # [H, P*H], column p*H + h
        self.alpha_q = nn.Parameter(expand.clone())
        self.alpha_k = nn.Parameter(expand.clone())
        self.alpha_v = nn.Parameter(expand.clone())
        self.collapse = nn.Parameter(expand.t() / self.pseudo)  # [P*H, H]
        self._rope_buffers(max_seqlen * self.pseudo, rotary_dim or self.head_dim, rope_theta, device)

    def make_cache(self, batch_size, max_tokens, *, block_size=None) -> KVCache:
        """A cache of max_tokens * P virtual rows of H heads."""
        return KVCache(batch_size, max_tokens * self.pseudo, self.num_heads, self.head_dim,
                       dtype=self.out.weight.dtype, device=self.out.weight.device, block_size=block_size)

    def project(self, x):
        """q, k, v [B, N, H, d] of x [B, N, dim]: the fused projection, split by head."""
        batch, tokens, _ = x.shape
        return self.qkv(x).view(batch, tokens, 3, self.num_heads, self.head_dim).unbind(2)

    def forward(self, x, cache: KVCache | None = None):
        batch, tokens, dim = x.shape
        q, k, v = self.project(x)
        if cache is None:
            o = iha_attention(q, k, v, self.alpha_q, self.alpha_k, self.alpha_v, self.collapse,
                              pseudo=self.pseudo, cos=self.cos, sin=self.sin, window=self.window,
                              context_parallel=self.context_parallel)
        else:
            _refuse_cache_under_context_parallel(self)
            o = self._attend_cached(q, k, v, cache)
        return self.out(o.reshape(batch, tokens, dim))

    def _attend_cached(self, q, k, v, cache: KVCache):
        # The rule of iha_attention, applied before the append so a bad window leaves the cache alone.
        window_left = _shapes.iha_window_left(self.window, self.pseudo)
        batch, tokens = q.shape[:2]
        virtual = (batch, tokens * self.pseudo, self.num_heads, self.head_dim)
        # The cache rows are virtual tokens, so row index = virtual position.
        q_hat = mix_heads(q, self.alpha_q, pseudo=self.pseudo, cos=self.cos, sin=self.sin, pos_offset=cache.length)
        k_hat = mix_heads(k, self.alpha_k, pseudo=self.pseudo)  # rotated by the append
        v_hat = mix_heads(v, self.alpha_v, pseudo=self.pseudo)
        cache.append(k_hat.view(virtual), v_hat.view(virtual), self.cos, self.sin)
        o_hat = cache.attend(q_hat.view(virtual), causal=True, window_left=window_left)
        return mix_heads(o_hat.view(q_hat.shape), self.collapse)


class ExplicitMultiheadAttention(_RopeModule):
    """Multi-head Explicit Attention (MEA): head-level linear composition (HLC) of K and V.

    The kv heads are K_g = sum_j w_lc_k[j, g] K'_j over ``num_virtual_heads`` projected heads
    (equal to ``num_kv_heads`` and initialised to the identity in a fresh module; fewer after
    :func:`compress_kv_heads`), the same for V; GQA attention follows, then a per-head RMSNorm
    (``F.rms_norm`` over d, with a learned [H, d] gain) and the output projection. The cache
    stores the projected (virtual) heads, rotated, and rebuilds kv heads inside ``vhead_decode``.

    ``context_parallel``: as in :class:`InterleavedHeadAttention`.
    """

    def __init__(self, dim, num_heads, num_kv_heads=None, *, num_virtual_heads=None,
                 rope_theta=10000.0, rotary_dim=None, max_seqlen=4096, eps=1e-6, context_parallel=None,
                 device=None, dtype=None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim = {dim} must be divisible by num_heads = {num_heads}")
        factory = {"device": device, "dtype": dtype}
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads = {num_heads} must be a multiple of num_kv_heads = {self.num_kv_heads}")
        self.num_virtual_heads = self.num_kv_heads if num_virtual_heads is None else num_virtual_heads
        self.eps = eps
        self.context_parallel = context_parallel
        d, virtual = self.head_dim, self.num_virtual_heads
        self.q_proj = nn.Linear(dim, num_heads * d, bias=False, **factory)
        self.k_proj = nn.Linear(dim, virtual * d, bias=False, **factory)
        self.v_proj = nn.Linear(dim, virtual * d, bias=False, **factory)
        self.o_proj = nn.Linear(num_heads * d, dim, bias=False, **factory)
        hlc = torch.eye(virtual, self.num_kv_heads, **factory)
        self.w_lc_k = nn.Parameter(hlc.clone())  # [H', H_kv]
        self.w_lc_v = nn.Parameter(hlc.clone())
        self.norm_weight = nn.Parameter(torch.ones(num_heads, d, **factory))
        self.rope_theta, self.max_seqlen = rope_theta, max_seqlen
        self.rotary_dim = rotary_dim or d
        self._rope_buffers(max_seqlen, self.rotary_dim, rope_theta, device)

    def make_cache(self, batch_size, max_tokens, *, block_size=None) -> KVCache:
        """A cache of ``num_virtual_heads`` heads: H'/H_kv of an uncompressed cache's bytes."""
        return KVCache(batch_size, max_tokens, self.num_virtual_heads, self.head_dim,
                       dtype=self.o_proj.weight.dtype, device=self.o_proj.weight.device, block_size=block_size)

    def project(self, x):
        """q [B, N, H, d] and the virtual k, v [B, N, H', d] of x [B, N, dim]."""
        batch, tokens, _ = x.shape
        d = self.head_dim
        q = self.q_proj(x).view(batch, tokens, self.num_heads, d)
        k = self.k_proj(x).view(batch, tokens, self.num_virtual_heads, d)
        v = self.v_proj(x).view(batch, tokens, self.num_virtual_heads, d)
        return q, k, v

    def forward(self, x, cache: KVCache | None = None):
        batch, tokens, _ = x.shape
        d = self.head_dim
        q, k, v = self.project(x)
        if cache is None and self.context_parallel is not None:
            o = mea_attention(q, k, v, self.w_lc_k, self.w_lc_v, self.cos, self.sin,
                              context_parallel=self.context_parallel)
        else:
            o = self._attend(q, k, v, cache)
        o = F.rms_norm(o, (d,), eps=self.eps) * self.norm_weight
        return self.o_proj(o.reshape(batch, tokens, self.num_heads * d))

    def _attend(self, q, k, v, cache: KVCache | None):
        tokens = q.shape[1]
        start = 0 if cache is None else cache.length
        positions = torch.arange(start, start + tokens, device=q.device)[:, None]
        q = apply_rope(q, self.cos, self.sin, positions)
        if cache is None:
            k_lc = mix_heads(k, self.w_lc_k, cos=self.cos, sin=self.sin)
            v_lc = mix_heads(v, self.w_lc_v)
            o = flash_attn(q, k_lc, v_lc, causal=True)
        else:
            _refuse_cache_under_context_parallel(self)
            cache.append(k, v, self.cos, self.sin)
            o = cache.attend(q, w_k=self.w_lc_k, w_v=self.w_lc_v, causal=True)
        return o


def _refuse_cache_under_context_parallel(module: nn.Module) -> None:
    if module.context_parallel is not None:
        raise ValueError(f"{type(module).__name__}: a KV cache (prefill, decode) runs on one rank; set "
                         "context_parallel = None for cached inference")


@torch.no_grad()
def compress_kv_heads(module: ExplicitMultiheadAttention, num_virtual: int) -> ExplicitMultiheadAttention:
    """MEA §5.2 data-free KV-cache compression: a copy of ``module`` caching ``num_virtual`` heads.

    W_K (reshaped to (dim*d) x H') is factored by SVD and truncated to its top ``num_virtual``
    singular triplets, W_K ~ U_r (S_r V_r^T): U_r becomes the new K projection (the virtual
    heads) and (S_r V_r^T) w_lc_k the new HLC weights that rebuild the H_kv heads; the same for
    V. With num_virtual equal to the current head count the result is exact; with fewer it is
    the best rank-``num_virtual`` approximation of W_K (Eckart-Young).
    """
    if not 1 <= num_virtual <= module.num_virtual_heads:
        raise ValueError(f"num_virtual must be in [1, {module.num_virtual_heads}], got {num_virtual}")
    dim = module.q_proj.in_features
    factory = {"device": module.o_proj.weight.device, "dtype": module.o_proj.weight.dtype}
    compressed = ExplicitMultiheadAttention(
        dim, module.num_heads, module.num_kv_heads, num_virtual_heads=num_virtual,
        rope_theta=module.rope_theta, rotary_dim=module.rotary_dim, max_seqlen=module.max_seqlen,
        eps=module.eps, **factory,
    )
    compressed.q_proj.weight.copy_(module.q_proj.weight)
    compressed.o_proj.weight.copy_(module.o_proj.weight)
    compressed.norm_weight.copy_(module.norm_weight)
    for proj, hlc, new_proj, new_hlc in (
        (module.k_proj, module.w_lc_k, compressed.k_proj, compressed.w_lc_k),
        (module.v_proj, module.w_lc_v, compressed.v_proj, compressed.w_lc_v),
    ):
        weight, factor, _ = svd_virtual_heads(proj.weight, module.num_virtual_heads, num_virtual)
        new_proj.weight.copy_(weight)
        new_hlc.copy_(factor @ hlc.double())
    return compressed


@torch.no_grad()
def svd_virtual_heads(weight: torch.Tensor, num_heads: int, num_virtual: int):
    """MEA §5.2's factorisation of one projection: the shared math of every ``compress_kv_heads``.

    ``weight`` [num_heads * d, D] is an ``nn.Linear`` weight producing num_heads heads of width d
    (a bias may ride along as an extra input column). Reshaped to M [(D * d), num_heads], it is
    factored by SVD and truncated to its top ``num_virtual`` singular triplets,
    M ~ U_r (S_r V_r^T). Returns, in float64, the projection to the virtual heads
    [num_virtual * d, D] (U_r in Linear layout), the rebuild factor S_r V_r^T [num_virtual,
    num_heads] (head g = sum_j factor[j, g] virtual head j, the w layout of the ops), and all
    singular values [num_heads], so callers can report the truncation error: the squared
    Frobenius error of the truncated projection is the sum of the discarded values squared
    (Eckart-Young: no rank-num_virtual factorisation does better).
    """
    rows, dim = weight.shape
    d = rows // num_heads
    # weight[g*d + e, i] = W[i, g*d + e]  ->  M[(i, e), g]
    m = weight.double().view(num_heads, d, dim).permute(2, 1, 0).reshape(dim * d, num_heads)
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    u = u[:, :num_virtual]
    projection = u.reshape(dim, d, num_virtual).permute(2, 1, 0).reshape(num_virtual * d, dim)
    return projection, s[:num_virtual, None] * vh[:num_virtual], s
