"""headmix.vhead_decode: GQA / virtual-head decode over contiguous and paged KV caches."""

import pytest
import torch
from samples import Sample, empty_caches, to_float64, vhead_decode_samples
from tolerances import LOW_PRECISION, assert_close_f64, assert_within_2x_pytorch_error

import headmix
from headmix import reference
from headmix.rope import apply_rope

ops = torch.ops.headmix


def run(sample):
    return headmix.vhead_decode(**sample.kwargs, return_lse=True)


def run_reference(sample):
    return reference.vhead_decode(**sample.kwargs)


def rows_without_keys(sample):
    """Boolean [B, S_q]: query rows that see no cached key (bottom-right aligned per sequence)."""
    s = sample.kwargs
    return torch.stack([
        ~reference.allowed_keys(s["q"].shape[1], length, s["causal"], s["window_left"], -1, s["q"].device).any(-1)
        for length in s["cache_seqlens"].tolist()
    ])


def test_matches_reference_float64(device):
    for sample in vhead_decode_samples(device, torch.float64):
        assert_close_f64(run(sample), run_reference(sample), sample.name)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_within_2x_pytorch_error(device, dtype):
    for sample in vhead_decode_samples(device, dtype):
        exact = run_reference(to_float64(sample))
        assert_within_2x_pytorch_error(run(sample), run_reference(sample), exact, sample.name)


def test_float32_virtual_head_weights_with_bfloat16_queries(device):
    checked = 0
    for sample in vhead_decode_samples(device, torch.bfloat16):
        s = sample.kwargs
        if s["w_k"] is None:
            continue
        s.update(w_k=s["w_k"].float(), w_v=s["w_v"].float())
        out, lse = run(sample)
        assert (out.dtype, lse.dtype) == (torch.bfloat16, torch.float32)
        exact = run_reference(to_float64(sample))
        assert_within_2x_pytorch_error((out, lse), run_reference(sample), exact, sample.name)
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_nan_poisoned_cache_slots_are_never_read(device, dtype):
    for sample in vhead_decode_samples(device, dtype):
        out, lse = run(sample)
        empty = rows_without_keys(sample)  # [B, S_q]
        assert out.isfinite().all(), sample.name
        assert lse.transpose(1, 2)[~empty].isfinite().all(), sample.name


def test_rows_without_keys_give_zero_and_minus_inf(device):
    checked = 0
    for sample in vhead_decode_samples(device, torch.float64):
        empty = rows_without_keys(sample)  # [B, S_q]
        if not empty.any():
            continue
        out, lse = run(sample)
        assert torch.equal(out[empty], torch.zeros_like(out[empty])), sample.name
        assert (lse.transpose(1, 2)[empty] == float("-inf")).all(), sample.name
        checked += 1
    assert checked >= 2  # an empty sequence, and a sequence shorter than S_q under causal


def test_virtual_heads_equal_plain_decode_over_the_rebuilt_cache(device):
    """K_g = sum_j w_k[j, g] K'_j: decoding the H' cache with w_k, w_v equals decoding a cache
    that holds the rebuilt H_kv heads without them."""
    checked = 0
    for sample in vhead_decode_samples(device, torch.float64):
        s = sample.kwargs
        if s["w_k"] is None:
            continue
        rebuilt = dict(
            s,
            k_cache=torch.einsum("btjd,jg->btgd", s["k_cache"], s["w_k"]).contiguous(),
            v_cache=torch.einsum("btjd,jg->btgd", s["v_cache"], s["w_v"]).contiguous(),
            w_k=None,
            w_v=None,
        )
        assert_close_f64(run(sample), run(Sample(sample.name, rebuilt)), sample.name)
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize("block_size", [None, 4])
def test_iha_decode_steps_match_flash_attn_over_the_whole_sequence(device, block_size):
    """IHA decode: each token appends P rotated pseudo-keys, then P pseudo-queries attend the
    cache with the bottom-right causal mask, which is the last P rows of causal attention over
    the whole pseudo-sequence."""
    batch, steps, pseudo, heads, kv_heads, head_dim = 2, 4, 2, 4, 2, 8
    cos, sin = headmix.rope_tables(steps * pseudo, head_dim, device=device)
    k_cache, v_cache, block_table = empty_caches(batch, steps * pseudo, kv_heads, head_dim, block_size=block_size,
                                                 device=device, dtype=torch.float64)
    q, k, v = (torch.randn(batch, steps * pseudo, h, head_dim, device=device, dtype=torch.float64)
               for h in (heads, kv_heads, kv_heads))
    positions = torch.arange(steps * pseudo, device=device)[:, None]
    expected = headmix.flash_attn(apply_rope(q, cos, sin, positions), apply_rope(k, cos, sin, positions), v,
                                  causal=True)
    cache_seqlens = torch.zeros(batch, dtype=torch.int32, device=device)
    for step in range(steps):
        new = slice(step * pseudo, (step + 1) * pseudo)
        with torch.no_grad():
            headmix.kv_cache_append(k[:, new], v[:, new], k_cache, v_cache, cache_seqlens, block_table=block_table,
                                    cos=cos, sin=sin)
            cache_seqlens += pseudo
            out = headmix.vhead_decode(apply_rope(q[:, new], cos, sin, positions[new]), k_cache, v_cache,
                                       cache_seqlens, block_table=block_table)
        assert_close_f64(out, expected[:, new], f"step {step}")


