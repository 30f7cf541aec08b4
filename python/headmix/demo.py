"""``make demo``: IHA and MEA layers end to end, each result checked against the reference.

Builds an IHA layer and an MEA layer, runs forward + backward, compresses the MEA KV cache to
half its heads (MEA §5.2), generates tokens with the caches, and prints one table: time of the
headmix path, time of the plain PyTorch composite doing the same work, the largest error against
the float64 reference, and the cache bytes. Runs on CUDA when every op has a CUDA kernel in this
build, otherwise on the CPU.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

import headmix
from headmix import composites, reference
from headmix.nn import ExplicitMultiheadAttention, InterleavedHeadAttention, compress_kv_heads
from headmix.rope import apply_rope

OPS = ("mix_heads", "mix_heads_backward", "flash_attn_fwd", "flash_attn_bwd", "vhead_decode", "kv_cache_append")


def pick_device() -> tuple[str, str]:
    if not torch.cuda.is_available():
        return "cpu", "no CUDA device"
    missing = [op for op in OPS if not torch._C._dispatch_has_kernel_for_dispatch_key(f"headmix::{op}", "CUDA")]
    if missing:
        return "cpu", f"this build has no CUDA kernel for {', '.join(missing)}"
    return "cuda", "all ops have CUDA kernels"


def timed(fn, device, reps=3):
    """Median wall time (ms) of fn() after one warm-up call; returns (ms, last result)."""
    result = fn()
    times = []
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2], result


def relative_error(got, want) -> float:
    """Largest |got - want| relative to the largest |want|, over a list of tensors."""
    return max(((g.double() - w).abs().max() / w.abs().max().clamp_min(1e-30)).item() for g, w in zip(got, want))


# ------------------------------------------------------------------ PyTorch composites (baselines)


def iha_composite(module, x):
    """The IHA layer with its core as plain PyTorch (composites.iha_attention)."""
    b, n, dim = x.shape
    q, k, v = module.project(x)
    o = composites.iha_attention(q, k, v, module.alpha_q, module.alpha_k, module.alpha_v, module.collapse,
                                 pseudo=module.pseudo, cos=module.cos, sin=module.sin, causal=True)
    return module.out(o.reshape(b, n, dim))


def mea_composite(module, x):
    b, n, _ = x.shape
    d = module.head_dim
    q, k, v = module.project(x)
    pos = torch.arange(n, device=x.device)[:, None]
    q, k = apply_rope(q, module.cos, module.sin, pos), apply_rope(k, module.cos, module.sin, pos)
    k = torch.einsum("bnjd,jg->bngd", k, module.w_lc_k)
    v = torch.einsum("bnjd,jg->bngd", v, module.w_lc_v)
    o = F.rms_norm(composites.sdpa(q, k, v, causal=True), (d,), eps=module.eps) * module.norm_weight
    return module.o_proj(o.reshape(b, n, -1))


def composite_attend(cache, q, w_k=None, w_v=None):
    """One decode step in plain PyTorch: rebuild the kv heads of the whole (contiguous) cache
    with einsum, then SDPA with the bottom-right causal mask."""
    keys, values = cache.k[:, : cache.length], cache.v[:, : cache.length]
    if w_k is not None:
        keys = torch.einsum("btjd,jg->btgd", keys, w_k)
        values = torch.einsum("btjd,jg->btgd", values, w_v)
    mask = reference.allowed_keys(q.shape[1], cache.length, causal=True, device=q.device)
    return composites.sdpa(q, keys, values, mask=mask)


# ------------------------------------------------------------------ the runs


def forward_backward(module, forward, x):
    """Output and gradients (x and every parameter) of sum(out * fixed random)."""
    x = x.detach().requires_grad_()
    out = forward(module, x)
    weights = torch.Generator(device="cpu").manual_seed(1)
    probe = torch.randn(out.shape, generator=weights).to(out.device, out.dtype)
    grads = torch.autograd.grad((out * probe).sum(), [x, *module.parameters()])
    return [out, *grads]


def layer_rows(name, module, headmix_forward, composite, reference_forward, x, device):
    fast_ms, got = timed(lambda: forward_backward(module, headmix_forward, x), device)
    base_ms, _ = timed(lambda: forward_backward(module, composite, x), device)
    want = forward_backward(copy.deepcopy(module).double(), reference_forward, x.double())
    return [name + " fwd+bwd", device, fast_ms, base_ms, relative_error(got, want), "-"]


class TinyLM(torch.nn.Module):
    """Embedding -> one attention layer -> LM head: enough to generate tokens greedily."""

    def __init__(self, attention, vocab, dim):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.attention = attention
        self.head = torch.nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens, cache=None):
        return self.head(self.attention(self.embed(tokens), cache))


@torch.no_grad()
def generate(model, prompt, steps, cache):
    """Greedy tokens and the logits of each step, decoding through the cache."""
    logits = model(prompt, cache)[:, -1]
    tokens, all_logits = [logits.argmax(-1, keepdim=True)], [logits]
    for _ in range(steps - 1):
        logits = model(tokens[-1], cache)[:, -1]
        tokens.append(logits.argmax(-1, keepdim=True))
        all_logits.append(logits)
    return torch.cat(tokens, 1), torch.stack(all_logits, 1)


@torch.no_grad()
def full_recompute_logits(model, prompt, generated):
    """Logits of every generated position from one full (cache-free) forward."""
    sequence = torch.cat([prompt, generated[:, :-1]], 1)
    return model(sequence)[:, prompt.shape[1] - 1 :]


def decode_row(name, model, prompt, steps, device, make_cache, q_shape, w_k=None, w_v=None):
    """Generates through the cache and checks every step's logits against a full float64
    recompute; times one decode step (headmix vs composite) over a full contiguous cache."""
    tokens, logits = generate(model, prompt, steps, make_cache())
    want = full_recompute_logits(copy.deepcopy(model).double(), prompt, tokens)
    same = torch.equal(want.argmax(-1), tokens)
    cache = model.attention.make_cache(prompt.shape[0], prompt.shape[1] + steps)
    rows = prompt.shape[1] + steps - q_shape[1]
    with torch.no_grad():
        cache.append(*(torch.randn(q_shape[0], rows, *cache.k.shape[2:], device=device) for _ in range(2)))
        q = torch.randn(q_shape, device=device)
        fast_ms, _ = timed(lambda: cache.attend(q, w_k=w_k, w_v=w_v), device)
        base_ms, _ = timed(lambda: composite_attend(cache, q, w_k, w_v), device)
    label = f"{name}: {steps} tokens {'== full recompute' if same else 'DIFFER from full recompute'}"
    return [label, device, fast_ms, base_ms, relative_error([logits], [want]), make_cache().nbytes], same


def main() -> None:
    device, why = pick_device()
    torch.manual_seed(0)
    print(f"headmix demo on {device} ({why})\nbuild: {headmix.build_info}")
    dim, heads, batch, tokens = 256, 8, 2, 256
    rows = []

    iha = InterleavedHeadAttention(dim, heads, pseudo_heads=4, max_seqlen=512, device=device)
    with torch.no_grad():  # move off the identity init so the mixing is exercised
        for p in (iha.alpha_q, iha.alpha_k, iha.alpha_v, iha.collapse):
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(batch, tokens, dim, device=device)
    rows.append(layer_rows("IHA layer P=4 (N*P=1024)", iha, lambda m, t: m(t), iha_composite, reference.iha_layer, x, device))

    mea = ExplicitMultiheadAttention(dim, heads, num_kv_heads=4, max_seqlen=512, device=device)
    with torch.no_grad():
        mea.w_lc_k.add_(0.2 * torch.randn_like(mea.w_lc_k))
        mea.w_lc_v.add_(0.2 * torch.randn_like(mea.w_lc_v))
    rows.append(layer_rows("MEA layer H_kv=4", mea, lambda m, t: m(t), mea_composite, reference.mea_layer, x, device))

    vocab, prompt_len, steps = 128, 64, 32
    total = prompt_len + steps
    prompt = torch.randint(0, vocab, (batch, prompt_len), device=device)
    d = dim // heads
    iha_lm = TinyLM(iha, vocab, dim).to(device)
    row, iha_same = decode_row("IHA decode step (S_q=P=4), paged", iha_lm, prompt, steps, device,
                               lambda: iha.make_cache(batch, total, block_size=16), (batch, iha.pseudo, heads, d))
    rows.append(row)
    compressed = compress_kv_heads(mea, 2)
    lm_full, lm_small = TinyLM(mea, vocab, dim).to(device), TinyLM(compressed, vocab, dim).to(device)
    lm_small.embed, lm_small.head = lm_full.embed, lm_full.head
    checks = [iha_same]
    for label, module, lm in (("MEA decode step, H'=4 cache", mea, lm_full),
                              ("MEA decode step, H'=2 (SVD)", compressed, lm_small)):
        row, same = decode_row(label, lm, prompt, steps, device, lambda m=module: m.make_cache(batch, total),
                               (batch, 1, heads, d), module.w_lc_k.detach(), module.w_lc_v.detach())
        rows.append(row)
        checks.append(same)

    header = ["what", "device", "headmix ms", "composite ms", "rel err vs fp64 ref", "cache bytes"]
    print_table(header, rows)
    print("composite = the same math in plain PyTorch (einsum + RoPE + SDPA; for a decode step, an einsum "
          "rebuild of the cached kv heads + SDPA). Errors: layers over output and all gradients, decode "
          "over the generated logits.")
    for line in slower_rows(rows, device):
        print(line)
    failures = [r[0] for r in rows if r[4] > 1e-4]
    if failures or not all(checks):
        raise SystemExit(f"demo: FAILED checks: {failures or 'generated tokens differ from full recompute'}")
    print("demo: all results match the float64 reference")


# Why a row can be slower than its composite, where the cause is known and not yet fixed.
KNOWN_SLOWER = {
    ("cpu", "paged"): "the CPU backend copies a paged cache's pages into a contiguous buffer before "
                      "attending (every cached row, every step); the composite reads a contiguous cache",
}


def slower_rows(rows, device):
    """One line per row where headmix took longer than the composite, saying why."""
    for row in rows:
        what, fast_ms, base_ms = row[0], row[2], row[3]
        if fast_ms <= base_ms:
            continue
        cause = next((why for (dev, key), why in KNOWN_SLOWER.items() if dev == device and key in what), None)
        cause = cause or ("no known cause: a median of 3 calls, so load on the machine can decide it "
                          "(`make bench` gives interleaved ratios with their spread)")
        yield f"slower than composite ({fast_ms / base_ms:.2f}x): {what}: {cause}"


def print_table(header, rows):
    def cell(v):
        if isinstance(v, float):
            return f"{v:.3g}" if v < 1e-2 else f"{v:.1f}"
        return str(v)

    table = [header] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
