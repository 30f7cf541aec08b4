"""CUDA-only properties of the kv_cache_append kernel: realistic head dims, RoPE widths and page
sizes against the reference with every untouched row (NaN padding, unused pages) keeping its
bits, the element-wise path for unaligned inputs, overflow rejected before any write (and
skipped rows without the host check), CUDA-graph capture and replay, opcheck. (The shared op
tests in test_kv_cache_append.py also run on CUDA.)"""

import pytest
import torch
from samples import append_index, clone_args, kv_cache_append_sample, to_float64
from tolerances import assert_bitwise_equal, assert_within_2x_pytorch_error

import headmix
from headmix import reference

pytestmark = pytest.mark.cuda

ops = torch.ops.headmix


def appended(s):
    """k_cache, v_cache after the op on copies of the sample's caches."""
    s = clone_args(s)
    ops.kv_cache_append(*s.args)
    return s.kwargs["k_cache"], s.kwargs["v_cache"]


def check(s):
    """V rows copied bit for bit, K rows within 2x PyTorch's error, all other rows untouched."""
    k_cache, v_cache = appended(s)
    expected_k, expected_v = reference.kv_cache_append(**s.kwargs)
    assert_bitwise_equal(v_cache, expected_v, s.name)
    index = append_index(s)
    untouched = torch.ones(k_cache.shape[:2], dtype=torch.bool, device="cuda")
    untouched[index] = False
    assert_bitwise_equal(k_cache[untouched], s.kwargs["k_cache"][untouched], s.name)
    exact_k, _ = reference.kv_cache_append(**to_float64(s).kwargs)
    assert_within_2x_pytorch_error(k_cache[index], expected_k[index], exact_k[index], s.name)


@pytest.mark.parametrize("new_rows", [1, 5])
@pytest.mark.parametrize("block_size", [None, 16, 64, 256])
@pytest.mark.parametrize("rotary_dim", [None, "half", "full"])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_matches_reference(dtype, head_dim, rotary_dim, block_size, new_rows):
    rotary = {None: None, "half": head_dim // 2, "full": head_dim}[rotary_dim]
    s = kv_cache_append_sample(f"d={head_dim}, rope {rotary_dim}, {block_size}", "cuda", dtype, new_rows=new_rows,
                               cache_heads=4, head_dim=head_dim, seqlens=[0, 15, 255, 1019], capacity=1024,
                               block_size=block_size, rotary_dim=rotary)
    check(s)


@pytest.mark.parametrize("pos", [None, [3, 900, 0, 7]])
def test_unaligned_inputs_take_the_element_path(pos):
    """k_new one element into its buffer and d = 72 with r/2 = 20: no 16-byte vectors."""
    s = kv_cache_append_sample("unaligned", "cuda", torch.bfloat16, new_rows=3, cache_heads=2, head_dim=72,
                               seqlens=[0, 15, 255, 1019], capacity=1024, block_size=64, rotary_dim=40, pos=pos)
    k_new = s.kwargs["k_new"]
    buffer = torch.empty(k_new.numel() + 1, device="cuda", dtype=k_new.dtype)
    s.kwargs["k_new"] = buffer[1:].view(k_new.shape).copy_(k_new)
    check(s)


def overflowing_sample():
    """Sequence 1 holds 63 of its 64 rows and gets 2 more."""
    return kv_cache_append_sample("overflow", "cuda", torch.bfloat16, new_rows=2, cache_heads=2, head_dim=128,
                                  seqlens=[5, 63], capacity=64, block_size=16, rotary_dim=128)


def test_overflow_is_rejected_before_anything_is_written(monkeypatch):
    monkeypatch.delenv("HEADMIX_CACHE_RANGE_CHECKS", raising=False)  # the default: host checks
    s = overflowing_sample()
    before = [t.clone() for t in (s.kwargs["k_cache"], s.kwargs["v_cache"])]
    with pytest.raises(RuntimeError, match="cache_seqlens\\[1\\] = 63 plus the new rows 2 exceeds the cache capacity"):
        ops.kv_cache_append(*s.args)
    assert_bitwise_equal(s.kwargs["k_cache"], before[0], "k_cache")
    assert_bitwise_equal(s.kwargs["v_cache"], before[1], "v_cache")


def test_without_the_host_check_rows_past_the_capacity_are_skipped(monkeypatch):
    monkeypatch.setenv("HEADMIX_CACHE_RANGE_CHECKS", "0")
    s = overflowing_sample()
    k_cache, v_cache = appended(s)
    table, v_new = s.kwargs["block_table"], s.kwargs["v_new"]
    # Sequence 0 gets rows 5 and 6 of its first page, sequence 1 row 63 (the last of its fourth
    # page); its row 64 has no page, so nothing else may change.
    written = torch.zeros(k_cache.shape[:2], dtype=torch.bool, device="cuda")
    written[table[0, 0], 5:7] = True
    written[table[1, 3], 15] = True
    assert_bitwise_equal(v_cache[table[0, 0], 5:7], v_new[0], "sequence 0")
    assert_bitwise_equal(v_cache[table[1, 3], 15], v_new[1, 0], "the row of sequence 1 that fits")
    assert_bitwise_equal(v_cache[~written], s.kwargs["v_cache"][~written], "v_cache elsewhere")
    assert_bitwise_equal(k_cache[~written], s.kwargs["k_cache"][~written], "k_cache elsewhere")


def test_cuda_graph_replays_appends():
    """Appends captured once with the lengths advanced inside the graph, replayed token by token."""
    s = kv_cache_append_sample("graph", "cuda", torch.bfloat16, new_rows=1, cache_heads=4, head_dim=128,
                               seqlens=[0, 40, 17], capacity=64, block_size=16, rotary_dim=64)
    kw = s.kwargs
    kw["cos"], kw["sin"] = headmix.rope_tables(64, 64, device="cuda")  # positions of the later steps too
    expected = clone_args(s).kwargs
    k_new, v_new = torch.empty_like(kw["k_new"]), torch.empty_like(kw["v_new"])

    def step():
        headmix.kv_cache_append(k_new, v_new, kw["k_cache"], kw["v_cache"], kw["cache_seqlens"],
                                block_table=kw["block_table"], cos=kw["cos"], sin=kw["sin"])
        kw["cache_seqlens"].add_(1)

    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # records the step; nothing runs until replay
        step()
    for _ in range(4):
        k_new.copy_(torch.randn_like(k_new, dtype=torch.float32))
        v_new.copy_(torch.randn_like(v_new, dtype=torch.float32))
        graph.replay()
        expected["k_cache"], expected["v_cache"] = reference.kv_cache_append(
            k_new, v_new, expected["k_cache"], expected["v_cache"], expected["cache_seqlens"],
            expected["block_table"], expected["cos"], expected["sin"])
        expected["cache_seqlens"] += 1
    torch.cuda.synchronize()
    assert torch.equal(kw["cache_seqlens"], expected["cache_seqlens"])
    assert_bitwise_equal(kw["v_cache"], expected["v_cache"], "v_cache")
    torch.testing.assert_close(kw["k_cache"], expected["k_cache"], equal_nan=True)


def test_opcheck():
    s = kv_cache_append_sample("opcheck", "cuda", torch.bfloat16, new_rows=3, cache_heads=4, head_dim=128,
                               seqlens=[0, 100], capacity=256, block_size=64, rotary_dim=128, pos=[7, 3])
    torch.library.opcheck(ops.kv_cache_append.default, clone_args(s).args)
