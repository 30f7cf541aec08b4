"""Context parallelism (headmix.distributed): the mask algebra and layouts in-process, and the
ring against single-process results in gloo groups of 2 and 4 processes spawned here.

The spawned processes run every case of distributed_cases.py once per world size (starting
processes is the expensive part); each test then reads its case's outcome on every rank. A
deadline turns a hang into a failure, and the gloo timeout turns a stuck collective inside one
case into that case's error.
"""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest
import torch

import distributed_cases
from headmix.distributed import bands, layout
from headmix.distributed.plan import Plan

WORLD_SIZES = (2, 4)
DEADLINE_S = 150
GLOO_TIMEOUT_S = 30


# ---------------------------------------------------------------- in-process


def _global_mask(q_pos, k_pos, causal, window):
    left, right = bands.global_band(causal, window)
    diff = k_pos[None, :] - q_pos[:, None]  # j - i
    return (diff >= -left) & (diff <= right)


def _flash_mask(rows, keys, causal, window):
    """The mask headmix.flash_attn applies (bottom-right aligned, DESIGN.md)."""
    left, right = window
    right = 0 if causal else right
    pos = torch.arange(rows)[:, None] + keys - rows
    j = torch.arange(keys)[None, :]
    return ((left < 0) | (j >= pos - left)) & ((right < 0) | (j <= pos + right))


@pytest.mark.parametrize("causal, window", [(True, (-1, -1)), (True, (3, -1)), (True, (0, -1)),
                                            (False, (-1, -1)), (False, (2, 5)), (False, (-1, 1)), (False, (4, -1))])
def test_block_call_is_the_global_band(causal, window):
    """Every pair of segments, trimmed and re-aligned, masks exactly like the full sequence."""
    for q_start, q_len, k_start, k_len in [(s, n, t, m) for s in (0, 3, 9) for n in (1, 4, 6)
                                           for t in (0, 2, 5, 11) for m in (1, 3, 7)]:
        q_pos, k_pos = torch.arange(q_start, q_start + q_len), torch.arange(k_start, k_start + k_len)
        expected = _global_mask(q_pos, k_pos, causal, window)
        call = bands.block_call(q_start, q_len, k_start, k_len, causal, window)
        got = torch.zeros_like(expected)
        if call is not None:
            assert min(call.window) >= -1
            got[call.q_begin:call.q_end, call.k_begin:call.k_end] = _flash_mask(
                call.q_end - call.q_begin, call.k_end - call.k_begin, call.causal, call.window)
        assert torch.equal(got, expected), (q_start, q_len, k_start, k_len, call)


@pytest.mark.parametrize("world", WORLD_SIZES)
@pytest.mark.parametrize("name", layout.LAYOUTS)
def test_shard_positions_cover_the_sequence(name, world):
    x = torch.arange(2 * 24).view(2, 24)
    shares = [layout.shard(x, r, world, name) for r in range(world)]
    positions = [layout.positions(24, r, world, name) for r in range(world)]
    assert torch.equal(torch.cat(positions).sort().values, torch.arange(24))
    for share, pos in zip(shares, positions):
        assert torch.equal(share, x[:, pos])


def _causal_pairs(segments):
    return [sum(q_len * (q_start + 1) + q_len * (q_len - 1) // 2 for q_start, q_len in segs) for segs in segments]


@pytest.mark.parametrize("world", WORLD_SIZES)
def test_zigzag_balances_causal_work(world):
    """Visible (query, key) pairs per rank under a causal mask: equal for zigzag."""
    lengths = [32 // world] * world
    zigzag = _causal_pairs(layout.segments("zigzag", lengths))
    contiguous = _causal_pairs(layout.segments("contiguous", lengths))
    assert len(set(zigzag)) == 1 and sum(zigzag) == sum(contiguous) == 32 * 33 // 2
    assert max(contiguous) > min(contiguous)


def test_window_ring_stops_at_the_ranks_it_reaches():
    plan = Plan(None, 0, 4, layout.segments("contiguous", [8] * 4))
    assert plan.last_step(True, (-1, -1)) == 3
    assert plan.last_step(True, (8, -1)) == 1  # window of 9 keys: only the previous rank
    assert plan.last_step(True, (9, -1)) == 2
    assert plan.last_step(True, (0, -1)) == 0


# ---------------------------------------------------------------- multi-process (gloo)


@pytest.fixture(scope="module")
def ring_outcomes(tmp_path_factory):
    """{world: [per-rank {case: None or failure}]}, spawned lazily per world size."""
    outcomes = {}

    def get(world):
        if world not in outcomes:
            outcomes[world] = _spawn(world, tmp_path_factory.mktemp(f"world{world}"))
        return outcomes[world]
    return get


def _spawn(world, tmp):
    ctx = multiprocessing.get_context("spawn")
    files = [str(tmp / f"rank{r}.json") for r in range(world)]
    procs = [ctx.Process(target=distributed_cases.run_rank,
                         args=(r, world, str(tmp / "rendezvous"), files[r], GLOO_TIMEOUT_S)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(DEADLINE_S)
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    if hung:
        pytest.fail(f"ranks {hung} of {world} still running after {DEADLINE_S} s (hang)")
    failed = [(r, p.exitcode) for r, p in enumerate(procs) if p.exitcode != 0 or not os.path.exists(files[r])]
    if failed:
        pytest.fail(f"worker processes (rank, exit code) {failed} died")
    return [json.load(open(f)) for f in files]


@pytest.mark.parametrize("world", WORLD_SIZES)
@pytest.mark.parametrize("case", list(distributed_cases.CASES))
def test_ring(case, world, ring_outcomes):
    failures = [f"rank {r}:\n{res[case]}" for r, res in enumerate(ring_outcomes(world)) if res[case]]
    assert not failures, "\n".join(failures)
