"""The CUDA decode kernels' own source, run on the CPU (no GPU needed).

tests/emulated builds csrc/kernels/sm80's vhead_decode (split and combine) and kv_cache_append
kernels as host C++: the CuTe ldmatrix, mma.sync and cp.async atoms are replaced by warp
collectives that follow the PTX ISA's definitions, every thread is a fiber, and launches use the
bindings' own checks, plan and Params code. Against the reference this checks the kernels'
indexing, fragment layouts, swizzles, masks, key splits, warp and split merges, cp.async
group discipline (copies land only when waited for) and that no cache row at or past
cache_seqlens is ever read. It cannot check timing, memory-model races, the hardware's rounding
or speed: the CUDA tests on a GPU remain what makes the kernels "done".
"""

import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from samples import kv_cache_append_sample, kv_cache_append_samples, to_float64, vhead_decode_sample
from tolerances import assert_bitwise_equal, assert_within_2x_pytorch_error

from headmix import reference

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
H100_SMS = 132


def cuda_include():
    """Headers with the host side of cuda_bf16.h / cuda_fp16.h / vector types, or None."""
    candidates = [os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    if nvcc := shutil.which("nvcc"):
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    for home in filter(None, candidates):
        if (Path(home) / "include" / "cuda_bf16.h").exists():
            return Path(home) / "include"
    return None


@pytest.fixture(scope="module")
def emulated():
    include = cuda_include()
    if include is None or shutil.which("c++") is None:
        pytest.skip("needs a C++ compiler and the CUDA headers (CUDA_HOME or nvcc)")
    from torch.utils.cpp_extension import load

    here = ROOT / "tests" / "emulated"
    return load(name="headmix_emulated_decode_kernels", sources=[str(here / "decode_kernels.cpp"),
                                                                 str(ROOT / "csrc" / "checks.cpp")],
                extra_include_paths=[str(here / "include"), str(here), str(ROOT / "csrc"),
                                     str(ROOT / "csrc" / "kernels"), str(include)],
                extra_cflags=["-O1", "-std=c++17"])


def decode(emulated, s, num_sms=H100_SMS):
    a = s.kwargs
    out, lse, info = emulated.vhead_decode(a["q"], a["k_cache"], a["v_cache"], a["cache_seqlens"], a["w_k"], a["w_v"],
                                           a["block_table"], a["scale"], a["causal"], a["window_left"], num_sms)
    nans_read, splits, rows_per_cta, row_tiles = info.tolist()
    assert nans_read == 0, f"{s.name}: read {nans_read} NaN elements from cache rows it must not touch"
    return (out, lse), dict(splits=splits, rows_per_cta=rows_per_cta, row_tiles=row_tiles)


# (name, sample options): every tile shape, split count, layout and mask the kernels branch on.
DECODE_CASES = {
    "GQA 4, S_q=1, pages of 16, 8 splits": dict(seqlen_q=1, heads=8, kv_heads=2, cache_heads=2, head_dim=128,
                                               seqlens=[300, 1, 0, 1024], capacity=1024, block_size=16),
    "virtual H'=4 < H_kv=8, H=32 (32-row CTAs), pages of 64": dict(seqlen_q=1, heads=32, kv_heads=8,
                                                                  cache_heads=4, head_dim=128,
                                                                  seqlens=[1000, 33, 17], capacity=1024,
                                                                  block_size=64, virtual=True),
    "virtual H'=2 < H_kv=4, S_q=2, d=64, contiguous": dict(seqlen_q=2, heads=8, kv_heads=4, cache_heads=2,
                                                          head_dim=64, seqlens=[7, 300, 2], capacity=512,
                                                          virtual=True),
    "GQA 4, S_q=16 (2 row tiles), d=64, pages of 256": dict(seqlen_q=16, heads=8, kv_heads=2, cache_heads=2,
                                                           head_dim=64, seqlens=[10, 700, 256], capacity=768,
                                                           block_size=256),
    "virtual H'=3 < H_kv=6, S_q=3 (36 rows)": dict(seqlen_q=3, heads=12, kv_heads=6, cache_heads=3, head_dim=64,
                                                  seqlens=[100, 5], capacity=128, virtual=True),
    "S_q=4 longer than some sequences": dict(seqlen_q=4, heads=8, kv_heads=2, cache_heads=1, head_dim=64,
                                             seqlens=[2, 0, 3, 37], capacity=64, block_size=16, virtual=True),
    "window 20, virtual, S_q=16": dict(seqlen_q=16, heads=4, kv_heads=2, cache_heads=1, head_dim=64,
                                       seqlens=[40, 300], capacity=320, virtual=True, window_left=20),
    "window 0": dict(seqlen_q=2, heads=4, kv_heads=2, cache_heads=2, head_dim=128, seqlens=[9, 64], capacity=64,
                     window_left=0),
    "not causal, window 9, scale 0.3": dict(seqlen_q=3, heads=6, kv_heads=3, cache_heads=3, head_dim=64,
                                            seqlens=[50, 2], capacity=64, causal=False, scale=0.3,
                                            window_left=9),
    "MHA": dict(seqlen_q=1, heads=5, kv_heads=5, cache_heads=5, head_dim=64, seqlens=[77], capacity=128),
}


@pytest.mark.parametrize("case,dtype", [(case, torch.bfloat16) for case in DECODE_CASES] + [
    ("virtual H'=4 < H_kv=8, H=32 (32-row CTAs), pages of 64", torch.float16),
    ("GQA 4, S_q=16 (2 row tiles), d=64, pages of 256", torch.float16)])
def test_vhead_decode_kernels_match_reference(emulated, case, dtype):
    s = vhead_decode_sample(case, "cpu", dtype, **DECODE_CASES[case])
    actual, _ = decode(emulated, s)
    exact = reference.vhead_decode(**to_float64(s).kwargs)
    assert_within_2x_pytorch_error(actual, reference.vhead_decode(**s.kwargs), exact, s.name)


def test_split_kv_plans_are_exercised(emulated):
    _, plan = decode(emulated, vhead_decode_sample("splits", "cpu", torch.bfloat16,
                                                   **DECODE_CASES["GQA 4, S_q=1, pages of 16, 8 splits"]))
    assert plan["splits"] > 1 and plan["rows_per_cta"] == 16
    _, plan = decode(emulated, vhead_decode_sample(
        "wide", "cpu", torch.bfloat16, **DECODE_CASES["virtual H'=4 < H_kv=8, H=32 (32-row CTAs), pages of 64"]))
    assert plan["rows_per_cta"] == 32


@pytest.mark.parametrize("num_sms", [1, H100_SMS])
def test_bad_lengths_and_pages_answer_nan(emulated, num_sms):
    """Longer than the cache (sequence 0), page ids out of range (1, 2): NaN for exactly those."""
    s = vhead_decode_sample("bad", "cpu", torch.bfloat16, seqlen_q=2, heads=8, kv_heads=2, cache_heads=2,
                            head_dim=64, seqlens=[40, 50, 60, 33], capacity=1024, block_size=16, virtual=True)
    exact, baseline = reference.vhead_decode(**to_float64(s).kwargs), reference.vhead_decode(**s.kwargs)
    a = s.kwargs
    a["cache_seqlens"][0] = 1025
    a["block_table"][1, 2] = a["k_cache"].shape[0]
    a["block_table"][2, 3] = -7
    (out, lse), _ = decode(emulated, s, num_sms)
    for b in range(3):
        assert out[b].isnan().all() and lse[b].isnan().all(), b
    last = [t[3:] for t in (out, lse)], [t[3:] for t in baseline], [t[3:] for t in exact]
    assert_within_2x_pytorch_error(*last, "sequence 3")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_kv_cache_append_kernel_matches_reference(emulated, dtype):
    widest = 16 // torch.empty((), dtype=dtype).element_size()
    samples = list(kv_cache_append_samples("cpu", dtype)) + [
        kv_cache_append_sample(f"d=128, rope {rotary}, pages {block}", "cpu", dtype, new_rows=3, cache_heads=4,
                               head_dim=128, seqlens=[5, 0, 30], capacity=48, block_size=block, rotary_dim=rotary)
        for rotary in (128, 64, None) for block in (None, 16)]
    for s in samples:
        a = s.kwargs
        expected_k, expected_v = reference.kv_cache_append(**a)
        exact_k, _ = reference.kv_cache_append(**to_float64(s).kwargs)
        half = 0 if a["cos"] is None else a["cos"].shape[1]
        fits = all(n % widest == 0 for n in (a["k_cache"].shape[-1], a["v_cache"].shape[-1], half))
        for vec in (widest, 1) if fits else (1,):
            k_cache, v_cache = a["k_cache"].clone(), a["v_cache"].clone()
            emulated.kv_cache_append(a["k_new"], a["v_new"], k_cache, v_cache, a["cache_seqlens"], a["block_table"],
                                     a["cos"], a["sin"], a["pos"], vec)
            assert_bitwise_equal(v_cache, expected_v, f"{s.name}, vec {vec}")
            assert torch.equal(k_cache.isnan(), expected_k.isnan()), f"{s.name}, vec {vec}: rows written"
            written = ~expected_k.isnan()
            assert_within_2x_pytorch_error(k_cache[written], expected_k[written], exact_k[written],
                                           f"{s.name}, vec {vec}")
