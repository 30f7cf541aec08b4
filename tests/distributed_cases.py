"""The multi-process side of test_distributed.py: cases run on every rank of a gloo group.

Every rank builds the same full inputs (same seed), computes the single-process reference on
the full sequence, runs the context-parallel version on its own tokens and compares its share.
A case returns nothing or raises; ``run_rank`` records each case's outcome per rank.
"""

from __future__ import annotations

import copy
import datetime
import json
import traceback

import torch
import torch.distributed as dist

import headmix
from headmix.distributed import ContextParallel, ring_flash_attn
from headmix.nn import ExplicitMultiheadAttention, InterleavedHeadAttention

BATCH, TOKENS, DIM = 2, 16, 16  # TOKENS % (2 * 4) == 0: zigzag over 4 ranks


def _close(actual, expected, dtype, what):
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol, msg=lambda m: f"{what}: {m}")


def _uneven_shard(x, rank, world):
    """Contiguous shards of lengths 1, 2, ... (rank r gets r + 1 tokens, the last the rest)."""
    lengths = [r + 1 for r in range(world - 1)]
    lengths.append(x.shape[1] - sum(lengths))
    start = sum(lengths[:rank])
    return x[:, start:start + lengths[rank]]


def _flash_case(dtype, layout, causal, window, heads=4, kv_heads=2, uneven=False, lse_grad=False):
    def case(cp: ContextParallel):
        cp = ContextParallel(layout=layout)
        q = torch.randn(BATCH, TOKENS, heads, 8, dtype=dtype, requires_grad=True)
        k = torch.randn(BATCH, TOKENS, kv_heads, 8, dtype=dtype, requires_grad=True)
        v = torch.randn(BATCH, TOKENS, kv_heads, 8, dtype=dtype, requires_grad=True)
        g_out = torch.randn(BATCH, TOKENS, heads, 8, dtype=dtype)
        g_lse = torch.randn(BATCH, heads, TOKENS, dtype=dtype)
        out, lse = headmix.flash_attn(q, k, v, causal=causal, window=window, return_lse=True)
        loss = (out * g_out).sum() + ((lse * g_lse).sum() if lse_grad else 0)
        ref_grads = torch.autograd.grad(loss, (q, k, v))

        def share(x, dim=1):
            return _uneven_shard(x, cp.rank, cp.world_size) if uneven else cp.shard(x, dim)

        local = [share(t).detach().requires_grad_() for t in (q, k, v)]
        out_l, lse_l = ring_flash_attn(*local, layout=layout, causal=causal, window=window, return_lse=True)
        loss_l = (out_l * share(g_out)).sum()
        if lse_grad:
            g_lse_local = share(g_lse.transpose(1, 2)).transpose(1, 2)
            loss_l = loss_l + (lse_l * g_lse_local).sum()
        grads = torch.autograd.grad(loss_l, local)
        _close(out_l, share(out.detach()), dtype, "out")
        _close(lse_l, share(lse.detach().transpose(1, 2)).transpose(1, 2), dtype, "lse")
        for name, grad, ref in zip("qkv", grads, ref_grads):
            _close(grad, share(ref), dtype, f"d{name}")
    return case


def _module_case(make, dtype, layout):
    """A layer over the full sequence vs the same weights under context parallelism: output,
    input gradient, and weight gradients summed over ranks."""
    def case(cp: ContextParallel):
        module = make(dtype)
        with torch.no_grad():  # away from the identity initialisation, so mixing matters
            for p in module.parameters():
                p.add_(0.1 * torch.randn_like(p))
        x = torch.randn(BATCH, TOKENS, DIM, dtype=dtype, requires_grad=True)
        g = torch.randn(BATCH, TOKENS, DIM, dtype=dtype)
        ref = module(x)
        ref_grads = torch.autograd.grad((ref * g).sum(), (x, *module.parameters()))
        cp = ContextParallel(layout=layout)
        parallel = copy.deepcopy(module)
        parallel.context_parallel = cp
        x_local = cp.shard(x).detach().requires_grad_()
        out = parallel(x_local)
        grads = torch.autograd.grad((out * cp.shard(g)).sum(), (x_local, *parallel.parameters()))
        _close(out, cp.shard(ref.detach()), dtype, "out")
        _close(grads[0], cp.shard(ref_grads[0]), dtype, "dx")
        for (name, _), grad, expected in zip(parallel.named_parameters(), grads[1:], ref_grads[1:]):
            dist.all_reduce(grad)
            _close(grad, expected, dtype, f"d{name}")
    return case


def _iha(window=None):
    return lambda dtype: InterleavedHeadAttention(DIM, 4, pseudo_heads=2, window=window, dtype=dtype)


def _mea(dtype):
    return ExplicitMultiheadAttention(DIM, 4, num_kv_heads=2, dtype=dtype)


