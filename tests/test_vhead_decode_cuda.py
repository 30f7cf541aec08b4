"""CUDA-only properties of the vhead_decode kernels: the head dims, lengths and layouts they
serve (NaN in every cache row >= cache_seqlens and in unused pages, ragged batches up to 32k
rows, pages of 16/64/256 rows, GQA ratios, S_q in {1, 2, 4, 16}, virtual heads), deterministic
split-KV merges over scratch the op allocates, bad lengths (a clear error, or NaN without the host
check), CUDA-graph capture and replay, opcheck, and greedy generation with a compressed MEA model matching the CPU.
(The shared op tests in test_vhead_decode.py also run on CUDA, through the ATen path for their
small head dims.)"""

import pytest
import torch
import torch.nn.functional as F
from samples import Sample, poison_cuda_allocator, to_float64, vhead_decode_sample
from tolerances import assert_within_2x_pytorch_error
from torch import nn

import headmix
from headmix import reference
from headmix.nn import ExplicitMultiheadAttention, compress_kv_heads

pytestmark = pytest.mark.cuda

ops = torch.ops.headmix

# (H, H_kv, H', virtual): MHA, GQA 4 and 8, and MEA-compressed caches (H' < H_kv, w_k/w_v given).
HEADS = {
    "MHA 8": (8, 8, 8, False),
    "GQA 4": (32, 8, 8, False),
    "GQA 8": (32, 4, 4, False),
    "virtual H'=4 < H_kv=8, H=32": (32, 8, 4, True),
    "virtual H'=1 < H_kv=2, H=16": (16, 2, 1, True),
}
LAYOUTS = {"contiguous": None, "pages of 16": 16, "pages of 64": 64, "pages of 256": 256}
PRECISIONS = [(torch.bfloat16, 128), (torch.bfloat16, 64), (torch.float16, 128)]


def sample(dtype, head_dim, heads, block_size, seqlen_q, seqlens, capacity, **options):
    h, h_kv, h_cache, virtual = HEADS[heads]
    return vhead_decode_sample(f"{heads}, {block_size}, S_q={seqlen_q}", "cuda", dtype, seqlen_q=seqlen_q, heads=h,
                               kv_heads=h_kv, cache_heads=h_cache, head_dim=head_dim, seqlens=seqlens,
                               capacity=capacity, block_size=block_size, virtual=virtual, **options)


def run(s):
    with torch.no_grad():
        return headmix.vhead_decode(**s.kwargs, return_lse=True)


def check_against_reference(s):
    poison_cuda_allocator()
    actual = run(s)
    exact = reference.vhead_decode(**to_float64(s).kwargs)
    assert_within_2x_pytorch_error(actual, reference.vhead_decode(**s.kwargs), exact, s.name)


@pytest.mark.parametrize("seqlen_q", [1, 2, 4, 16])
@pytest.mark.parametrize("block_size", list(LAYOUTS.values()), ids=list(LAYOUTS))
@pytest.mark.parametrize("heads", list(HEADS))
@pytest.mark.parametrize("dtype,head_dim", PRECISIONS)
def test_matches_reference(dtype, head_dim, heads, block_size, seqlen_q):
    # Ragged: empty, shorter than S_q, inside a page, a page boundary exactly, several pages.
    seqlens = [0, 3, 17, 256, 700, 1024]
    check_against_reference(sample(dtype, head_dim, heads, block_size, seqlen_q, seqlens, capacity=1024))


@pytest.mark.slow
@pytest.mark.parametrize("block_size", [None, 256], ids=["contiguous", "pages of 256"])
@pytest.mark.parametrize("heads", ["GQA 4", "virtual H'=4 < H_kv=8, H=32"])
@pytest.mark.parametrize("seqlen_q", [1, 4])
def test_ragged_batch_up_to_32k_rows(heads, block_size, seqlen_q):
    check_against_reference(sample(torch.bfloat16, 128, heads, block_size, seqlen_q, [1, 32768, 5000, 0, 129],
                                   capacity=32768))


@pytest.mark.parametrize("window_left,causal,scale", [(0, True, None), (100, True, None), (37, False, 0.3),
                                                      (-1, False, None)])
@pytest.mark.parametrize("heads", ["GQA 8", "virtual H'=4 < H_kv=8, H=32"])
def test_windows_and_masks(heads, window_left, causal, scale):
    s = sample(torch.bfloat16, 128, heads, 64, 4, [1, 90, 1000], capacity=1024, window_left=window_left,
               causal=causal, scale=scale)
    check_against_reference(s)


