"""torch.compile(fullgraph=True) through the fakes and autograd formulas, compared with eager.

"aot_eager" traces with the fake kernels and runs the real ops; "inductor" (the default backend,
which works here with the host C++ compiler) also generates code around them, about 20 s of
compilation per graph on 2 cores, so those cases are marked slow.
"""

import pytest
import torch
import torch.nn.functional as F
from samples import clone_args, kv_cache_append_samples
from tolerances import assert_close_f64

import headmix

BACKENDS = ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()  # no cached graph (or compile count) carries over between tests
    yield
    torch._dynamo.reset()


def mea_attention(q, k, v, w_k, w_v, cos, sin):
    """An MEA-style layer core: mix the kv heads (with RoPE on keys), windowed causal GQA
    attention, per-head RMSNorm; also returns lse."""
    k = headmix.mix_heads(k, w_k, cos=cos, sin=sin)
    v = headmix.mix_heads(v, w_v)
    out, lse = headmix.flash_attn(q, k, v, causal=True, window=(3, -1), return_lse=True)
    return F.rms_norm(out, out.shape[-1:]), lse


def mea_inputs(tokens, device="cpu"):
    heads, kv_heads, head_dim = 4, 2, 8
    cos, sin = headmix.rope_tables(tokens, head_dim, device=device)
    leaves = [torch.randn(*shape, device=device, dtype=torch.float64, requires_grad=True) for shape in (
        (2, tokens, heads, head_dim), (2, tokens, kv_heads, head_dim), (2, tokens, kv_heads, head_dim),
        (kv_heads, kv_heads), (kv_heads, kv_heads))]
    return leaves, (cos, sin)


def outputs_and_grads(fn, leaves, constants):
    """fn's outputs and the gradients of all leaves for fixed random output gradients."""
    outputs = fn(*leaves, *constants)
    generator = torch.Generator().manual_seed(0)
    seeds = [torch.randn(o.shape, generator=generator, dtype=o.dtype).to(o.device) for o in outputs]
    return tuple(t.detach() for t in outputs) + torch.autograd.grad(outputs, leaves, seeds)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mix_heads_and_flash_attn_forward_backward(backend):
    leaves, constants = mea_inputs(tokens=6)
    compiled = torch.compile(mea_attention, backend=backend, fullgraph=True)
    assert_close_f64(outputs_and_grads(compiled, leaves, constants),
                     outputs_and_grads(mea_attention, leaves, constants), backend)


def test_dynamic_sequence_length_compiles_once():
    counter = torch._dynamo.testing.CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(mea_attention, backend=counter, fullgraph=True, dynamic=True)
    for tokens in (5, 9):
        leaves, constants = mea_inputs(tokens)
        assert_close_f64(outputs_and_grads(compiled, leaves, constants),
                         outputs_and_grads(mea_attention, leaves, constants), f"{tokens} tokens")
    assert counter.frame_count == 1


def iha(q, k, v, alpha_q, alpha_k, alpha_v, collapse, cos, sin):
    return (headmix.iha_attention(q, k, v, alpha_q, alpha_k, alpha_v, collapse, pseudo=2, cos=cos, sin=sin,
                                  window=2),)


@pytest.mark.parametrize("backend", BACKENDS)
def test_iha_attention_forward_backward(backend):
    batch, tokens, heads, kv_heads, head_dim, pseudo = 2, 5, 2, 1, 8, 2
    cos, sin = headmix.rope_tables(tokens * pseudo, 4)
    leaves = [torch.randn(*shape, dtype=torch.float64, requires_grad=True) for shape in (
        (batch, tokens, heads, head_dim), (batch, tokens, kv_heads, head_dim), (batch, tokens, kv_heads, head_dim),
        (heads, pseudo * heads), (kv_heads, pseudo * kv_heads), (kv_heads, pseudo * kv_heads),
        (pseudo * heads, heads))]
    compiled = torch.compile(iha, backend=backend, fullgraph=True)
    assert_close_f64(outputs_and_grads(compiled, leaves, (cos, sin)),
                     outputs_and_grads(iha, leaves, (cos, sin)), backend)


def decode_step(q, k_new, v_new, k_cache, v_cache, cache_seqlens, block_table, cos, sin, w_k, w_v):
    """Append this step's rows, then decode the step's queries against the grown cache."""
    headmix.kv_cache_append(k_new, v_new, k_cache, v_cache, cache_seqlens, block_table=block_table, cos=cos,
                            sin=sin)
    return headmix.vhead_decode(q, k_cache, v_cache, cache_seqlens + k_new.shape[1], w_k=w_k, w_v=w_v,
                                block_table=block_table, return_lse=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kv_cache_append_and_vhead_decode_under_no_grad(backend):
    """The caches must hold the appended rows after the compiled step too (in-place mutation)."""
    sample = next(s for s in kv_cache_append_samples("cpu", torch.float64) if s.kwargs["block_table"] is not None)
    s = sample.kwargs
    batch, new_rows, cache_heads, _ = s["k_new"].shape
    decode_inputs = dict(q=torch.randn(batch, new_rows, 4, s["k_new"].shape[-1], dtype=torch.float64),
                         w_k=torch.randn(cache_heads, 4, dtype=torch.float64),
                         w_v=torch.randn(cache_heads, 4, dtype=torch.float64))
    compiled = torch.compile(decode_step, backend=backend, fullgraph=True)
    results = []
    for fn in (compiled, decode_step):
        step = clone_args(sample).kwargs
        del step["pos"]
        with torch.no_grad():
            out, lse = fn(**step, **decode_inputs)
        results.append((out, lse, step["k_cache"], step["v_cache"]))
    assert_close_f64(*results, f"{backend}: out, lse, k_cache, v_cache")
