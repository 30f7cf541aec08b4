"""Every input rule of every headmix op, as one bad input and the error it must raise.

csrc/checks.cpp states the rules for the native ops and python/headmix/_checks.py states them
again for the fake kernels (a fake cannot call C++: its sizes may be symbolic).
tests/test_check_parity.py runs each row through the C++ op and through its fake and requires
this exact message from both. A row changes the op's valid call (``VALID``) by schema argument
name, so the backward ops and arguments the wrappers never pass (``pos``) are covered too.

Rules that read tensor data (cache lengths, page numbers, positions: ``check_cache_ranges``)
are marked ``reads_data``: a fake tensor has no data, so the fake must accept the call and the
native op must reject it. Rules about a second device are marked ``needs_cuda``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

ArgsFn = Callable[[str], dict]


@dataclass(frozen=True)
class Rule:
    op: str  # a VALID key: torch.ops.headmix.<op>, or "<op> (paged)"
    name: str  # what the bad input breaks
    changes: ArgsFn  # device -> the schema arguments that differ from VALID[op]
    message: str
    reads_data: bool = False
    needs_cuda: bool = False

    @property
    def id(self) -> str:
        return f"{self.op}: {self.name}"

    def args(self, device: str) -> dict:
        """The op's bad call: its valid one with this rule's changes."""
        return VALID[self.op](device) | self.changes(device)


def randn(*shape, device, dtype=torch.float32):
    return torch.randn(*shape, device=device, dtype=dtype)


def int32(values, device):
    return torch.tensor(values, dtype=torch.int32, device=device)


def strided_last_dim(*shape, device):
    """A [..., a, b] tensor whose last dim has stride a (a transpose of [..., b, a])."""
    return randn(*shape[:-2], shape[-1], shape[-2], device=device).transpose(-1, -2)


def rope(max_pos, rotary_dim, device):
    """RoPE tables of the right shape; the rules read no values (and random ones, unlike
    headmix.rope_tables, can be made on fake CUDA tensors without a GPU)."""
    return dict(cos=randn(max_pos, rotary_dim // 2, device=device), sin=randn(max_pos, rotary_dim // 2, device=device))


# ---------------------------------------------------------------- valid calls, by schema argument


def mix_heads_args(d):
    # N * pseudo = 6 positions, exactly what the tables hold.
    return dict(x=randn(2, 3, 4, 8, device=d), w=randn(4, 8, device=d), pseudo=2, **rope(6, 8, d), pos_offset=0)


def mix_heads_backward_args(d):
    return dict(grad=randn(2, 3, 8, 8, device=d)) | mix_heads_args(d) | dict(need_dx=True, need_dw=True)


def flash_attn_fwd_args(d):
    return dict(q=randn(2, 5, 4, 8, device=d), k=randn(2, 7, 2, 8, device=d), v=randn(2, 7, 2, 8, device=d),
                scale=None, causal=True, window_left=-1, window_right=-1)


def flash_attn_bwd_args(d):
    fwd = flash_attn_fwd_args(d)
    return dict(dout=randn(2, 5, 4, 8, device=d), q=fwd["q"], k=fwd["k"], v=fwd["v"], out=randn(2, 5, 4, 8, device=d),
                lse=randn(2, 4, 5, device=d), dlse=randn(2, 4, 5, device=d), scale=None, causal=True,
                window_left=-1, window_right=-1)


def vhead_decode_args(d, *, paged=False):
    """Sequences of 5 and 12 rows: contiguous [2, 12, 2, 8], or 4-row pages (6 of them)."""
    shape, block_table = ((6, 4, 2, 8), int32([[4, 0, 2], [1, 5, 3]], d)) if paged else ((2, 12, 2, 8), None)
    return dict(q=randn(2, 1, 4, 8, device=d), k_cache=randn(*shape, device=d), v_cache=randn(*shape, device=d),
                cache_seqlens=int32([5, 12], d), w_k=None, w_v=None, block_table=block_table, scale=None,
                causal=True, window_left=-1)


def kv_cache_append_args(d, *, paged=False):
    """Two new rows after 3 and 6 cached ones: the second sequence fills its 8 rows exactly."""
    shape, block_table = ((6, 4, 2, 8), int32([[5, 2], [0, 3]], d)) if paged else ((2, 8, 2, 8), None)
    return dict(k_new=randn(2, 2, 2, 8, device=d), v_new=randn(2, 2, 2, 8, device=d),
                k_cache=randn(*shape, device=d), v_cache=randn(*shape, device=d), cache_seqlens=int32([3, 6], d),
                block_table=block_table, **rope(8, 8, d), pos=None)


VALID: dict[str, ArgsFn] = {
    "mix_heads": mix_heads_args,
    "mix_heads_backward": mix_heads_backward_args,
    "flash_attn_fwd": flash_attn_fwd_args,
    "flash_attn_bwd": flash_attn_bwd_args,
    "vhead_decode": vhead_decode_args,
    "vhead_decode (paged)": lambda d: vhead_decode_args(d, paged=True),
    "kv_cache_append": kv_cache_append_args,
    "kv_cache_append (paged)": lambda d: kv_cache_append_args(d, paged=True),
}


def op_name(call: str) -> str:
    """The torch.ops.headmix op of a VALID entry ("vhead_decode (paged)" -> "vhead_decode")."""
    return call.split(" ")[0]


RULES: list[Rule] = []


def rules(ops: tuple[str, ...], table: dict, **flags) -> None:
    """Adds each {name: (changes, message)} of ``table`` for every call in ``ops``."""
    RULES.extend(Rule(op, name, changes, message, **flags) for op in ops for name, (changes, message) in table.items())


def device_rules(ops, names, ref, ref_name):
    """``name`` moved to the CPU while the rest of a valid call is on CUDA."""
    return {f"{name} on another device": (lambda d, name=name: {name: VALID[ops[0]]("cpu")[name]},
                                          f"{name} must be on the same device as {ref_name} (cuda:0), got cpu")
            for name in names}


# ---------------------------------------------------------------- mix_heads (and its backward)

MIX = ("mix_heads", "mix_heads_backward")

rules(MIX, {
    "x rank": (lambda d: dict(x=randn(2, 3, 4, device=d)), "x must be [B, N, H_in, d] (4-D), got shape [2, 3, 4]"),
    "w rank": (lambda d: dict(w=randn(4, 8, 1, device=d)), "w must be [H_in, H_out] (2-D), got shape [4, 8, 1]"),
    "integer x": (lambda d: dict(x=torch.ones(2, 3, 4, 8, dtype=torch.int64, device=d)),
                  "x must be float32, float64, bfloat16 or float16, got int64"),
    "w dtype": (lambda d: dict(w=randn(4, 8, device=d, dtype=torch.float64)),
                "w must have the dtype of x (float32) or float32, got float64"),
    "x last dim strided": (lambda d: dict(x=strided_last_dim(2, 3, 4, 8, device=d)),
                           "x must have a contiguous last dim (stride 1), got strides [96, 32, 1, 4]"),
    "w rows != H_in": (lambda d: dict(w=randn(5, 8, device=d)),
                       "w must be [H_in, H_out] with H_in = x.size(2) = 4, got shape [5, 8]"),
    "pseudo 0": (lambda d: dict(pseudo=0), "pseudo must be >= 1, got 0"),
    "H_out % pseudo": (lambda d: dict(w=randn(4, 6, device=d), pseudo=4),
                       "H_out = w.size(1) = 6 must be divisible by pseudo = 4"),
    "negative pos_offset": (lambda d: dict(pos_offset=-1), "pos_offset must be >= 0, got -1"),
    "cos without sin": (lambda d: dict(sin=None), "cos and sin must be given together (RoPE), got only cos"),
    "sin without cos": (lambda d: dict(cos=None), "cos and sin must be given together (RoPE), got only sin"),
    "cos rank": (lambda d: dict(cos=randn(6, 4, 1, device=d)),
                 "cos must be [max_pos, rotary_dim/2] (2-D), got shape [6, 4, 1]"),
    "sin shape": (lambda d: dict(sin=randn(6, 3, device=d)), "sin must have the shape of cos [6, 4], got [6, 3]"),
    "float64 tables": (lambda d: {name: t.double() for name, t in rope(6, 8, d).items()},
                       "cos and sin must be float32, got float64 and float64"),
    "rotary_dim > d": (lambda d: rope(6, 10, d),
                       "cos/sin cover rotary_dim = 2*5 = 10 features, more than the head dim 8"),
    "cos too short": (lambda d: dict(pos_offset=1), "cos/sin have 6 positions but the tokens need positions up to 6 "
                                                    "(pos_offset + N*pseudo - 1 = 1 + 3*2 - 1)"),
})
rules(MIX, device_rules(MIX, ("w", "cos", "sin"), "x", "x"), needs_cuda=True)

rules(("mix_heads_backward",), {
    "grad shape": (lambda d: dict(grad=randn(2, 3, 4, 8, device=d)),
                   "grad must be [B, N, H_out, d] = [2, 3, 8, 8], got shape [2, 3, 4, 8]"),
    "integer grad": (lambda d: dict(grad=torch.ones(2, 3, 8, 8, dtype=torch.int64, device=d)),
                     "grad must be float32, float64, bfloat16 or float16, got int64"),
})
rules(("mix_heads_backward",), device_rules(("mix_heads_backward",), ("grad",), "x", "x"), needs_cuda=True)

# ---------------------------------------------------------------- flash attention (and its backward)

FLASH = ("flash_attn_fwd", "flash_attn_bwd")

rules(FLASH, {
    "q rank": (lambda d: dict(q=randn(2, 5, 32, device=d)), "q must be [B, S_q, H, d] (4-D), got shape [2, 5, 32]"),
    "k rank": (lambda d: dict(k=randn(2, 7, 16, device=d)), "k must be [B, S_k, H_kv, d] (4-D), got shape [2, 7, 16]"),
    "v rank": (lambda d: dict(v=randn(2, 7, 16, device=d)),
               "v must be [B, S_k, H_kv, d_v] (4-D), got shape [2, 7, 16]"),
    "integer q": (lambda d: dict(q=torch.ones(2, 5, 4, 8, dtype=torch.int64, device=d)),
                  "q must be float32, float64, bfloat16 or float16, got int64"),
    "k dtype": (lambda d: dict(k=randn(2, 7, 2, 8, device=d, dtype=torch.float64)),
                "k must have the dtype of q (float32), got float64"),
    "v dtype": (lambda d: dict(v=randn(2, 7, 2, 8, device=d, dtype=torch.bfloat16)),
                "v must have the dtype of q (float32), got bfloat16"),
    "q last dim strided": (lambda d: dict(q=strided_last_dim(2, 5, 4, 8, device=d)),
                           "q must have a contiguous last dim (stride 1), got strides [160, 32, 1, 4]"),
    "k last dim strided": (lambda d: dict(k=strided_last_dim(2, 7, 2, 8, device=d)),
                           "k must have a contiguous last dim (stride 1), got strides [112, 16, 1, 2]"),
    "v last dim strided": (lambda d: dict(v=strided_last_dim(2, 7, 2, 8, device=d)),
                           "v must have a contiguous last dim (stride 1), got strides [112, 16, 1, 2]"),
    "batch": (lambda d: dict(k=randn(1, 7, 2, 8, device=d), v=randn(1, 7, 2, 8, device=d)),
              "q, k, v must share the batch B = 2, got k [1, 7, 2, 8] and v [1, 7, 2, 8]"),
    "k head dim": (lambda d: dict(k=randn(2, 7, 2, 6, device=d)),
                   "k must have the head dim of q (8), got shape [2, 7, 2, 6]"),
    "v heads": (lambda d: dict(v=randn(2, 7, 1, 8, device=d)),
                "v must be [B, S_k, H_kv, d_v] with S_k, H_kv of k [2, 7, 2, 8], got shape [2, 7, 1, 8]"),
    "v length": (lambda d: dict(v=randn(2, 6, 2, 8, device=d)),
                 "v must be [B, S_k, H_kv, d_v] with S_k, H_kv of k [2, 7, 2, 8], got shape [2, 6, 2, 8]"),
    "H % H_kv": (lambda d: dict(k=randn(2, 7, 3, 8, device=d), v=randn(2, 7, 3, 8, device=d)),
                 "H = q.size(2) = 4 must be a multiple of H_kv = k.size(2) = 3 (GQA)"),
    "window_left < -1": (lambda d: dict(causal=False, window_left=-2, window_right=3),
                         "window_left/window_right must be >= -1 (-1 = unbounded), got (-2, 3)"),
    "window_right < -1": (lambda d: dict(causal=False, window_right=-2),
                          "window_left/window_right must be >= -1 (-1 = unbounded), got (-1, -2)"),
})
rules(FLASH, device_rules(FLASH, ("k", "v"), "q", "q"), needs_cuda=True)

# The softmax scale (csrc/attention_scale.h), for every attention op.
SCALE_RULES = {
    "negative scale": (lambda d: dict(scale=-0.5),
                       "scale must be a positive finite number (or None for 1/sqrt(d)), got -0.5"),
    "zero scale": (lambda d: dict(scale=0.0), "scale must be a positive finite number (or None for 1/sqrt(d)), got 0"),
    "infinite scale": (lambda d: dict(scale=float("inf")),
                       "scale must be a positive finite number (or None for 1/sqrt(d)), got inf"),
}
rules(FLASH + ("vhead_decode",), SCALE_RULES)

rules(("flash_attn_bwd",), {
    "out shape": (lambda d: dict(out=randn(2, 5, 4, 7, device=d)),
                  "out must be [B, S_q, H, d_v] = [2, 5, 4, 8], got shape [2, 5, 4, 7]"),
    "dout shape": (lambda d: dict(dout=randn(2, 5, 4, 7, device=d)),
                   "dout must be [B, S_q, H, d_v] = [2, 5, 4, 8], got shape [2, 5, 4, 7]"),
    "lse shape": (lambda d: dict(lse=randn(2, 5, 4, 7, device=d)),
                  "lse must be [B, H, S_q] = [2, 4, 5], got shape [2, 5, 4, 7]"),
    "dlse shape": (lambda d: dict(dlse=randn(2, 5, 4, 7, device=d)),
                   "dlse must be [B, H, S_q] = [2, 4, 5], got shape [2, 5, 4, 7]"),
})

# ---------------------------------------------------------------- the cache, shared by decode and append


def cache_rules(call, ref, contiguous_shape, paged_shape, batch_of_shape):
    """The rules of check_cache for ``call`` (its dtype/device reference is ``ref``)."""
    paged = call.endswith("(paged)")
    shape = paged_shape if paged else contiguous_shape
    layout, layout_v = (("[num_blocks, block_size, H', d]", "[num_blocks, block_size, H', d_v]") if paged
                        else ("[B, T_max, H', d]", "[B, T_max, H', d_v]"))
    strides = list(torch.empty(shape).stride())
    strides[-2:] = [1, shape[-2]]
    table = {
        "k_cache rank": (lambda d: dict(k_cache=randn(*shape[:3], device=d)),
                         f"k_cache must be {layout} (4-D), got shape {list(shape[:3])}"),
        "v_cache rank": (lambda d: dict(v_cache=randn(*shape[:3], device=d)),
                         f"v_cache must be {layout_v} (4-D), got shape {list(shape[:3])}"),
        "k_cache dtype": (lambda d: dict(k_cache=randn(*shape, device=d, dtype=torch.float64)),
                          f"k_cache must have the dtype of {ref} (float32), got float64"),
        "v_cache dtype": (lambda d: dict(v_cache=randn(*shape, device=d, dtype=torch.float16)),
                          f"v_cache must have the dtype of {ref} (float32), got float16"),
        "k_cache last dim strided": (lambda d: dict(k_cache=strided_last_dim(*shape, device=d)),
                                     f"k_cache must have a contiguous last dim (stride 1), got strides {strides}"),
        "v_cache last dim strided": (lambda d: dict(v_cache=strided_last_dim(*shape, device=d)),
                                     f"v_cache must have a contiguous last dim (stride 1), got strides {strides}"),
        "v_cache heads": (lambda d: dict(v_cache=randn(*shape[:2], 1, 8, device=d)),
                          f"v_cache must match k_cache {list(shape)} in all but the last dim, "
                          f"got {[*shape[:2], 1, 8]}"),
        "cache_seqlens length": (lambda d: dict(cache_seqlens=int32([5, 6, 1], d)),
                                 "cache_seqlens must be [B] with B = 2, got shape [3]"),
        "int64 cache_seqlens": (lambda d: dict(cache_seqlens=torch.tensor([5, 6], device=d)),
                                "cache_seqlens must be int32, got int64"),
    }
    if paged:
        table |= {
            "block_table batch": (lambda d: dict(block_table=int32([[4, 0, 2]], d)),
                                  "block_table must be [B, max_blocks] with B = 2, got shape [1, 3]"),
            "block_table rank": (lambda d: dict(block_table=int32([4, 0], d)),
                                 "block_table must be [B, max_blocks] with B = 2, got shape [2]"),
            "int64 block_table": (lambda d: dict(block_table=VALID[call](d)["block_table"].long()),
                                  "block_table must be int32, got int64"),
        }
    else:
        bad = (3, *shape[1:])
        table["k_cache batch"] = (lambda d: dict(k_cache=randn(*bad, device=d), v_cache=randn(*bad, device=d)),
                                  f"k_cache must be [B, T_max, H', d] with B = {batch_of_shape} (or pass block_table "
                                  f"for a paged cache), got shape {list(bad)}")
    rules((call,), table)
    names = ["k_cache", "v_cache"] + (["block_table"] if paged else [])
    rules((call,), device_rules((call,), names, ref, ref), needs_cuda=True)
    rules((call,), {"cache_seqlens on another device": (
        lambda d: dict(cache_seqlens=VALID[call]("cpu")["cache_seqlens"]),
        "cache_seqlens must be on the same device as the queries/keys (cuda:0), got cpu")}, needs_cuda=True)


# ---------------------------------------------------------------- vhead_decode

DECODE = ("vhead_decode", "vhead_decode (paged)")

rules(DECODE, {
    "q rank": (lambda d: dict(q=randn(2, 4, 8, device=d)), "q must be [B, S_q, H, d] (4-D), got shape [2, 4, 8]"),
    "integer q": (lambda d: dict(q=torch.ones(2, 1, 4, 8, dtype=torch.int64, device=d)),
                  "q must be float32, float64, bfloat16 or float16, got int64"),
    "q last dim strided": (lambda d: dict(q=strided_last_dim(2, 1, 4, 8, device=d)),
                           "q must have a contiguous last dim (stride 1), got strides [32, 32, 1, 4]"),
    "q head dim": (lambda d: dict(q=randn(2, 1, 4, 6, device=d)),
                   "q must have the head dim of k_cache (8), got shape [2, 1, 4, 6]"),
    "w_k without w_v": (lambda d: dict(w_k=randn(2, 4, device=d)),
                        "w_k and w_v must be given together (virtual-head cache), got only w_k"),
    "w_v without w_k": (lambda d: dict(w_v=randn(2, 4, device=d)),
                        "w_k and w_v must be given together (virtual-head cache), got only w_v"),
    "w_k rows != H'": (lambda d: dict(w_k=randn(3, 4, device=d), w_v=randn(3, 4, device=d)),
                       "w_k must be [H', H_kv] with H' = k_cache.size(2) = 2, got shape [3, 4]"),
    "w_v rank": (lambda d: dict(w_k=randn(2, 4, device=d), w_v=randn(2, 4, 1, device=d)),
                 "w_v must be [H', H_kv] with H' = k_cache.size(2) = 2, got shape [2, 4, 1]"),
    "w_k dtype": (lambda d: dict(w_k=randn(2, 4, device=d, dtype=torch.float64), w_v=randn(2, 4, device=d)),
                  "w_k must have the dtype of q (float32) or float32, got float64"),
    "w_v columns": (lambda d: dict(w_k=randn(2, 4, device=d), w_v=randn(2, 2, device=d)),
                    "w_v must be [H', H_kv] like w_k [2, 4], got shape [2, 2]"),
    "H % H_kv": (lambda d: dict(q=randn(2, 1, 3, 8, device=d)),
                 "H = q.size(2) = 3 must be a multiple of H_kv = 2 (GQA)"),
    "H % H_kv of w_k": (lambda d: dict(w_k=randn(2, 3, device=d), w_v=randn(2, 3, device=d)),
                        "H = q.size(2) = 4 must be a multiple of H_kv = 3 (GQA)"),
    "window_left < -1": (lambda d: dict(window_left=-2), "window_left must be >= -1 (-1 = unbounded), got -2"),
})
rules(DECODE, {"w_v on another device": (
    lambda d: dict(w_k=randn(2, 4, device=d), w_v=randn(2, 4, device="cpu")),
    "w_v must be on the same device as q (cuda:0), got cpu")}, needs_cuda=True)
for call in DECODE:
    cache_rules(call, "q", (2, 12, 2, 8), (6, 4, 2, 8), 2)

rules(DECODE, {
    "cache_seqlens beyond capacity": (lambda d: dict(cache_seqlens=int32([5, 13], d)),
                                      "cache_seqlens[1] = 13 exceeds the cache capacity of 12 rows"),
    "negative cache_seqlens": (lambda d: dict(cache_seqlens=int32([-1, 3], d)),
                               "cache_seqlens[0] must be >= 0, got -1"),
}, reads_data=True)
rules(("vhead_decode (paged)",), {
    "block_table entry out of range": (lambda d: dict(block_table=int32([[4, 0, 2], [1, 6, 3]], d)),
                                       "block_table[1, 1] = 6 is out of range: the cache has 6 blocks"),
    "negative block_table entry": (lambda d: dict(block_table=int32([[4, -1, 2], [1, 5, 3]], d)),
                                   "block_table[0, 1] = -1 is out of range: the cache has 6 blocks"),
}, reads_data=True)

# ---------------------------------------------------------------- kv_cache_append

APPEND = ("kv_cache_append", "kv_cache_append (paged)")

rules(APPEND, {
    "k_new rank": (lambda d: dict(k_new=randn(2, 2, 16, device=d)),
                   "k_new must be [B, S_new, H', d] (4-D), got shape [2, 2, 16]"),
    "v_new rank": (lambda d: dict(v_new=randn(2, 2, 16, device=d)),
                   "v_new must be [B, S_new, H', d_v] (4-D), got shape [2, 2, 16]"),
    "integer k_new": (lambda d: dict(k_new=torch.ones(2, 2, 2, 8, dtype=torch.int64, device=d)),
                      "k_new must be float32, float64, bfloat16 or float16, got int64"),
    "v_new dtype": (lambda d: dict(v_new=randn(2, 2, 2, 8, device=d, dtype=torch.float64)),
                    "v_new must have the dtype of k_new (float32), got float64"),
    "k_new heads": (lambda d: dict(k_new=randn(2, 2, 3, 8, device=d)),
                    "k_new must be [B, S_new, H', d] matching k_cache, expected [2, 2, 2, 8], got shape [2, 2, 3, 8]"),
    "v_new head dim": (lambda d: dict(v_new=randn(2, 2, 2, 6, device=d)),
                       "v_new must be [B, S_new, H', d_v] matching v_cache, expected [2, 2, 2, 8], "
                       "got shape [2, 2, 2, 6]"),
    "cos without sin": (lambda d: dict(sin=None), "cos and sin must be given together (RoPE), got only cos"),
    "sin without cos": (lambda d: dict(cos=None), "cos and sin must be given together (RoPE), got only sin"),
    "cos rank": (lambda d: dict(cos=randn(8, 4, 1, device=d)),
                 "cos must be [max_pos, rotary_dim/2] (2-D), got shape [8, 4, 1]"),
    "sin shape": (lambda d: dict(sin=randn(7, 4, device=d)), "sin must have the shape of cos [8, 4], got [7, 4]"),
    "float64 sin": (lambda d: dict(sin=randn(8, 4, device=d, dtype=torch.float64)),
                    "cos and sin must be float32, got float32 and float64"),
    "rotary_dim > d": (lambda d: rope(8, 10, d),
                       "cos/sin cover rotary_dim = 2*5 = 10 features, more than the head dim 8"),
    "pos length": (lambda d: dict(pos=int32([0], d)), "pos must be [B] with B = 2, got shape [1]"),
    "int64 pos": (lambda d: dict(pos=torch.tensor([0, 0], device=d)), "pos must be int32, got int64"),
    "pos without cos": (lambda d: dict(pos=int32([0, 0], d), cos=None, sin=None),
                        "pos only sets RoPE positions: pass cos and sin with it"),
})
rules(APPEND, device_rules(APPEND, ("v_new",), "k_new", "k_new")
      | device_rules(APPEND, ("cos", "sin"), "k_new", "k_new"), needs_cuda=True)
rules(APPEND, {"pos on another device": (lambda d: dict(pos=int32([0, 0], "cpu")),
                                         "pos must be on the same device as the queries/keys (cuda:0), got cpu")},
      needs_cuda=True)
for call in APPEND:
    cache_rules(call, "k_new", (2, 8, 2, 8), (6, 4, 2, 8), 2)

OVERFLOW = "cache_seqlens[1] = 7 plus the new rows 2 exceeds the cache capacity of 8 rows"
rules(APPEND, {
    "overflow in the second sequence": (lambda d: dict(cache_seqlens=int32([3, 7], d)), OVERFLOW),
    "negative cache_seqlens": (lambda d: dict(cache_seqlens=int32([-1, 3], d)),
                               "cache_seqlens[0] must be >= 0, got -1"),
    "cos too short for the second sequence": (lambda d: rope(7, 8, d),
                                              "cos/sin have 7 positions but sequence 1 needs positions up to 7"),
    "negative pos": (lambda d: dict(pos=int32([-1, 0], d)), "pos[0] must be >= 0, got -1"),
    "pos beyond the tables": (lambda d: dict(pos=int32([0, 7], d)),
                              "cos/sin have 8 positions but sequence 1 needs positions up to 8"),
}, reads_data=True)
rules(("kv_cache_append (paged)",), {
    "new rows on a page out of range": (lambda d: dict(block_table=int32([[5, 2], [0, 9]], d)),
                                        "block_table[1, 1] = 9 is out of range: the cache has 6 blocks"),
}, reads_data=True)
