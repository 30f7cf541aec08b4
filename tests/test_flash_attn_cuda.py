"""CUDA flash attention (portable mma.sync kernels: bf16/fp16, d in {64, 128}) against the float64
reference: every mask mode, GQA ratios, S_q != S_k, ragged tails, rows without keys, poisoned
outputs, strided and misaligned inputs, opcheck and torch.compile."""

import pytest
import torch
from samples import flash_attn_sample, poison_cuda_allocator, to_float64
from tolerances import assert_within_2x_pytorch_error

import headmix
from headmix import reference

pytestmark = pytest.mark.cuda

DTYPES = [torch.bfloat16, torch.float16]
HEAD_DIMS = [64, 128]

# name: (batch, S_q, S_k, H, H_kv, causal, window); lengths straddle the 128-row query and
# 64-row key tiles, and the band makes rows without keys in several cases.
CASES = {
    "full, ragged": (2, 200, 200, 4, 4, False, (-1, -1)),
    "full, S_q < S_k, GQA 2": (1, 70, 517, 4, 2, False, (-1, -1)),
    "causal, S_q = S_k": (2, 333, 333, 4, 4, True, (-1, -1)),
    "causal, S_q < S_k, GQA 4": (1, 100, 517, 8, 2, True, (-1, -1)),
    "causal, S_q > S_k (empty rows), GQA 8": (1, 300, 129, 8, 1, True, (-1, -1)),
    "causal, one query row (decode)": (2, 1, 2049, 4, 1, True, (-1, -1)),
    "full, one key": (1, 65, 1, 2, 2, False, (-1, -1)),
    "window left 100, GQA 8": (1, 1000, 1000, 8, 1, False, (100, -1)),
    "window (64, 17), S_q < S_k": (2, 190, 300, 2, 2, False, (64, 17)),
    "window right only, S_q > S_k (empty rows)": (1, 260, 100, 4, 2, False, (-1, 5)),
    "window (0, 0), S_q > S_k (empty rows)": (1, 150, 40, 2, 1, False, (0, 0)),
    "causal + window left 700, long": (1, 3000, 3000, 2, 1, True, (700, -1)),
}


def sample(name, dtype, head_dim):
    batch, seqlen_q, seqlen_k, heads, kv_heads, causal, window = CASES[name]
    return flash_attn_sample(name, "cuda", dtype, batch=batch, seqlen_q=seqlen_q, seqlen_k=seqlen_k, heads=heads,
                             kv_heads=kv_heads, head_dim=head_dim, causal=causal, window=window)


def run(s):
    return torch.ops.headmix.flash_attn_fwd(*s.args)


def run_reference(s):
    return reference.flash_attn(**s.kwargs)


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASES)
def test_forward_within_2x_pytorch_error(name, dtype, head_dim):
    s = sample(name, dtype, head_dim)
    poison_cuda_allocator()
    out, lse = run(s)
    # Unwritten (NaN) elements fail here: the reference has 0 / -inf for rows without keys.
    assert_within_2x_pytorch_error((out, lse), run_reference(s), run_reference(to_float64(s)), name)


@pytest.mark.parametrize("group", [1, 2, 4, 8])
def test_gqa_query_head_reads_its_kv_head(group):
    """Each query head of a group against its kv head alone, as plain attention."""
    s = flash_attn_sample("GQA", "cuda", torch.bfloat16, batch=1, seqlen_q=150, seqlen_k=150, heads=8,
                          kv_heads=8 // group, head_dim=64, causal=True)
    out, lse = run(s)
    q, k, v = (s.kwargs[n] for n in "qkv")
    for h in range(8):
        alone = dict(s.kwargs, q=q[:, :, h : h + 1], k=k[:, :, h // group : h // group + 1],
                     v=v[:, :, h // group : h // group + 1])
        head_out, head_lse = torch.ops.headmix.flash_attn_fwd(*alone.values())
        assert torch.equal(out[:, :, h : h + 1], head_out) and torch.equal(lse[:, h : h + 1], head_lse), h


def test_strided_and_misaligned_inputs():
    """q/k/v sliced from a packed projection (strided heads), and a q whose data pointer is
    not 16-byte aligned (the binding copies it)."""
    batch, seqlen, heads, head_dim = 2, 77, 4, 64
    qkv = torch.randn(batch, seqlen, 3 * heads, head_dim, device="cuda", dtype=torch.bfloat16)
    q, k, v = qkv.split(heads, dim=2)
    flat = torch.randn(q.numel() + 1, device="cuda", dtype=torch.bfloat16)
    q_misaligned = flat[1:].view(q.shape).copy_(q)
    assert q_misaligned.data_ptr() % 16 != 0
    expected = reference.flash_attn(q, k, v, causal=True)
    for query in (q, q_misaligned):
        out, lse = torch.ops.headmix.flash_attn_fwd(query, k, v, None, True, -1, -1)
        exact = reference.flash_attn(*(t.double() for t in (q, k, v)), causal=True)
        assert_within_2x_pytorch_error((out, lse), expected, exact, "strided / misaligned")


def test_unsupported_inputs_get_clear_errors():
    q = torch.randn(1, 8, 2, 96, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match=r"q must be \[B, S_q, H, d\] with d in \{64, 128\} on CUDA"):
        headmix.flash_attn(q, q, q)
    q = torch.randn(1, 8, 2, 64, device="cuda", dtype=torch.float32)
    with pytest.raises(RuntimeError, match="on CUDA takes bfloat16 or float16"):
        headmix.flash_attn(q, q, q)
    q = torch.randn(1, 8, 2, 64, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, 8, 2, 128, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="with d_v = d = 64 on CUDA"):
        headmix.flash_attn(q, q, v)
    with pytest.raises(RuntimeError, match="scale must be positive and finite on CUDA, got -1"):
        headmix.flash_attn(q, q, q, scale=-1.0)


def test_opcheck_forward():
    s = sample("causal, S_q < S_k, GQA 4", torch.bfloat16, 64)
    torch.library.opcheck(torch.ops.headmix.flash_attn_fwd.default, s.args)
