"""headmix.hf's attention backend: attn_implementation="headmix" against the model's own eager
attention (and, where float64 is the point, its sdpa attention: eager takes its softmax in
float32 whatever the dtype, so only sdpa is a float64 reference), on small random Llama, Mistral (sliding window), Qwen2 (k/v bias) and Qwen3 (k-norm)
models; greedy generate() with transformers' cache and with HeadmixCache; torch.compile; the
refusals."""

import subprocess
import sys

import pytest
import torch

pytest.importorskip("transformers")

import headmix.hf  # noqa: E402  (registers "headmix")
from hf_models import FAMILIES, VOCAB, model, same_weights  # noqa: E402
from tolerances import assert_close_f64, assert_within_2x_pytorch_error  # noqa: E402

SEQ = 24  # longer than mistral's window of 8


def tokens(batch=2, length=SEQ):
    return torch.randint(0, VOCAB, (batch, length))


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_match_float64_reference(family):
    reference = model(family, "sdpa")
    ids = tokens()
    with torch.no_grad():
        expected = reference(ids).logits
        actual = same_weights(reference, "headmix")(ids).logits
    assert_close_f64(actual, expected, f"{family} logits")


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_bfloat16_within_2x_pytorch_error(family):
    eager = model(family, "eager", dtype=torch.bfloat16)
    ids = tokens()
    with torch.no_grad():
        exact = same_weights(eager, "sdpa", torch.float64)(ids).logits  # the same rounded weights
        baseline = eager(ids).logits
        actual = same_weights(eager, "headmix")(ids).logits
    assert_within_2x_pytorch_error(actual, baseline, exact, f"{family} bf16 logits")


@pytest.mark.parametrize("family", FAMILIES)
def test_training_gradients_match_float64_reference(family):
    reference = model(family, "sdpa").train()
    ours = same_weights(reference, "headmix").train()
    ids = tokens()
    for m in (reference, ours):
        m(ids, labels=ids).loss.backward()
    for (name, p), q in zip(reference.named_parameters(), ours.parameters()):
        assert_close_f64(q.grad, p.grad, f"{family} grad of {name}")


def generate(m, ids, cache=None):
    with torch.no_grad():
        # An explicit all-ones mask: generate() would otherwise read token 0 as padding.
        return m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, min_new_tokens=32,
                          do_sample=False, cache=cache, eos_token_id=None, pad_token_id=0)


# Every family with transformers' cache and a paged HeadmixCache; the contiguous layout once.
GENERATE_CASES = [(f, c) for c in ("transformers", "paged") for f in FAMILIES] + [("llama", "contiguous")]


@pytest.mark.parametrize("family, cache", GENERATE_CASES)
def test_greedy_generate_matches_eager(family, cache):
    eager = model(family, "eager")
    ours = same_weights(eager, "headmix")
    ids = tokens(length=10)
    expected = generate(eager, ids)
    headmix_cache = None
    if cache != "transformers":
        block_size = 16 if cache == "paged" else None
        headmix_cache = headmix.hf.HeadmixCache(ours.config, max_tokens=48, block_size=block_size)
    actual = generate(ours, ids, headmix_cache)
    assert actual.shape == (2, 42)
    assert torch.equal(actual, expected), f"{family}: greedy tokens differ from eager"
    if headmix_cache is not None:
        assert headmix_cache.get_seq_length() == 41  # prompt + 31 fed back; the last token is never fed


@pytest.mark.parametrize("block_size", [None, 4])
def test_cropped_cache_continues_like_a_shorter_prompt(block_size):
    m = model("llama", "headmix")
    ids = tokens(length=12)
    logits = []
    for prompt, crop in ((ids, -3), (ids[:, :9], 0)):
        cache = headmix.hf.HeadmixCache(m.config, max_tokens=16, block_size=block_size)
        with torch.no_grad():
            m(prompt, cache=cache, use_cache=True)
            cache.crop(crop)
            assert cache.get_seq_length() == 9
            logits.append(m(ids[:, 9:11], cache=cache, use_cache=True).logits)
    assert_close_f64(logits[0], logits[1], "logits after crop")


def test_compiled_forward_matches_eager():
    eager = model("mistral", "eager", dtype=torch.float32)
    compiled = torch.compile(same_weights(eager, "headmix"), fullgraph=True)
    ids = tokens()
    with torch.no_grad():
        exact = same_weights(eager, "sdpa", torch.float64)(ids).logits
        actual = compiled(ids).logits
        baseline = eager(ids).logits
    assert_within_2x_pytorch_error(actual, baseline, exact, "compiled mistral logits")


def test_padding_is_refused_with_the_supported_cases():
    m = model("llama", "headmix")
    ids = tokens()
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    with pytest.raises(ValueError, match="without padding.*padded positions"):
        m(ids, attention_mask=mask)
    m(ids, attention_mask=torch.ones_like(ids))  # all ones is fine


def test_packed_sequences_are_refused():
    m = model("llama", "headmix")
    two_documents = torch.cat([torch.arange(6), torch.arange(6)])[None]
    with pytest.raises(ValueError, match="without padding.*custom mask \\(packed sequences"):
        m(tokens(batch=1, length=12), position_ids=two_documents, use_cache=False)


def test_attention_dropout_in_training_is_refused():
    m = model("llama", "headmix", attention_dropout=0.1).train()
    with pytest.raises(ValueError, match="no attention dropout"):
        m(tokens())


def test_bidirectional_attention_is_refused():
    q = torch.randn(1, 4, 3, 16)
    layer = model("llama", "headmix").model.layers[0].self_attn
    with pytest.raises(ValueError, match="headmix attention is causal"):
        headmix.hf.headmix_attention(layer, q, q, q, None, is_causal=False)


def test_headmix_cache_refuses_grad():
    m = model("llama", "headmix")
    cache = headmix.hf.HeadmixCache(m.config, max_tokens=32)
    with pytest.raises(ValueError, match="HeadmixCache is for inference"):
        m(tokens(), cache=cache, use_cache=True)


def test_import_headmix_without_transformers():
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "import headmix, headmix.nn\n"
        "try:\n    import headmix.hf\nexcept ImportError as e:\n    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'headmix[hf]'" in result.stdout, result.stdout + result.stderr
