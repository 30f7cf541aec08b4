"""Bad inputs get a RuntimeError that names the argument, what was expected and what was given,
through the public wrappers. A rejected kv_cache_append leaves the cache bitwise untouched.
Every rule of every op, backward ops included, native and fake: test_check_parity.py."""

import re

import pytest
import torch
from tolerances import assert_bitwise_equal

import headmix

ops = torch.ops.headmix


def randn(*shape, device="cpu", dtype=torch.float32):
    return torch.randn(*shape, device=device, dtype=dtype)


def int32(values, device="cpu"):
    return torch.tensor(values, dtype=torch.int32, device=device)


def rope(max_pos, rotary_dim, device):
    return dict(zip(("cos", "sin"), headmix.rope_tables(max_pos, rotary_dim, device=device)))


def strided_last_dim(*shape, device="cpu"):
    """A [..., a, b] tensor whose last dim has stride a (a transpose of [..., b, a])."""
    return randn(*shape[:-2], shape[-1], shape[-2], device=device).transpose(-1, -2)


# ---------------------------------------------------------------- valid inputs, and what breaks them


def mix_heads_inputs(device, **changes):
    return dict(x=randn(2, 3, 4, 8, device=device), w=randn(4, 8, device=device), pseudo=2,
                **rope(6, 8, device), pos_offset=0) | changes  # N * pseudo = 6 positions


MIX_HEADS_ERRORS = {
    "x rank": (lambda d: dict(x=randn(2, 3, 4, device=d)), "x must be [B, N, H_in, d] (4-D), got shape [2, 3, 4]"),
    "w rank": (lambda d: dict(w=randn(4, 8, 1, device=d)), "w must be [H_in, H_out] (2-D), got shape [4, 8, 1]"),
    "w rows != H_in": (lambda d: dict(w=randn(5, 8, device=d)),
                       "w must be [H_in, H_out] with H_in = x.size(2) = 4, got shape [5, 8]"),
    "H_out % pseudo": (lambda d: dict(w=randn(4, 6, device=d), pseudo=4),
                       "H_out = w.size(1) = 6 must be divisible by pseudo = 4"),
    "pseudo 0": (lambda d: dict(pseudo=0), "pseudo must be >= 1, got 0"),
    "negative pos_offset": (lambda d: dict(pos_offset=-1), "pos_offset must be >= 0, got -1"),
    "cos too short": (lambda d: dict(pos_offset=1),
                      "cos/sin have 6 positions but the tokens need positions up to 6 "
                      "(pos_offset + N*pseudo - 1 = 1 + 3*2 - 1)"),
    "cos without sin": (lambda d: dict(sin=None), "cos and sin must be given together (RoPE), got only cos"),
    "sin without cos": (lambda d: dict(cos=None), "cos and sin must be given together (RoPE), got only sin"),
    "rotary_dim > d": (lambda d: rope(6, 10, d),
                       "cos/sin cover rotary_dim = 2*5 = 10 features, more than the head dim 8"),
    "float64 tables": (lambda d: {name: t.double() for name, t in rope(6, 8, d).items()},
                       "cos and sin must be float32, got float64 and float64"),
    "w dtype": (lambda d: dict(w=randn(4, 8, device=d, dtype=torch.float64)),
                "w must have the dtype of x (float32) or float32, got float64"),
    "integer x": (lambda d: dict(x=torch.ones(2, 3, 4, 8, dtype=torch.int64, device=d)),
                  "x must be float32, float64, bfloat16 or float16, got int64"),
    "x last dim strided": (lambda d: dict(x=strided_last_dim(2, 3, 4, 8, device=d)),
                           "x must have a contiguous last dim (stride 1), got strides [96, 32, 1, 4]"),
}


def flash_attn_inputs(device, **changes):
    return dict(q=randn(2, 5, 4, 8, device=device), k=randn(2, 7, 2, 8, device=device),
                v=randn(2, 7, 2, 8, device=device), causal=True, window=(-1, -1)) | changes


