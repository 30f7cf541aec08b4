"""headmix.hf.HeadmixLlamaForCausalLM: Llama with IHA or MEA attention layers. At P = 1 with
identity mixing IHA is exactly the Llama attention it replaces; the layer schedule follows the
config; save_pretrained / from_pretrained round-trip every parameter; training reaches the
mixing weights; bad configurations are refused."""

import pytest
import torch

pytest.importorskip("transformers")

from headmix.hf import HeadmixLlamaConfig, HeadmixLlamaForCausalLM  # noqa: E402
from hf_models import HEADS, HIDDEN, VOCAB, model  # noqa: E402
from tolerances import assert_close_f64  # noqa: E402


def config(kind, **overrides):
    args = dict(headmix_attention=kind, vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                num_hidden_layers=3, num_attention_heads=HEADS, num_key_value_heads=2, pseudo_heads=2,
                iha_window=4, iha_global_every=3, max_position_embeddings=64, tie_word_embeddings=False)
    return HeadmixLlamaConfig(**(args | overrides))


def randomised(m):
    """Every parameter moved off its initial value, so a round trip that loses one shows."""
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


def test_iha_with_one_pseudo_head_is_the_llama_attention():
    llama = model("llama", "sdpa", kv_heads=HEADS)
    iha = HeadmixLlamaForCausalLM(config("iha", pseudo_heads=1, num_key_value_heads=HEADS, iha_window=None,
                                         num_hidden_layers=llama.config.num_hidden_layers,
                                         rope_parameters=llama.config.rope_parameters)).double().eval()
    state = {k: v for k, v in llama.state_dict().items() if ".self_attn." not in k}
    loaded = iha.load_state_dict(state, strict=False)
    assert not loaded.unexpected_keys and all(".self_attn." in k for k in loaded.missing_keys)
    with torch.no_grad():
        for ours, theirs in zip(iha.model.layers, llama.model.layers):
            a = theirs.self_attn
            ours.self_attn.inner.qkv.weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
            ours.self_attn.inner.out.weight.copy_(a.o_proj.weight)
    ids = torch.randint(0, VOCAB, (2, 16))
    # Both sides keep float32 RoPE tables but round the angles differently (~1e-7): give IHA the
    # very tables transformers uses, so what is compared is the attention, to float64 precision.
    positions = torch.arange(16)[None]
    cos, sin = llama.model.rotary_emb(torch.zeros(1, dtype=torch.float32), positions)
    half = cos.shape[-1] // 2
    for layer in iha.model.layers:
        layer.self_attn.inner.cos[:16] = cos[0, :, :half]
        layer.self_attn.inner.sin[:16] = sin[0, :, :half]
    with torch.no_grad():
        assert_close_f64(iha(ids).logits, llama(ids).logits, "IHA (P = 1) vs Llama logits")


def test_iha_layer_schedule():
    m = HeadmixLlamaForCausalLM(config("iha", num_hidden_layers=10, iha_window=8, iha_global_every=5))
    assert [layer.self_attn.inner.window for layer in m.model.layers] == [8, 8, 8, 8, None] * 2
    m = HeadmixLlamaForCausalLM(config("iha", iha_window=None))
    assert [layer.self_attn.inner.window for layer in m.model.layers] == [None] * 3


@pytest.mark.parametrize("kind", ["iha", "mea"])
def test_save_and_from_pretrained_round_trip(kind, tmp_path):
    from transformers import AutoModelForCausalLM

    m = randomised(HeadmixLlamaForCausalLM(config(kind, num_virtual_heads=1)).double())
    m.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="headmix",
                                                  dtype=torch.float64).eval()
    assert type(loaded) is HeadmixLlamaForCausalLM and loaded.config.headmix_attention == kind
    expected = m.state_dict()
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, expected[name]), name
    ids = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        assert_close_f64(loaded(ids).logits, m(ids).logits, f"{kind} logits after the round trip")


@pytest.mark.parametrize("kind", ["iha", "mea"])
def test_training_reaches_the_mixing_weights(kind):
    m = HeadmixLlamaForCausalLM(config(kind)).train()
    ids = torch.randint(0, VOCAB, (2, 12))
    m(ids, labels=ids).loss.backward()
    inner = m.model.layers[0].self_attn.inner
    mixing = [inner.alpha_q, inner.collapse] if kind == "iha" else [inner.w_lc_k, inner.norm_weight]
    for p in mixing:
        assert p.grad is not None and p.grad.isfinite().all() and p.grad.abs().sum() > 0


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="headmix_attention must be one of"):
        config("mla")
    with pytest.raises(ValueError, match="no projection biases"):
        HeadmixLlamaForCausalLM(config("mea", attention_bias=True))
    m = HeadmixLlamaForCausalLM(config("mea"))
    with pytest.raises(ValueError, match="take no transformers cache"):
        m(torch.randint(0, VOCAB, (1, 4)), use_cache=True)