@pytest.mark.parametrize("name", ["q", "k_cache", "w_k"])
def test_refuses_inputs_that_require_grad(device, name):
    sample = next(s for s in vhead_decode_samples(device, torch.float32) if s.kwargs["w_k"] is not None)
    sample.kwargs[name].requires_grad_()
    message = rf"vhead_decode is inference only, but gradients are required for {name}.*torch\.no_grad\(\)"
    with pytest.raises(RuntimeError, match=message):
        run(sample)
    with pytest.raises(RuntimeError, match=message):  # the op itself, not only its wrapper
        ops.vhead_decode(*sample.args)
    with torch.no_grad():
        out, lse = run(sample)
    with torch.inference_mode():
        out_inference, _ = run(sample)
    assert not out.requires_grad
    assert torch.equal(out, out_inference)
    torch.testing.assert_close((out, lse), run_reference(sample), rtol=1e-5, atol=1e-5)


def test_opcheck(device):
    for sample in vhead_decode_samples(device, torch.float32):
        torch.library.opcheck(ops.vhead_decode.default, sample.args)


@pytest.mark.parametrize("virtual_heads", [None, 2], ids=["gqa", "mea"])
def test_long_paged_cache_spanning_several_chunks(device, virtual_heads):
    """A paged cache longer than one host gather chunk (8192 rows), pages in shuffled order, unused
    rows NaN: the chunks' partial results merge to the reference, causal tail included (S_q = 3)."""
    block_size, kv_heads, head_dim, lengths = 16, 2, 8, [8192 + 37, 5000]
    cache_heads = virtual_heads or kv_heads
    pages_per_seq = -(-max(lengths) // block_size)
    order = torch.randperm(2 * pages_per_seq, device=device)
    block_table = order.view(2, pages_per_seq).to(torch.int32)
    k_cache, v_cache = (torch.full((2 * pages_per_seq, block_size, cache_heads, head_dim), float("nan"),
                                   device=device, dtype=torch.float64) for _ in range(2))
    for b, length in enumerate(lengths):
        rows = torch.arange(length, device=device)
        pages, offsets = block_table[b].long()[rows // block_size], rows % block_size
        k_cache[pages, offsets] = torch.randn(length, cache_heads, head_dim, device=device, dtype=torch.float64)
        v_cache[pages, offsets] = torch.randn(length, cache_heads, head_dim, device=device, dtype=torch.float64)
    weights = {}
    if virtual_heads:
        weights = {name: torch.randn(virtual_heads, kv_heads, device=device, dtype=torch.float64)
                   for name in ("w_k", "w_v")}
    q = torch.randn(2, 3, 4, head_dim, device=device, dtype=torch.float64)
    seqlens = torch.tensor(lengths, dtype=torch.int32, device=device)
    args = (q, k_cache, v_cache, seqlens)
    got = headmix.vhead_decode(*args, block_table=block_table, return_lse=True, **weights)
    want = reference.vhead_decode(*args, block_table=block_table, **weights)
    assert_close_f64(got, want, "long paged cache")
