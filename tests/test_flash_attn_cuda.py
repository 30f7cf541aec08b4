"""CUDA flash attention (bf16/fp16, d in {64, 128}) against the float64 reference, once per kernel
family the GPU runs (portable mma.sync kernels everywhere; on sm_90 also the Hopper TMA + wgmma
kernels, selected with HEADMIX_FLASH_KERNELS): every mask mode, GQA ratios, S_q != S_k, ragged tails, rows without keys, poisoned
outputs, strided and misaligned inputs, gradients (atomic and deterministic dq), opcheck and
torch.compile of an IHA layer.

Gradient accuracy: like FlashAttention, the backward rounds P and dS to the input dtype before
the dV/dK/dQ products and forms D = rowsum(dO * O) from the rounded forward output, so the
baseline it must stay within 2x of is that algorithm run by PyTorch at the same precision
(``flash_backward_in_pytorch``), not a float32 autograd of the reference (see the xfail in
test_flash_attn.py for what D's rounding alone does)."""

import contextlib

import pytest
import torch
from baselines import flash_backward_in_pytorch
from samples import flash_attn_sample, input_grads, poison_cuda_allocator, rows_without_keys, to_float64, with_grad
from tolerances import assert_within_2x_pytorch_error

import headmix
from headmix import reference

pytestmark = pytest.mark.cuda


def kernel_families():
    hopper = torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)
    return ["portable", "sm90"] if hopper and "sm_90a" in headmix.build_info["cuda_archs"] else ["portable"]


@pytest.fixture(autouse=True, params=kernel_families())
def flash_kernels(request, monkeypatch):
    """Every test of this module runs once per kernel family (the binding reads the variable per call)."""
    monkeypatch.setenv("HEADMIX_FLASH_KERNELS", request.param)
    return request.param

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


def run_differentiable(s):
    k = s.kwargs
    return headmix.flash_attn(k["q"], k["k"], k["v"], scale=k["scale"], causal=k["causal"],
                              window=(k["window_left"], k["window_right"]), return_lse=True)


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


def test_expanded_kv_heads():
    """k/v broadcast over heads with expand() (stride 0): the binding copies them."""
    q = torch.randn(1, 130, 4, 64, device="cuda", dtype=torch.float16)
    k, v = (torch.randn(1, 130, 1, 64, device="cuda", dtype=torch.float16) for _ in range(2))
    k_wide, v_wide = k.expand(-1, -1, 4, -1), v.expand(-1, -1, 4, -1)
    assert k_wide.stride(2) == 0
    out, lse = torch.ops.headmix.flash_attn_fwd(q, k_wide, v_wide, None, True, -1, -1)
    expected_out, expected_lse = torch.ops.headmix.flash_attn_fwd(q, k, v, None, True, -1, -1)  # GQA, same math
    torch.testing.assert_close(out, expected_out)
    torch.testing.assert_close(lse, expected_lse)


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


def test_kernel_family_choice_is_checked(monkeypatch):
    q = torch.randn(1, 8, 2, 64, device="cuda", dtype=torch.bfloat16)
    monkeypatch.setenv("HEADMIX_FLASH_KERNELS", "fastest")
    with pytest.raises(RuntimeError, match="HEADMIX_FLASH_KERNELS must be auto, portable or sm90, got 'fastest'"):
        headmix.flash_attn(q, q, q)
    if "sm90" not in kernel_families():
        monkeypatch.setenv("HEADMIX_FLASH_KERNELS", "sm90")
        with pytest.raises(RuntimeError, match="HEADMIX_FLASH_KERNELS=sm90 needs an sm_90 GPU"):
            headmix.flash_attn(q, q, q)


def test_opcheck_forward():
    s = sample("causal, S_q < S_k, GQA 4", torch.bfloat16, 64)
    torch.library.opcheck(torch.ops.headmix.flash_attn_fwd.default, s.args)


# ---------------------------------------------------------------- backward