def test_float32_weights_with_bfloat16_cache():
    s = sample(torch.bfloat16, 128, "virtual H'=4 < H_kv=8, H=32", 16, 2, [5, 600], capacity=1024)
    s.kwargs.update(w_k=s.kwargs["w_k"].float(), w_v=s.kwargs["w_v"].float())
    check_against_reference(s)


def test_strided_queries():
    """q read through its strides: the query third of a packed [B, S_q, 3*H, d] projection."""
    s = sample(torch.bfloat16, 128, "GQA 4", 64, 2, [40, 700], capacity=1024)
    q = s.kwargs["q"]
    packed = torch.randn(q.shape[0], q.shape[1], 3 * q.shape[2], q.shape[3], device="cuda", dtype=q.dtype)
    packed[:, :, : q.shape[2]] = q
    s.kwargs["q"] = packed[:, :, : q.shape[2]]
    check_against_reference(s)


def test_results_are_deterministic_over_reused_scratch():
    """These shapes are planned with several key splits on an H100/H200 (the emulated tests pin
    the plan down); the split-KV scratch comes from the caching allocator, poisoned with NaN
    between calls, and only the partial results the kernel wrote in it are read."""
    s = sample(torch.bfloat16, 128, "virtual H'=4 < H_kv=8, H=32", 64, 1, [3000, 40], capacity=4096)
    first = run(s)
    for _ in range(2):
        poison_cuda_allocator()
        again = run(s)
        assert all(torch.equal(a, b) for a, b in zip(again, first))


@pytest.mark.parametrize("block_size", [None, 16])
def test_bad_lengths_and_pages_raise_or_answer_nan_without_a_sync(monkeypatch, block_size):
    """By default the binding checks lengths and pages on the host and raises. With
    HEADMIX_CACHE_RANGE_CHECKS=0 (and under graph capture) the kernel path reads nothing on the
    host: a sequence longer than the cache, or one whose page id is out of range, gets NaN out
    and lse; the others are unaffected."""
    s = sample(torch.bfloat16, 128, "GQA 4", block_size, 2, [100, 200, 300], capacity=512)
    expected = run(s)
    kwargs = s.kwargs
    kwargs["cache_seqlens"][0] = 513
    if block_size is not None:
        kwargs["block_table"][1, 3] = kwargs["k_cache"].shape[0]
    monkeypatch.delenv("HEADMIX_CACHE_RANGE_CHECKS", raising=False)
    with pytest.raises(RuntimeError, match="cache_seqlens\\[0\\] = 513 exceeds the cache capacity of 512 rows"):
        run(s)
    monkeypatch.setenv("HEADMIX_CACHE_RANGE_CHECKS", "0")
    out, lse = run(s)
    bad = [0, 1] if block_size is not None else [0]
    for b in range(3):
        if b in bad:
            assert out[b].isnan().all() and lse[b].isnan().all(), b
        else:
            assert torch.equal(out[b], expected[0][b]) and torch.equal(lse[b], expected[1][b]), b


def test_cuda_graph_captures_an_append_and_decode_step():
    """One serving step — append this token's K/V, advance the lengths, decode — captured once and
    replayed token after token with new inputs, every step matching the reference. The decode's
    split-KV scratch is allocated inside the capture, from the graph's private pool; allocations
    between replays (NaN-filled) must not reach it."""
    batch, heads, kv_heads, cache_heads, head_dim, capacity = 3, 32, 8, 4, 128, 512
    s = vhead_decode_sample("graph", "cuda", torch.bfloat16, seqlen_q=1, heads=heads, kv_heads=kv_heads,
                            cache_heads=cache_heads, head_dim=head_dim, seqlens=[5, 130, 64], capacity=capacity,
                            block_size=16, virtual=True)
    kw = s.kwargs
    cos, sin = headmix.rope_tables(capacity, head_dim, device="cuda")
    q = torch.empty_like(kw["q"])
    k_new = torch.empty(batch, 1, cache_heads, head_dim, device="cuda", dtype=torch.bfloat16)
    v_new = torch.empty_like(k_new)

    def step():
        headmix.kv_cache_append(k_new, v_new, kw["k_cache"], kw["v_cache"], kw["cache_seqlens"],
                                block_table=kw["block_table"], cos=cos, sin=sin)
        kw["cache_seqlens"].add_(1)
        return headmix.vhead_decode(q, kw["k_cache"], kw["v_cache"], kw["cache_seqlens"], w_k=kw["w_k"],
                                    w_v=kw["w_v"], block_table=kw["block_table"], return_lse=True)

    def fresh_inputs():
        for t in (q, k_new, v_new):
            t.copy_(torch.randn_like(t, dtype=torch.float32))

    with torch.no_grad():
        fresh_inputs()
        step()  # warm-up, eager
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # records the step; nothing runs until replay
            out, lse = step()
        for _ in range(5):
            fresh_inputs()
            poison_cuda_allocator()
            graph.replay()
            torch.cuda.synchronize()
            current = dict(kw, q=q)
            exact = reference.vhead_decode(**to_float64(Sample("graph", current)).kwargs)
            assert_within_2x_pytorch_error((out, lse), reference.vhead_decode(**current), exact, "replay")