def _unshard_inverts_shard(cp):
    x = torch.randn(BATCH, TOKENS, 3)
    for layout in ("zigzag", "contiguous"):
        cp = ContextParallel(layout=layout)
        torch.testing.assert_close(cp.unshard(cp.shard(x)), x, rtol=0, atol=0)
    uneven = _uneven_shard(x, cp.rank, cp.world_size)  # contiguous, lengths 1, 2, ..., rest
    torch.testing.assert_close(cp.unshard(uneven), x, rtol=0, atol=0)


def _expect_error_everywhere(call, *fragments):
    """call() must raise on this rank (and so, run on all ranks, on every rank) with a message
    holding every fragment."""
    try:
        call()
    except RuntimeError as error:
        missing = [f for f in fragments if f not in str(error)]
        assert not missing, f"message lacks {missing}: {error}"
        return
    raise AssertionError("no error raised")


def _bad_heads(cp):
    heads = 4 if cp.rank == 0 else 2  # rank 0 disagrees with the others
    q = torch.randn(1, 4, heads, 8)
    kv = torch.randn(1, 4, 2, 8)
    _expect_error_everywhere(lambda: ring_flash_attn(q, kv, kv, causal=True), "q heads, head dim", "rank 0: (4, 8)")


def _bad_local_shape(cp):
    q = torch.randn(1, 4, 2, 8)
    k = torch.randn(1, 3 if cp.rank == cp.world_size - 1 else 4, 2, 8)
    _expect_error_everywhere(lambda: ring_flash_attn(q, k, k, causal=True),
                             f"rank {cp.world_size - 1}: k and v must hold the same tokens")


def _uneven_zigzag(cp):
    q = torch.randn(1, 4 if cp.rank else 6, 2, 8)
    _expect_error_everywhere(lambda: ring_flash_attn(q, q, q, causal=True, layout="zigzag"),
                             "zigzag layout needs the same even local length")


def _grad_mismatch(cp):
    q = torch.randn(1, 4, 2, 8, requires_grad=cp.rank == 0)
    _expect_error_everywhere(lambda: ring_flash_attn(q, q.detach(), q.detach(), causal=True), "requires_grad")


def _rope_too_short_for_the_last_ranks(cp):
    """Tables of 20 virtual positions cover rank 0's tokens (contiguous) but not the sequence."""
    cp = ContextParallel(layout="contiguous")
    module = InterleavedHeadAttention(DIM, 4, pseudo_heads=2, max_seqlen=10, context_parallel=cp)
    x = cp.shard(torch.randn(BATCH, TOKENS, DIM))
    _expect_error_everywhere(lambda: module(x), "cos/sin have 20 positions", "needs 32")


f64, f32 = torch.float64, torch.float32
CASES = {
    "causal_contiguous_f64": _flash_case(f64, "contiguous", True, (-1, -1)),
    "causal_zigzag_f64": _flash_case(f64, "zigzag", True, (-1, -1)),
    "causal_zigzag_gqa_f32": _flash_case(f32, "zigzag", True, (-1, -1)),
    "causal_window_contiguous_f64": _flash_case(f64, "contiguous", True, (2, -1)),
    "causal_window_zigzag_f64": _flash_case(f64, "zigzag", True, (5, -1)),
    "two_sided_window_f64": _flash_case(f64, "contiguous", False, (3, 2)),
    "full_zigzag_mha_f64": _flash_case(f64, "zigzag", False, (-1, -1), heads=2, kv_heads=2),
    "causal_uneven_contiguous_f64": _flash_case(f64, "contiguous", True, (-1, -1), uneven=True),
    "lse_grad_causal_zigzag_f64": _flash_case(f64, "zigzag", True, (-1, -1), lse_grad=True),
    "iha_zigzag_f64": _module_case(_iha(), f64, "zigzag"),
    "iha_zigzag_f32": _module_case(_iha(), f32, "zigzag"),
    "iha_window_contiguous_f64": _module_case(_iha(window=3), f64, "contiguous"),
    "mea_zigzag_f64": _module_case(_mea, f64, "zigzag"),
    "unshard_inverts_shard": _unshard_inverts_shard,
    "error_inconsistent_heads": _bad_heads,
    "error_local_shape_on_one_rank": _bad_local_shape,
    "error_uneven_zigzag": _uneven_zigzag,
    "error_requires_grad_mismatch": _grad_mismatch,
    "error_rope_table_too_short": _rope_too_short_for_the_last_ranks,
}


def run_rank(rank: int, world: int, init_file: str, result_file: str, gloo_timeout_s: float) -> None:
    """Runs every case on this rank and writes {case: None or the failure} as JSON."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=gloo_timeout_s))
    results = {}
    for name, case in CASES.items():
        torch.manual_seed(len(name))  # the same full inputs on every rank
        try:
            case(ContextParallel())
            results[name] = None
        except Exception:  # noqa: BLE001 - recorded and reported by the test
            results[name] = traceback.format_exc()
    dist.destroy_process_group()
    with open(result_file, "w") as f:
        json.dump(results, f)
