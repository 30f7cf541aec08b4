"""headmix.hf.compress_kv_heads (MEA §5.2 on a pretrained GQA model): exact at H' = H_kv, the
Eckart-Young optimum below it, H'/H_kv of the cache bytes, and the refusals. The uncompressed
references run sdpa attention, which (unlike eager's float32 softmax) is float64 throughout."""

import copy

import pytest
import torch

pytest.importorskip("transformers")

import headmix.hf  # noqa: E402
from hf_models import COMPRESSIBLE, HEAD_DIM, VOCAB, model, same_weights  # noqa: E402
from tolerances import assert_close_f64  # noqa: E402

KV_HEADS = 4  # room for H' = 1, 2, 3


def tokens(batch=2, length=20):
    return torch.randint(0, VOCAB, (batch, length))


def generate(m, ids, cache=None):
    with torch.no_grad():
        # An explicit all-ones mask: generate() would otherwise read token 0 as padding.
        return m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, min_new_tokens=32,
                          do_sample=False, cache=cache, eos_token_id=None, pad_token_id=0)


@pytest.mark.parametrize("family", COMPRESSIBLE)
def test_full_rank_compression_reproduces_the_model(family):
    reference = model(family, "sdpa", kv_heads=KV_HEADS)
    compressed = copy.deepcopy(reference)
    report = headmix.hf.compress_kv_heads(compressed, num_virtual=KV_HEADS)
    assert [r.layer for r in report] == [0, 1]
    assert all(r.k_error < 1e-7 and r.v_error < 1e-7 for r in report), report
    ids = tokens()
    with torch.no_grad():
        assert_close_f64(compressed(ids).logits, reference(ids).logits, f"{family} logits at H' = H_kv")
    cache = headmix.hf.HeadmixCache(compressed.config, max_tokens=64, block_size=16)
    assert torch.equal(generate(compressed, ids[:, :8], cache), generate(reference, ids[:, :8]))


def rank_truncated_reference(original, num_virtual):
    """The model with every K/V projection (bias as an input column) replaced by its best
    rank-num_virtual approximation over kv heads, computed here through the Gram matrix
    G[g, h] = <W_g, W_h> rather than the library's SVD; also returns the discarded energy."""
    reference = copy.deepcopy(original)
    discarded = {}
    for index, layer in enumerate(reference.model.layers):
        for side in ("k", "v"):
            proj = getattr(layer.self_attn, f"{side}_proj")
            w = proj.weight if proj.bias is None else torch.cat([proj.weight, proj.bias[:, None]], 1)
            per_head = w.view(KV_HEADS, HEAD_DIM, -1)  # W_g = per_head[g]
            gram = torch.einsum("gei,hei->gh", per_head, per_head)
            energy, basis = torch.linalg.eigh(gram)  # ascending: singular values squared
            top = basis[:, -num_virtual:]
            low_rank = torch.einsum("gh,hei->gei", top @ top.T, per_head).reshape(w.shape)
            with torch.no_grad():
                proj.weight.copy_(low_rank[:, : proj.in_features])
                if proj.bias is not None:
                    proj.bias.copy_(low_rank[:, proj.in_features])
            discarded[index, side] = (energy[:-num_virtual].sum() / energy.sum()).sqrt().item()
    return reference, discarded


@pytest.mark.parametrize("num_virtual", [1, 2])
@pytest.mark.parametrize("family", COMPRESSIBLE)
def test_truncation_is_the_eckart_young_optimum(family, num_virtual):
    original = model(family, "sdpa", kv_heads=KV_HEADS)
    reference, discarded = rank_truncated_reference(original, num_virtual)
    compressed = copy.deepcopy(original)
    report = headmix.hf.compress_kv_heads(compressed, num_virtual=num_virtual)
    for r in report:
        assert r.k_error == pytest.approx(discarded[r.layer, "k"], rel=1e-9)
        assert r.v_error == pytest.approx(discarded[r.layer, "v"], rel=1e-9)
        assert r.k_error > 1e-3  # random projections: truncation loses something
    ids = tokens()
    with torch.no_grad():
        assert_close_f64(compressed(ids).logits, reference(ids).logits, f"{family} logits at H' = {num_virtual}")
    # Decode through the compressed paged cache gives the rank-truncated model's tokens.
    cache = headmix.hf.HeadmixCache(compressed.config, max_tokens=64, block_size=16)
    assert torch.equal(generate(compressed, ids[:, :8], cache), generate(reference, ids[:, :8]))


def test_cache_holds_the_virtual_heads_only():
    uncompressed = model("qwen2", "headmix", kv_heads=KV_HEADS)
    compressed = copy.deepcopy(uncompressed)
    headmix.hf.compress_kv_heads(compressed, num_virtual=2, layers="deep")  # layer 1 of 2
    ids = tokens(length=8)
    sizes = []
    for m in (uncompressed, compressed):
        cache = headmix.hf.HeadmixCache(m.config, max_tokens=32, block_size=8)
        with torch.no_grad():
            m(ids, cache=cache, use_cache=True)
        sizes.append([layer.nbytes for layer in cache.layers])
    assert sizes[1] == [sizes[0][0], sizes[0][1] * 2 // KV_HEADS]


def test_layer_choices():
    for layers, expected in (("all", [0, 1, 2, 3]), ("half", [0, 2]), ("deep", [2, 3]), ([3, 1], [1, 3])):
        m = model("llama", "eager", layers=4, kv_heads=KV_HEADS)
        report = headmix.hf.compress_kv_heads(m, num_virtual=2, layers=layers)
        assert [r.layer for r in report] == expected
        compressed = [i for i, layer in enumerate(m.model.layers) if hasattr(layer.self_attn, "headmix_w_k")]
        assert compressed == expected
        assert m.config._attn_implementation == "headmix"


def test_bad_configurations_are_refused():
    m = model("llama", "eager", kv_heads=KV_HEADS)
    with pytest.raises(ValueError, match=r"num_virtual must be in \[1, 4\].*got 5"):
        headmix.hf.compress_kv_heads(m, num_virtual=5)
    with pytest.raises(ValueError, match="layers must be"):
        headmix.hf.compress_kv_heads(m, num_virtual=2, layers=[7])
    with pytest.raises(ValueError, match="Qwen3 normalises each kv head's key"):
        headmix.hf.compress_kv_heads(model("qwen3", "eager"), num_virtual=1)
    from transformers import AutoConfig, AutoModelForCausalLM

    gpt2 = AutoModelForCausalLM.from_config(AutoConfig.for_model("gpt2", n_layer=1, n_embd=32, n_head=2))
    with pytest.raises(ValueError, match="supports the model families.*'gpt2'"):
        headmix.hf.compress_kv_heads(gpt2, num_virtual=1)
