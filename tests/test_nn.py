"""The modules: IHA and MEA layers against their reference composition, cached decode against
the full forward, and the MEA SVD compression."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import headmix
from headmix import reference
from headmix.nn import ExplicitMultiheadAttention, InterleavedHeadAttention, compress_kv_heads
from headmix.rope import apply_rope

DTYPE = torch.float64


def randomize_(module, scale=0.3):
    """Fresh random weights everywhere (identity/averaging inits would hide mixing bugs)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * scale)
    return module


@pytest.mark.parametrize("pseudo,window", [(1, None), (2, None), (4, None), (2, 3), (4, 2)])
def test_iha_layer_matches_reference_and_gradients(pseudo, window):
    module = randomize_(InterleavedHeadAttention(32, 4, pseudo, window=window, max_seqlen=16, dtype=DTYPE))
    x = torch.randn(2, 9, 32, dtype=DTYPE, requires_grad=True)
    out = module(x)
    expected = reference.iha_layer(module, x)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(out)
    params = [x, module.alpha_q, module.alpha_k, module.alpha_v, module.collapse, module.qkv.weight]
    got = torch.autograd.grad(out, params, grad)
    want = torch.autograd.grad(expected, params, grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


def test_iha_with_one_pseudo_head_is_mha_with_rope():
    module = InterleavedHeadAttention(32, 4, pseudo_heads=1, max_seqlen=16, dtype=DTYPE)
    with torch.no_grad():
        module.qkv.weight.normal_()
        module.out.weight.normal_()
    x = torch.randn(2, 11, 32, dtype=DTYPE)
    b, n, dim = x.shape
    q, k, v = module.qkv(x).view(b, n, 3, 4, 8).unbind(2)
    pos = torch.arange(n)[:, None]
    q, k = apply_rope(q, module.cos, module.sin, pos), apply_rope(k, module.cos, module.sin, pos)
    mha = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    expected = module.out(mha.transpose(1, 2).reshape(b, n, dim))
    torch.testing.assert_close(module(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("block_size", [None, 4])
@pytest.mark.parametrize("pseudo,window", [(2, None), (3, 2)])
def test_iha_cached_decode_equals_full_forward(pseudo, window, block_size):
    module = randomize_(InterleavedHeadAttention(24, 3, pseudo, window=window, max_seqlen=16, dtype=DTYPE))
    x = torch.randn(2, 10, 24, dtype=DTYPE)
    with torch.no_grad():
        full = module(x)
        cache = module.make_cache(2, 12, block_size=block_size)
        prefill = module(x[:, :4], cache)
        steps = [module(x[:, t : t + 1], cache) for t in range(4, 10)]
    torch.testing.assert_close(torch.cat([prefill, *steps], dim=1), full, rtol=1e-10, atol=1e-10)


def test_iha_window_below_one_token_is_rejected():
    with pytest.raises(RuntimeError, match="window must be >= 1 original tokens"):
        InterleavedHeadAttention(16, 2, 2, window=0, max_seqlen=8)


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
def test_iha_forward_paths_share_the_window_rule(cached):
    """The cached decode path once turned window=0 into an unbounded window; both paths now
    apply the rule of the uncached one, and a rejected cached call appends nothing."""
    module = InterleavedHeadAttention(16, 2, 2, max_seqlen=8)
    module.window = 0  # set after construction, which rejects it
    cache = module.make_cache(1, 4) if cached else None
    with torch.no_grad(), pytest.raises(RuntimeError, match="window must be >= 1 original tokens"):
        module(torch.randn(1, 3, 16), cache)
    assert cache is None or cache.length == 0


def test_import_headmix_makes_headmix_nn_available():
    # A fresh interpreter: this one has imported headmix.nn already.
    code = "import headmix; print(headmix.nn.InterleavedHeadAttention.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "InterleavedHeadAttention"


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (8, 4), (8, 2)])
def test_mea_layer_matches_reference_and_gradients(heads, kv_heads):
    module = randomize_(ExplicitMultiheadAttention(64, heads, kv_heads, max_seqlen=16, dtype=DTYPE))
    x = torch.randn(2, 7, 64, dtype=DTYPE, requires_grad=True)
    out = module(x)
    expected = reference.mea_layer(module, x)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(out)
    params = [x, module.w_lc_k, module.w_lc_v, module.k_proj.weight, module.norm_weight]
    for g, w in zip(torch.autograd.grad(out, params, grad), torch.autograd.grad(expected, params, grad)):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("block_size", [None, 2])
def test_mea_cached_decode_equals_full_forward(block_size):
    module = randomize_(ExplicitMultiheadAttention(64, 8, 4, max_seqlen=16, dtype=DTYPE))
    x = torch.randn(3, 9, 64, dtype=DTYPE)
    with torch.no_grad():
        full = module(x)
        cache = module.make_cache(3, 9, block_size=block_size)
        outs = [module(x[:, :5], cache)] + [module(x[:, t : t + 1], cache) for t in range(5, 9)]
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-10, atol=1e-10)


def test_compress_with_all_heads_is_exact():
    module = randomize_(ExplicitMultiheadAttention(64, 8, 4, max_seqlen=16, dtype=DTYPE))
    compressed = compress_kv_heads(module, 4)
    x = torch.randn(2, 6, 64, dtype=DTYPE)
    with torch.no_grad():
        torch.testing.assert_close(compressed(x), module(x), rtol=1e-9, atol=1e-9)