@pytest.mark.parametrize("heads", ["GQA 4", "virtual H'=4 < H_kv=8, H=32"])
def test_opcheck(heads):
    s = sample(torch.bfloat16, 128, heads, 64, 2, [3, 500], capacity=1024)
    torch.library.opcheck(ops.vhead_decode.default, s.args)


def test_compiles_fullgraph():
    s = sample(torch.bfloat16, 128, "virtual H'=4 < H_kv=8, H=32", 16, 1, [7, 900], capacity=1024)
    compiled = torch.compile(lambda kw: headmix.vhead_decode(**kw), fullgraph=True)
    with torch.no_grad():
        assert torch.equal(compiled(s.kwargs), headmix.vhead_decode(**s.kwargs))


# ---------------------------------------------------------------- end to end


class TinyLM(nn.Module):
    """Embedding -> one GQA MEA layer -> RMSNorm -> vocabulary head, with no residual, so every
    logit depends on the attention output."""

    def __init__(self, vocab, dim, heads, kv_heads):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.attn = ExplicitMultiheadAttention(dim, heads, kv_heads, max_seqlen=64)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens, cache):
        x = self.attn(self.embed(tokens), cache)
        return self.head(F.rms_norm(x, (x.shape[-1],)))


@torch.no_grad()
def decode(model, prompt, steps, block_size, forced=None):
    """Tokens [B, steps] and the logits [B, steps, vocab] that chose them, prefilling the prompt
    into the model's cache and then decoding one token per step: greedily, or `forced` tokens."""
    cache = model.attn.make_cache(prompt.shape[0], prompt.shape[1] + steps, block_size=block_size)
    logits = [model(prompt, cache)[:, -1].float()]
    tokens = []
    for i in range(steps):
        tokens.append(logits[-1].argmax(-1, keepdim=True) if forced is None else forced[:, i : i + 1])
        if i + 1 < steps:
            logits.append(model(tokens[-1], cache)[:, -1].float())
    return torch.cat(tokens, 1), torch.stack(logits, 1)


@pytest.mark.parametrize("block_size", [None, 16])
def test_compressed_mea_model_generates_the_cpu_tokens(block_size):
    """compress_kv_heads(..., H_kv/2) halves the cache; the converted model decodes on CUDA in
    bfloat16 (kv_cache_append and vhead_decode kernels, an S_q = 8 prefill then S_q = 1 steps)
    what the same converted model decodes on the CPU in float32: along the CPU's greedy tokens its
    logits stay within bfloat16 noise and its greedy choice is the CPU's wherever the CPU's top two
    logits are not a near-tie, and generating freely it repeats the CPU's tokens up to the first
    near-tie (where bfloat16 rounding may legitimately pick the other token)."""
    vocab, heads, kv_heads, head_dim, steps, tie = 16, 8, 4, 64, 24, 0.06
    model = TinyLM(vocab, heads * head_dim, heads, kv_heads)
    model.attn = compress_kv_heads(model.attn, kv_heads // 2)
    model = model.to(torch.bfloat16).float().eval()  # weights exact in bfloat16: both devices hold the same model
    assert model.attn.num_virtual_heads == 2
    prompt = torch.randint(0, vocab, (2, 8))
    cpu_tokens, cpu_logits = decode(model, prompt, steps, block_size)
    top2 = cpu_logits.topk(2, dim=-1).values
    decided = top2[..., 0] - top2[..., 1] > tie  # [B, steps]
    assert decided.float().mean() > 0.3, "too many near-ties for this test to mean something"

    model = model.to("cuda", torch.bfloat16)
    _, forced_logits = decode(model, prompt.cuda(), steps, block_size, forced=cpu_tokens.cuda())
    assert (forced_logits.cpu() - cpu_logits).abs().max() < tie / 2
    assert torch.equal(forced_logits.argmax(-1).cpu()[decided], cpu_tokens[decided])
    cuda_tokens, _ = decode(model, prompt.cuda(), steps, block_size)
    for b in range(prompt.shape[0]):
        agreed = int(decided[b].cumprod(0).sum())  # steps before the first near-tie
        assert torch.equal(cuda_tokens[b, :agreed].cpu(), cpu_tokens[b, :agreed]), b
