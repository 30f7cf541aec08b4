"""headmix.kv_cache_append: in-place writes of new (rotated) rows into contiguous and paged caches."""

import pytest
import torch
from samples import Sample, append_index, clone_args, kv_cache_append_samples, to_float64
from tolerances import LOW_PRECISION, assert_bitwise_equal, assert_close_f64, assert_within_2x_pytorch_error

import headmix
from headmix import reference
from headmix.rope import apply_rope

ops = torch.ops.headmix


def appended(sample):
    """k_cache, v_cache after torch.ops.headmix.kv_cache_append on copies of the sample's caches."""
    sample = clone_args(sample)
    assert ops.kv_cache_append(*sample.args) is None
    return sample.kwargs["k_cache"], sample.kwargs["v_cache"]


def test_matches_reference_float64(device):
    for sample in kv_cache_append_samples(device, torch.float64):
        assert_close_f64(appended(sample), reference.kv_cache_append(**sample.kwargs), sample.name)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_within_2x_pytorch_error(device, dtype):
    for sample in kv_cache_append_samples(device, dtype):
        exact = reference.kv_cache_append(**to_float64(sample).kwargs)
        assert_within_2x_pytorch_error(appended(sample), reference.kv_cache_append(**sample.kwargs), exact,
                                       sample.name)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_writes_exactly_the_new_rows(device, dtype):
    """V rows are copied bit for bit, K rows are finite, and every other row, including the NaN
    padding and the pages no sequence owns, keeps its bits."""
    for sample in kv_cache_append_samples(device, dtype):
        s = sample.kwargs
        index = append_index(sample)
        untouched = torch.ones(s["k_cache"].shape[:2], dtype=torch.bool, device=device)
        untouched[index] = False
        k_cache, v_cache = appended(sample)
        assert_bitwise_equal(v_cache[index], s["v_new"], sample.name)
        assert k_cache[index].isfinite().all(), sample.name
        for before, after in ((s["k_cache"], k_cache), (s["v_cache"], v_cache)):
            assert_bitwise_equal(after[untouched], before[untouched], sample.name)


def test_wrapper_matches_op(device):
    for sample in kv_cache_append_samples(device, torch.float32):
        if sample.kwargs["pos"] is not None:
            continue  # the wrapper has no pos: decoding writes at cache_seqlens
        kwargs = clone_args(sample).kwargs
        del kwargs["pos"]
        headmix.kv_cache_append(**kwargs)
        for actual, expected in zip((kwargs["k_cache"], kwargs["v_cache"]), appended(sample)):
            assert_bitwise_equal(actual, expected, sample.name)


def test_pos_sets_the_rope_positions(device):
    """pos[b] + s, not the cache row, is where new key s of sequence b is rotated."""
    checked = 0
    for sample in kv_cache_append_samples(device, torch.float64):
        s = sample.kwargs
        if s["cos"] is None:
            continue
        pos = torch.randint(0, s["cos"].shape[0] - s["k_new"].shape[1] + 1, (s["k_new"].shape[0],),
                            dtype=torch.int32, device=device)
        positions = pos[:, None].long() + torch.arange(s["k_new"].shape[1], device=device)  # [B, S_new]
        rotated_first = dict(s, k_new=apply_rope(s["k_new"], s["cos"], s["sin"], positions[..., None]),
                             cos=None, sin=None, pos=None)
        with_pos = dict(s, pos=pos)
        assert_close_f64(appended(Sample(sample.name, with_pos)),
                         appended(Sample(sample.name, rotated_first)), sample.name)
        checked += 1
    assert checked >= 3


def test_leaves_cache_seqlens_to_the_caller(device):
    for sample in kv_cache_append_samples(device, torch.float32):
        seqlens = sample.kwargs["cache_seqlens"].clone()
        ops.kv_cache_append(*sample.args)
        assert torch.equal(sample.kwargs["cache_seqlens"], seqlens), sample.name


def test_opcheck(device):
    for sample in kv_cache_append_samples(device, torch.float32):
        torch.library.opcheck(ops.kv_cache_append.default, clone_args(sample).args)