FLASH_ATTN_ERRORS = {
    "q rank": (lambda d: dict(q=randn(2, 5, 32, device=d)), "q must be [B, S_q, H, d] (4-D), got shape [2, 5, 32]"),
    "k head dim": (lambda d: dict(k=randn(2, 7, 2, 6, device=d)),
                   "k must have the head dim of q (8), got shape [2, 7, 2, 6]"),
    "v heads": (lambda d: dict(v=randn(2, 7, 1, 8, device=d)),
                "v must be [B, S_k, H_kv, d_v] with S_k, H_kv of k [2, 7, 2, 8], got shape [2, 7, 1, 8]"),
    "v length": (lambda d: dict(v=randn(2, 6, 2, 8, device=d)),
                 "v must be [B, S_k, H_kv, d_v] with S_k, H_kv of k [2, 7, 2, 8], got shape [2, 6, 2, 8]"),
    "batch": (lambda d: dict(k=randn(1, 7, 2, 8, device=d), v=randn(1, 7, 2, 8, device=d)),
              "q, k, v must share the batch B = 2, got k [1, 7, 2, 8] and v [1, 7, 2, 8]"),
    "H % H_kv": (lambda d: dict(k=randn(2, 7, 3, 8, device=d), v=randn(2, 7, 3, 8, device=d)),
                 "H = q.size(2) = 4 must be a multiple of H_kv = k.size(2) = 3 (GQA)"),
    "k dtype": (lambda d: dict(k=randn(2, 7, 2, 8, device=d, dtype=torch.float64)),
                "k must have the dtype of q (float32), got float64"),
    "q last dim strided": (lambda d: dict(q=strided_last_dim(2, 5, 4, 8, device=d)),
                           "q must have a contiguous last dim (stride 1), got strides [160, 32, 1, 4]"),
    "window < -1": (lambda d: dict(causal=False, window=(-2, 3)),
                    "window_left/window_right must be >= -1 (-1 = unbounded), got (-2, 3)"),
}


def vhead_decode_inputs(device, *, paged=False, **changes):
    """Sequences of 5 and 12 rows: contiguous [2, 12, 2, 8], or 4-row pages (6 of them)."""
    if paged:
        shape, block_table = (6, 4, 2, 8), int32([[4, 0, 2], [1, 5, 3]], device)
    else:
        shape, block_table = (2, 12, 2, 8), None
    return dict(q=randn(2, 1, 4, 8, device=device), k_cache=randn(*shape, device=device),
                v_cache=randn(*shape, device=device), cache_seqlens=int32([5, 12], device),
                block_table=block_table) | changes


VHEAD_DECODE_ERRORS = {
    "q rank": (lambda d: dict(q=randn(2, 4, 8, device=d)), "q must be [B, S_q, H, d] (4-D), got shape [2, 4, 8]"),
    "q head dim": (lambda d: dict(q=randn(2, 1, 4, 6, device=d)),
                   "q must have the head dim of k_cache (8), got shape [2, 1, 4, 6]"),
    "H % H_kv": (lambda d: dict(q=randn(2, 1, 3, 8, device=d)),
                 "H = q.size(2) = 3 must be a multiple of H_kv = 2 (GQA)"),
    "H % H_kv of w_k": (lambda d: dict(w_k=randn(2, 3, device=d), w_v=randn(2, 3, device=d)),
                        "H = q.size(2) = 4 must be a multiple of H_kv = 3 (GQA)"),
    "w_k rows != H'": (lambda d: dict(w_k=randn(3, 4, device=d), w_v=randn(3, 4, device=d)),
                       "w_k must be [H', H_kv] with H' = k_cache.size(2) = 2, got shape [3, 4]"),
    "w_v columns": (lambda d: dict(w_k=randn(2, 4, device=d), w_v=randn(2, 2, device=d)),
                    "w_v must be [H', H_kv] like w_k [2, 4], got shape [2, 2]"),
    "w_k without w_v": (lambda d: dict(w_k=randn(2, 4, device=d)),
                        "w_k and w_v must be given together (virtual-head cache), got only w_k"),
    "v_cache heads": (lambda d: dict(v_cache=randn(2, 12, 1, 8, device=d)),
                      "v_cache must match k_cache [2, 12, 2, 8] in all but the last dim, got [2, 12, 1, 8]"),
    "k_cache dtype": (lambda d: dict(k_cache=randn(2, 12, 2, 8, device=d, dtype=torch.float64)),
                      "k_cache must have the dtype of q (float32), got float64"),
    "k_cache batch": (lambda d: dict(k_cache=randn(3, 12, 2, 8, device=d), v_cache=randn(3, 12, 2, 8, device=d)),
                      "k_cache must be [B, T_max, H', d] with B = 2 (or pass block_table for a paged cache), "
                      "got shape [3, 12, 2, 8]"),
    "k_cache last dim strided": (lambda d: dict(k_cache=strided_last_dim(2, 12, 2, 8, device=d)),
                                 "k_cache must have a contiguous last dim (stride 1), got strides [192, 16, 1, 2]"),
    "cache_seqlens beyond capacity": (lambda d: dict(cache_seqlens=int32([5, 13], d)),
                                      "cache_seqlens[1] = 13 exceeds the cache capacity of 12 rows"),
    "negative cache_seqlens": (lambda d: dict(cache_seqlens=int32([-1, 3], d)),
                               "cache_seqlens[0] must be >= 0, got -1"),
    "int64 cache_seqlens": (lambda d: dict(cache_seqlens=torch.tensor([5, 12], device=d)),
                            "cache_seqlens must be int32, got int64"),
    "cache_seqlens length": (lambda d: dict(cache_seqlens=int32([5, 12, 1], d)),
                             "cache_seqlens must be [B] with B = 2, got shape [3]"),
    "window_left < -1": (lambda d: dict(window_left=-2), "window_left must be >= -1 (-1 = unbounded), got -2"),
}