def kv_matrix(proj, heads, d):
    """W reshaped to (dim*d) x heads, as MEA §5.2 factors it."""
    dim = proj.in_features
    return proj.weight.detach().view(heads, d, dim).permute(2, 1, 0).reshape(dim * d, heads)


def test_compress_is_the_best_rank_approximation():
    module = randomize_(ExplicitMultiheadAttention(64, 8, 4, max_seqlen=16, dtype=DTYPE))
    compressed = compress_kv_heads(module, 2)
    d = module.head_dim
    for proj, hlc, new_proj, new_hlc in ((module.k_proj, module.w_lc_k, compressed.k_proj, compressed.w_lc_k),
                                         (module.v_proj, module.w_lc_v, compressed.v_proj, compressed.w_lc_v)):
        full = kv_matrix(proj, 4, d)
        u, s, vh = torch.linalg.svd(full, full_matrices=False)
        best = (u[:, :2] * s[:2]) @ vh[:2]  # Eckart-Young: the best rank-2 approximation
        rebuilt = kv_matrix(new_proj, 2, d) @ new_hlc.detach()
        torch.testing.assert_close(rebuilt, best @ hlc.detach(), rtol=1e-9, atol=1e-9)
        error = torch.linalg.matrix_norm(full @ hlc.detach() - rebuilt)
        assert error > 1e-3  # rank 2 of a random rank-4 map is not exact


def test_decode_through_compressed_cache_equals_attention_over_rebuilt_kv():
    module = randomize_(ExplicitMultiheadAttention(64, 8, 4, max_seqlen=16, dtype=DTYPE))
    compressed = compress_kv_heads(module, 2)
    x = torch.randn(2, 8, 64, dtype=DTYPE)
    with torch.no_grad():
        full = compressed(x)  # prefill path: mix_heads rebuilds the 4 kv heads explicitly
        cache = compressed.make_cache(2, 8, block_size=4)
        outs = [compressed(x[:, :3], cache)] + [compressed(x[:, t : t + 1], cache) for t in range(3, 8)]
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-10, atol=1e-10)
    assert cache.nbytes * 2 == module.make_cache(2, 8, block_size=4).nbytes


def test_cached_forward_refuses_gradients():
    module = ExplicitMultiheadAttention(32, 4, 2, max_seqlen=8)
    cache = module.make_cache(1, 8)
    with pytest.raises(RuntimeError, match="inference only"):
        module(torch.randn(1, 2, 32), cache)


@pytest.mark.parametrize("make", [lambda: InterleavedHeadAttention(16, 2, 2, max_seqlen=8),
                                  lambda: ExplicitMultiheadAttention(32, 4, 2, max_seqlen=8)])
def test_rope_tables_stay_float32_through_dtype_casts_and_follow_device_moves(make):
    module = make()
    cos, sin = module.cos.clone(), module.sin.clone()
    for cast in (lambda m: m.to(torch.bfloat16), lambda m: m.half(), lambda m: m.double(),
                 lambda m: m.to("cpu", torch.float16)):
        cast(module)
        assert next(module.parameters()).dtype != torch.float32
        assert torch.equal(module.cos, cos) and torch.equal(module.sin, sin)
    module.to("meta")
    assert module.cos.device.type == "meta" and module.cos.dtype == torch.float32
    module.type(torch.float16)
    with pytest.raises(RuntimeError, match="RoPE tables were cast to torch.float16"):
        module.cos


def test_cache_overflow_is_refused_before_writing():
    module = InterleavedHeadAttention(16, 2, 2, max_seqlen=8)
    cache = module.make_cache(1, 3)
    with torch.no_grad():
        module(torch.randn(1, 3, 16), cache)
        with pytest.raises(RuntimeError, match="do not fit"):
            module(torch.randn(1, 1, 16), cache)
    assert cache.length == 6 and int(cache.seqlens[0]) == 6


@pytest.mark.parametrize("make", [
    lambda: InterleavedHeadAttention(32, 4, 2, window=3, max_seqlen=32),
    lambda: ExplicitMultiheadAttention(32, 4, 2, max_seqlen=32),
], ids=["iha", "mea"])
def test_layers_compile_fullgraph_with_dynamic_lengths(make):
    module = randomize_(make())
    compiled = torch.compile(module, fullgraph=True, dynamic=True, backend="aot_eager")
    for tokens in (5, 9):
        x = torch.randn(2, tokens, 32, requires_grad=True)
        got = compiled(x)
        want = module(x)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        grad = torch.randn_like(got)
        for g, w in zip(torch.autograd.grad(got, [x, *module.parameters()], grad),
                        torch.autograd.grad(want, [x, *module.parameters()], grad)):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_mea_decode_step_compiles_fullgraph():
    module = randomize_(ExplicitMultiheadAttention(32, 4, 2, max_seqlen=16))
    x = torch.randn(1, 6, 32)
    with torch.no_grad():
        full = module(x)
        cache = module.make_cache(1, 6)
        module(x[:, :4], cache)
        step = torch.compile(lambda t: module(t, cache), fullgraph=True, backend="aot_eager")
        outs = [step(x[:, t : t + 1]) for t in (4, 5)]
    torch.testing.assert_close(torch.cat(outs, 1), full[:, 4:], rtol=1e-5, atol=1e-5)