@contextlib.contextmanager
def deterministic_algorithms(enabled):
    """torch.use_deterministic_algorithms(enabled) inside; the backward then computes dq in a
    separate pass instead of fp32 atomics."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def output_grads(s):
    out, lse = run(s)
    return out, torch.randn_like(out), torch.randn_like(lse).masked_fill(lse.isinf(), 0.0)


BACKWARD_CASES = [name for name in CASES if "empty rows" not in name]


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BACKWARD_CASES)
def test_backward_within_2x_pytorch_error(name, dtype, head_dim, deterministic):
    """The reference's float64 gradient is NaN for rows without keys: those cases are below."""
    s = sample(name, dtype, head_dim)
    out, dout, dlse = output_grads(s)
    poison_cuda_allocator()
    with deterministic_algorithms(deterministic):
        actual = input_grads(run_differentiable, s, ("q", "k", "v"), (dout, dlse))
    exact = input_grads(run_reference, to_float64(s), ("q", "k", "v"), (dout.double(), dlse.double()))
    baseline = flash_backward_in_pytorch(s, out, dout, dlse)
    assert_within_2x_pytorch_error(actual, baseline, exact, f"{name} gradients")


@pytest.mark.parametrize("name", [name for name in CASES if "empty rows" in name])
def test_rows_without_keys_get_zero_dq(name):
    s = with_grad(sample(name, torch.bfloat16, 64), ("q", "k", "v"))
    empty = rows_without_keys(s)
    out, lse = run_differentiable(s)
    poison_cuda_allocator()
    dq, dk, dv = torch.autograd.grad(out, [s.kwargs[n] for n in "qkv"], torch.randn_like(out))
    assert torch.equal(dq[:, empty], torch.zeros_like(dq[:, empty]))
    assert all(g.isfinite().all() for g in (dq, dk, dv))


def test_deterministic_mode_is_bitwise_reproducible():
    s = sample("causal, S_q < S_k, GQA 4", torch.bfloat16, 128)
    out, dout, dlse = output_grads(s)
    k = s.kwargs
    args = (dout, k["q"], k["k"], k["v"], out, run(s)[1], dlse, None, True, -1, -1)
    with deterministic_algorithms(True):
        first = torch.ops.headmix.flash_attn_bwd(*args)
        for _ in range(3):
            again = torch.ops.headmix.flash_attn_bwd(*args)
            assert all(torch.equal(a, b) for a, b in zip(again, first))


@pytest.mark.parametrize("with_dlse", [False, True])
def test_opcheck_backward(with_dlse):
    s = sample("window (64, 17), S_q < S_k", torch.float16, 64)
    out, dout, dlse = output_grads(s)
    k = s.kwargs
    args = (dout, k["q"], k["k"], k["v"], out, run(s)[1], dlse if with_dlse else None, k["scale"], k["causal"],
            k["window_left"], k["window_right"])
    # dq is summed with atomics (order-dependent bits) unless deterministic algorithms are on.
    with deterministic_algorithms(True):
        torch.library.opcheck(torch.ops.headmix.flash_attn_bwd.default, args)


def test_compiled_iha_attention_matches_eager():
    """headmix.iha_attention (mix -> CUDA attention -> collapse) under torch.compile(fullgraph=True),
    forward and backward, windowed."""
    batch, tokens, heads, kv_heads, head_dim, pseudo = 2, 96, 4, 2, 64, 4

    def randn(*shape):
        return torch.randn(*shape, device="cuda", dtype=torch.bfloat16).requires_grad_()

    cos, sin = headmix.rope_tables(tokens * pseudo, head_dim, device="cuda")
    inputs = (randn(batch, tokens, heads, head_dim), randn(batch, tokens, kv_heads, head_dim),
              randn(batch, tokens, kv_heads, head_dim), randn(heads, pseudo * heads),
              randn(kv_heads, pseudo * kv_heads), randn(kv_heads, pseudo * kv_heads), randn(pseudo * heads, heads))

    def layer(*args):
        return headmix.iha_attention(*args, pseudo=pseudo, cos=cos, sin=sin, window=32)

    with deterministic_algorithms(True):
        eager = layer(*inputs)
        grad = torch.randn_like(eager)
        eager_grads = torch.autograd.grad(eager, inputs, grad)
        compiled = torch.compile(layer, fullgraph=True)(*inputs)
        compiled_grads = torch.autograd.grad(compiled, inputs, grad)
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(a, b)