PAGED_DECODE_ERRORS = {
    "block_table entry out of range": (lambda d: dict(block_table=int32([[4, 0, 2], [1, 6, 3]], d)),
                                       "block_table[1, 1] = 6 is out of range: the cache has 6 blocks"),
    "negative block_table entry": (lambda d: dict(block_table=int32([[4, -1, 2], [1, 5, 3]], d)),
                                   "block_table[0, 1] = -1 is out of range: the cache has 6 blocks"),
    "cache_seqlens beyond paged capacity": (lambda d: dict(cache_seqlens=int32([5, 13], d)),
                                            "cache_seqlens[1] = 13 exceeds the cache capacity of 12 rows"),
    "int64 block_table": (lambda d: dict(block_table=torch.tensor([[4, 0, 2], [1, 5, 3]], device=d)),
                          "block_table must be int32, got int64"),
    "block_table batch": (lambda d: dict(block_table=int32([[4, 0, 2]], d)),
                          "block_table must be [B, max_blocks] with B = 2, got shape [1, 3]"),
}


def kv_cache_append_inputs(device, *, paged=False, **changes):
    """Two new rows after 3 and 6 cached ones: the second sequence fills its 8 rows exactly."""
    if paged:
        shape, block_table = (6, 4, 2, 8), int32([[5, 2], [0, 3]], device)
    else:
        shape, block_table = (2, 8, 2, 8), None
    return dict(k_new=randn(2, 2, 2, 8, device=device), v_new=randn(2, 2, 2, 8, device=device),
                k_cache=randn(*shape, device=device), v_cache=randn(*shape, device=device),
                cache_seqlens=int32([3, 6], device), block_table=block_table, **rope(8, 8, device)) | changes


OVERFLOW = "cache_seqlens[1] = 7 plus the new rows 2 exceeds the cache capacity of 8 rows"

KV_CACHE_APPEND_ERRORS = {
    "k_new rank": (lambda d: dict(k_new=randn(2, 2, 16, device=d)),
                   "k_new must be [B, S_new, H', d] (4-D), got shape [2, 2, 16]"),
    "k_new heads": (lambda d: dict(k_new=randn(2, 2, 3, 8, device=d)),
                    "k_new must be [B, S_new, H', d] matching k_cache, expected [2, 2, 2, 8], "
                    "got shape [2, 2, 3, 8]"),
    "v_new head dim": (lambda d: dict(v_new=randn(2, 2, 2, 6, device=d)),
                       "v_new must be [B, S_new, H', d_v] matching v_cache, expected [2, 2, 2, 8], "
                       "got shape [2, 2, 2, 6]"),
    "v_new dtype": (lambda d: dict(v_new=randn(2, 2, 2, 8, device=d, dtype=torch.float64)),
                    "v_new must have the dtype of k_new (float32), got float64"),
    "k_cache dtype": (lambda d: dict(k_cache=randn(2, 8, 2, 8, device=d, dtype=torch.float64)),
                      "k_cache must have the dtype of k_new (float32), got float64"),
    "v_cache last dim strided": (lambda d: dict(v_cache=strided_last_dim(2, 8, 2, 8, device=d)),
                                 "v_cache must have a contiguous last dim (stride 1), got strides [128, 16, 1, 2]"),
    "overflow in the second sequence": (lambda d: dict(cache_seqlens=int32([3, 7], d)), OVERFLOW),
    "cos too short for the second sequence": (lambda d: rope(7, 8, d),
                                              "cos/sin have 7 positions but sequence 1 needs positions up to 7"),
    "cos without sin": (lambda d: dict(sin=None), "cos and sin must be given together (RoPE), got only cos"),
}

PAGED_APPEND_ERRORS = {
    "new rows on a page out of range": (lambda d: dict(block_table=int32([[5, 2], [0, 9]], d)),
                                        "block_table[1, 1] = 9 is out of range: the cache has 6 blocks"),
    "overflow of the paged capacity": (lambda d: dict(cache_seqlens=int32([3, 7], d)), OVERFLOW),
}

POS_ERRORS = {  # pos exists on torch.ops.headmix.kv_cache_append only
    "pos without cos": (lambda d: dict(pos=int32([0, 0], d), cos=None, sin=None),
                        "pos only sets RoPE positions: pass cos and sin with it"),
    "negative pos": (lambda d: dict(pos=int32([-1, 0], d)), "pos[0] must be >= 0, got -1"),
    "pos beyond the tables": (lambda d: dict(pos=int32([0, 7], d)),
                              "cos/sin have 8 positions but sequence 1 needs positions up to 8"),
    "int64 pos": (lambda d: dict(pos=torch.tensor([0, 0], device=d)), "pos must be int32, got int64"),
}


def cases(table):
    return pytest.mark.parametrize(("changes", "message"), list(table.values()), ids=list(table))


def raises(message):
    return pytest.raises(RuntimeError, match=re.escape(message))


# ---------------------------------------------------------------- through the wrappers


@cases(MIX_HEADS_ERRORS)
def test_mix_heads_rejects(device, changes, message):
    with raises(message):
        headmix.mix_heads(**mix_heads_inputs(device, **changes(device)))


@cases(FLASH_ATTN_ERRORS)
def test_flash_attn_rejects(device, changes, message):
    with raises(message):
        headmix.flash_attn(**flash_attn_inputs(device, **changes(device)))


@cases(VHEAD_DECODE_ERRORS)
def test_vhead_decode_rejects(device, changes, message):
    with raises(message):
        headmix.vhead_decode(**vhead_decode_inputs(device, **changes(device)))


@cases(PAGED_DECODE_ERRORS)
def test_paged_vhead_decode_rejects(device, changes, message):
    with raises(message):
        headmix.vhead_decode(**vhead_decode_inputs(device, paged=True, **changes(device)))


def assert_rejected_append_leaves_cache_untouched(append, inputs, message):
    before = {name: inputs[name].clone() for name in ("k_cache", "v_cache")}
    with raises(message):
        append(**inputs)
    for name, cache in before.items():
        assert_bitwise_equal(inputs[name], cache, f"{name} changed by a rejected append")


@cases(KV_CACHE_APPEND_ERRORS)
def test_kv_cache_append_rejects_and_writes_nothing(device, changes, message):
    inputs = kv_cache_append_inputs(device, **changes(device))
    assert_rejected_append_leaves_cache_untouched(headmix.kv_cache_append, inputs, message)


@cases(PAGED_APPEND_ERRORS)
def test_paged_kv_cache_append_rejects_and_writes_nothing(device, changes, message):
    inputs = kv_cache_append_inputs(device, paged=True, **changes(device))
    assert_rejected_append_leaves_cache_untouched(headmix.kv_cache_append, inputs, message)


@cases(POS_ERRORS)
def test_kv_cache_append_rejects_bad_pos_and_writes_nothing(device, changes, message):
    inputs = kv_cache_append_inputs(device, **changes(device))
    assert_rejected_append_leaves_cache_untouched(ops.kv_cache_append, inputs, message)


@pytest.mark.cuda
def test_device_mismatch_is_rejected():
    with raises("k must be on the same device as q (cuda:0), got cpu"):
        headmix.flash_attn(**flash_attn_inputs("cuda", k=randn(2, 7, 2, 8)))
    with raises("w must be on the same device as x (cuda:0), got cpu"):
        headmix.mix_heads(**mix_heads_inputs("cuda", w=randn(4, 8)))
    with raises("cache_seqlens must be on the same device as the queries/keys (cuda:0), got cpu"):
        headmix.vhead_decode(**vhead_decode_inputs("cuda", cache_seqlens=int32([5, 12])))
    inputs = kv_cache_append_inputs("cuda", v_new=randn(2, 2, 2, 8))
    assert_rejected_append_leaves_cache_untouched(headmix.kv_cache_append, inputs,
                                                  "v_new must be on the same device as k_new (cuda:0), got cpu")
