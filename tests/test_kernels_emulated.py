"""The portable CUDA kernels' own source, run on the CPU (no GPU needed).

tests/emulated builds csrc/kernels/sm80's launchers and kernels (flash attention forward and
backward, mix_heads forward/dx/dw, vhead_decode split + combine, kv_cache_append) as host C++
against the real CuTe headers, with CuTe's mma.sync, ldmatrix, cp.async and UniversalCopy atoms
replaced by emulated instructions that follow the PTX ISA (tests/emulated/cuda_emu.h). Every
thread is a fiber; launches go through the bindings' own checks and Params code
(csrc/cuda/*_params.h) and the launchers' own grids. Results are compared with the float64
reference under the project's "at most 2x PyTorch's low-precision error" rule, under two
schedules (threads in order with cp.async landing at its wait; threads reversed with cp.async
landing at issue), and the emulator reports out-of-bounds, misaligned, unwritten and racy
accesses and deadlocks (each check is shown to fire by a planted bug). It cannot check timing,
the memory model's reorderings, the hardware's rounding of special functions or speed: the
CUDA tests on a GPU remain what makes the kernels "verified".

The Hopper sections run the mbarrier / named-barrier synchronisation under CUTLASS's own
PipelineAsync, TMA (tensor maps encoded by a stand-in for cuTensorMapEncodeTiled, swizzled box
loads completing on an mbarrier, clipped stores) under CuTe's own make_tma_copy, and the
emulated wgmma, stmatrix and setmaxnreg under CuTe's own GMMA atoms and TiledMMAs as the sm90
kernels build them, and show each protocol misuse reported; then the sm90 flash-attention
forward and backward themselves, launched by their own launchers (TMA descriptors, grid, shared
memory size), against the float64 reference like the portable ones.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from baselines import flash_backward_in_pytorch
from samples import (
    _mix_heads,
    flash_attn_sample,
    kv_cache_append_sample,
    kv_cache_append_samples,
    rows_without_keys,
    to_float64,
    vhead_decode_sample,
)
from tolerances import assert_bitwise_equal, assert_within_2x_pytorch_error

from headmix import reference

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
H100_SMS = 132

# name: (reverse thread order, cp.async lands at issue)
SCHEDULES = {"in order, late cp.async": (False, False), "reversed, early cp.async": (True, True)}


def cuda_includes():
    """The CUDA headers (host side of cuda_bf16.h / cuda_fp16.h, vector types, libcu++), or None."""
    candidates = [os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    if nvcc := shutil.which("nvcc"):
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    for home in filter(None, candidates):
        include = Path(home) / "include"
        if (include / "cuda_bf16.h").exists():
            return [include] + [include / "cccl"] * (include / "cccl").is_dir()
    return None


@pytest.fixture(scope="module")
def emulated():
    includes = cuda_includes()
    if includes is None or shutil.which("c++") is None:
        pytest.skip("needs a C++ compiler and the CUDA headers (CUDA_HOME or nvcc)")
    import cutlass_library
    from torch.utils.cpp_extension import load

    cutlass = Path(cutlass_library.__file__).parent / "source" / "include"
    here = ROOT / "tests" / "emulated"
    sources = ["module.cpp", "planted_bugs.cpp", "flash_fwd.cpp", "flash_bwd.cpp", "flash_fwd_sm90.cpp",
               "flash_bwd_sm90.cpp", "mix_heads.cpp", "decode.cpp", "append.cpp", "sync_sm90.cpp", "tma_sm90.cpp",
               "tensor_map.cpp", "wgmma_sm90.cpp"]
    # The emulated atoms (here/include) come before CuTe's own headers, which they include_next.
    module = load(name="headmix_emulated_kernels", sources=[str(here / s) for s in sources] +
                  [str(ROOT / "csrc" / "checks.cpp")],
                  extra_include_paths=[str(here / "include"), str(here), str(ROOT / "csrc"),
                                       str(ROOT / "csrc" / "kernels"), str(cutlass)] + [str(i) for i in includes],
                  extra_cflags=["-O1", "-std=c++20", "-U_FORTIFY_SOURCE", "-Wno-attributes"])
    yield module
    module.set_schedule(False, False)


@pytest.fixture(params=list(SCHEDULES))
def schedule(request, emulated):
    emulated.set_schedule(*SCHEDULES[request.param])
    yield request.param
    emulated.set_schedule(False, False)


def under_every_schedule(emulated, run):
    """run() under each schedule; the results must be bitwise equal (a missing barrier or
    cp.async wait that the emulator cannot see directly changes them). Returns the first."""
    results = []
    for name, options in SCHEDULES.items():
        emulated.set_schedule(*options)
        results.append((name, run()))
    emulated.set_schedule(False, False)
    (first_name, first), *others = results
    for name, other in others:
        for a, b in zip(first, other, strict=True):
            assert_bitwise_equal(a, b, f"results differ between schedules '{first_name}' and '{name}'")
    return first


# ---------------------------------------------------------------- flash attention

# name: (batch, S_q, S_k, H, H_kv, causal, window). The forward's tiles are 128 query rows x 64
# keys, the backward's 64 x 64: lengths straddle both, and the bands leave rows without keys.
FLASH_CASES = {
    "causal, S_q = S_k = 130": (1, 130, 130, 2, 2, True, (-1, -1)),
    "full, GQA 4:1, S_q = 70 < S_k = 150": (1, 70, 150, 4, 1, False, (-1, -1)),
    "causal, MQA (3:1), S_q = 150 > S_k = 40 (empty rows)": (1, 150, 40, 3, 1, True, (-1, -1)),
    "window (20, 5), S_q = S_k = 100, batch 2": (2, 100, 100, 2, 2, False, (20, 5)),
    "causal + window left 0": (1, 65, 65, 2, 1, True, (0, -1)),
    "causal, one query row, S_k = 77": (1, 1, 77, 4, 1, True, (-1, -1)),
    "window right only 3, S_q = 40 < S_k = 90": (1, 40, 90, 2, 2, False, (-1, 3)),
}
FLASH_GRID = [(case, torch.bfloat16, d) for case in FLASH_CASES for d in (64, 128)] + [
    (case, torch.float16, 64) for case in list(FLASH_CASES)[:3]]


def flash_sample(case, dtype, head_dim, cases=FLASH_CASES):
    batch, seqlen_q, seqlen_k, heads, kv_heads, causal, window = cases[case]
    return flash_attn_sample(case, "cpu", dtype, batch=batch, seqlen_q=seqlen_q, seqlen_k=seqlen_k, heads=heads,
                             kv_heads=kv_heads, head_dim=head_dim, causal=causal, window=window)


def flash_fwd(emulated, s):
    return tuple(emulated.flash_attn_fwd(*s.args))


@pytest.mark.parametrize("case,dtype,head_dim", FLASH_GRID)
def test_flash_forward_matches_reference(emulated, case, dtype, head_dim):
    s = flash_sample(case, dtype, head_dim)
    actual = under_every_schedule(emulated, lambda: flash_fwd(emulated, s))
    exact = reference.flash_attn(**to_float64(s).kwargs)
    assert_within_2x_pytorch_error(actual, reference.flash_attn(**s.kwargs), exact, f"{case}, d={head_dim}")


def flash_bwd(backward, s, out, dout, lse, dlse, deterministic):
    a = s.kwargs
    return tuple(backward(dout, a["q"], a["k"], a["v"], out, lse, dlse, a["scale"], a["causal"], a["window_left"],
                          a["window_right"], deterministic))


def check_flash_backward(emulated, backward, s, head_dim, deterministic):
    """backward (an emulated flash_attn_bwd) against the float64 gradients, out and lse from the
    emulated portable forward."""
    case = s.name
    out, lse = flash_fwd(emulated, s)
    dout = torch.randn_like(out)
    dlse = torch.randn_like(lse).masked_fill(lse.isinf(), 0.0)
    if deterministic:
        actual = under_every_schedule(emulated, lambda: flash_bwd(backward, s, out, dout, lse, dlse, True))
    else:  # fp32 atomics: the order of the additions, hence the bits of dq, depends on the schedule
        actual = flash_bwd(backward, s, out, dout, lse, dlse, False)
    empty = rows_without_keys(s)
    if empty.any():  # the float64 reference's gradient is NaN there; the kernels give dq = 0
        dq = actual[0]
        assert torch.equal(dq[:, empty], torch.zeros_like(dq[:, empty])), "dq of rows without keys"
        assert all(g.isfinite().all() for g in actual), "gradients must be finite"
        s.kwargs["q"], out, dout, lse, dlse = (t[:, ~empty] if t.dim() == 4 else t[:, :, ~empty]
                                               for t in (s.kwargs["q"], out, dout, lse, dlse))
        actual = (dq[:, ~empty],) + actual[1:]
    exact_s = to_float64(s)
    q, k, v = (exact_s.kwargs[n].requires_grad_() for n in "qkv")
    exact_out, exact_lse = reference.flash_attn(**exact_s.kwargs)
    exact = torch.autograd.grad((exact_out, exact_lse), (q, k, v), (dout.double(), dlse.double()))
    baseline = flash_backward_in_pytorch(s, out, dout, dlse)
    assert_within_2x_pytorch_error(actual, baseline, exact, f"{case}, d={head_dim} gradients")


@pytest.mark.parametrize("deterministic", [True, False])
@pytest.mark.parametrize("case,dtype,head_dim", FLASH_GRID)
def test_flash_backward_matches_reference(emulated, case, dtype, head_dim, deterministic):
    check_flash_backward(emulated, emulated.flash_attn_bwd, flash_sample(case, dtype, head_dim), head_dim,
                         deterministic)


# ---------------------------------------------------------------- Hopper flash attention

# The sm90 forward's tiles are 128 query rows x 128 keys (two K/V stages), the backward's 128
# keys x 64 query rows (two Q/dO stages): the cases above, plus lengths of three key tiles, so
# the pipelines wrap around their stages and a window starts the band past key tile 0.
FLASH_SM90_CASES = {
    **FLASH_CASES,
    "causal, S_q = S_k = 300 (3 key tiles)": (1, 300, 300, 2, 1, True, (-1, -1)),
    "window (100, 0), S_q = S_k = 300": (1, 300, 300, 2, 2, False, (100, 0)),
}
FLASH_SM90_GRID = [(case, dtype, d) for case in FLASH_SM90_CASES for dtype in (torch.bfloat16, torch.float16)
                   for d in (64, 128)]
# The backward costs about four times the forward on the emulator: fp16 on the first cases only.
FLASH_SM90_BWD_GRID = [(case, torch.bfloat16, d) for case in FLASH_SM90_CASES for d in (64, 128)] + [
    (case, torch.float16, d) for case in list(FLASH_SM90_CASES)[:3] for d in (64, 128)]


@pytest.mark.parametrize("case,dtype,head_dim", FLASH_SM90_GRID)
def test_flash_forward_sm90_matches_reference(emulated, case, dtype, head_dim):
    s = flash_sample(case, dtype, head_dim, FLASH_SM90_CASES)
    actual = under_every_schedule(emulated, lambda: tuple(emulated.flash_attn_fwd_sm90(*s.args)))
    exact = reference.flash_attn(**to_float64(s).kwargs)
    assert_within_2x_pytorch_error(actual, reference.flash_attn(**s.kwargs), exact, f"{case}, d={head_dim}")


@pytest.mark.parametrize("deterministic", [True, False])
@pytest.mark.parametrize("case,dtype,head_dim", FLASH_SM90_BWD_GRID)
def test_flash_backward_sm90_matches_reference(emulated, case, dtype, head_dim, deterministic):
    s = flash_sample(case, dtype, head_dim, FLASH_SM90_CASES)
    check_flash_backward(emulated, emulated.flash_attn_bwd_sm90, s, head_dim, deterministic)


# ---------------------------------------------------------------- mix_heads

MIX_CASES = {
    "P=1, no rope, H 4 -> 4": dict(batch=2, tokens=3, heads_in=4, heads_out=4, head_dim=64),
    "P=2, full rope, H 4 -> 8": dict(batch=2, tokens=3, heads_in=4, heads_out=8, head_dim=64, pseudo=2,
                                     rotary_dim=64),
    "P=4, partial rope 32 of 64, pos_offset 5": dict(batch=1, tokens=5, heads_in=4, heads_out=16, head_dim=64,
                                                     pseudo=4, rotary_dim=32, pos_offset=5),
    "collapse P*H=32 -> 8 (H_in 32)": dict(batch=1, tokens=4, heads_in=32, heads_out=8, head_dim=128),
    "odd sizes: d=6, rope 2, H 3 -> 4 (scalar path)": dict(batch=2, tokens=2, heads_in=3, heads_out=4, head_dim=6,
                                                           pseudo=2, rotary_dim=2, pos_offset=1),
    "strided x from packed qkv, P=2": dict(batch=2, tokens=3, heads_in=2, heads_out=4, head_dim=64, pseudo=2,
                                           rotary_dim=64, packed=True),
}
MIX_GRID = [(case, torch.bfloat16) for case in MIX_CASES] + [(case, dtype) for dtype in (torch.float16, torch.float32)
                                                             for case in list(MIX_CASES)[1:3]]


@pytest.mark.parametrize("case,dtype", MIX_GRID)
def test_mix_heads_forward_matches_reference(emulated, case, dtype):
    s = _mix_heads(case, "cpu", dtype, **MIX_CASES[case])
    actual = under_every_schedule(emulated, lambda: (emulated.mix_heads(*s.args),))
    exact = reference.mix_heads(**to_float64(s).kwargs)
    assert_within_2x_pytorch_error(actual[0], reference.mix_heads(**s.kwargs), exact, case)


@pytest.mark.parametrize("num_sms", [1, H100_SMS])
@pytest.mark.parametrize("case,dtype", MIX_GRID)
def test_mix_heads_backward_matches_reference(emulated, case, dtype, num_sms):
    s = _mix_heads(case, "cpu", dtype, **MIX_CASES[case])
    a = s.kwargs
    y = reference.mix_heads(**a)
    grad = torch.randn_like(y)
    dx, dw, chunks = under_every_schedule(emulated, lambda: tuple(emulated.mix_heads_backward(
        grad, a["x"], a["w"], a["pseudo"], a["cos"], a["sin"], a["pos_offset"], num_sms)))
    assert num_sms == 1 or int(chunks) > 1, "the two-stage dw must run with several chunks"

    def grads(sample, g):
        x, w = sample.kwargs["x"].detach().requires_grad_(), sample.kwargs["w"].detach().requires_grad_()
        out = reference.mix_heads(**{**sample.kwargs, "x": x, "w": w})
        return torch.autograd.grad(out, (x, w), g)

    exact = grads(to_float64(s), grad.double())
    baseline = grads(s, grad)
    # The kernels accumulate dw in float32 and return it as float32; compare in w's dtype.
    assert_within_2x_pytorch_error((dx, dw.to(a["w"].dtype)), baseline, exact, f"{case} gradients")


# ---------------------------------------------------------------- decode and append


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
def test_vhead_decode_kernels_match_reference(emulated, schedule, case, dtype):
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
def test_kv_cache_append_kernel_matches_reference(emulated, schedule, dtype):
    """The launcher picks 16-byte vectors where sizes allow (d = 128, rotary 128/64) and single
    elements otherwise (the small samples' odd sizes)."""
    samples = list(kv_cache_append_samples("cpu", dtype)) + [
        kv_cache_append_sample(f"d=128, rope {rotary}, pages {block}", "cpu", dtype, new_rows=3, cache_heads=4,
                               head_dim=128, seqlens=[5, 0, 30], capacity=48, block_size=block, rotary_dim=rotary)
        for rotary in (128, 64, None) for block in (None, 16)]
    for s in samples:
        a = s.kwargs
        expected_k, expected_v = reference.kv_cache_append(**a)
        exact_k, _ = reference.kv_cache_append(**to_float64(s).kwargs)
        k_cache, v_cache = a["k_cache"].clone(), a["v_cache"].clone()
        emulated.kv_cache_append(a["k_new"], a["v_new"], k_cache, v_cache, a["cache_seqlens"], a["block_table"],
                                 a["cos"], a["sin"], a["pos"])
        assert_bitwise_equal(v_cache, expected_v, s.name)
        assert torch.equal(k_cache.isnan(), expected_k.isnan()), f"{s.name}: rows written"
        written = ~expected_k.isnan()
        assert_within_2x_pytorch_error(k_cache[written], expected_k[written], exact_k[written], s.name)


# ---------------------------------------------------------------- the emulator's own checks

# planted::Bug in tests/emulated/planted_bugs.cpp -> the error the emulator must report.
PLANTED_BUGS = {
    0: "outside the launch's 1024 bytes of dynamic shared memory",
    1: "cp.async source of 16 bytes outside every global buffer",
    2: "cp.async source at an address not aligned to 16 bytes",
    3: "ldmatrix row reads shared offset .*, which no thread wrote",
    4: "shared-memory race: UniversalCopy source .* and a write by thread 0 with no barrier",
    5: "ldmatrix row reads the destination of its own cp.async before the wait",
    # Whichever side the schedule runs first is the one reported.
    6: r"shared-memory race: (cp.async issue .* and a read by thread|UniversalCopy source .* and a cp.async still "
       r"in flight by thread) \d+ with no barrier",
    7: "UniversalCopy destination writes into read-only in",
    8: "deadlock: every live thread waits; warp 0: 0 at __syncthreads, 31 at a warp collective or __syncwarp, "
       "1 exited;",
}
PLAIN_RACE, PLAIN_MISSING_WAIT, CORRECT = 9, 10, 11


@pytest.mark.parametrize("bug", PLANTED_BUGS)
def test_planted_bug_is_reported(emulated, bug):
    with pytest.raises(RuntimeError, match=PLANTED_BUGS[bug]):
        emulated.planted_bug(bug, torch.randn(64))


@pytest.mark.parametrize("bug", [PLAIN_RACE, PLAIN_MISSING_WAIT])
def test_schedules_expose_what_the_checks_cannot_see(emulated, bug):
    """Plain C++ loads and stores are not instrumented; a missing barrier or wait between them
    changes the result between schedules, which every kernel test compares bitwise."""
    data = torch.randn(64)
    with pytest.raises(AssertionError, match="results differ between schedules"):
        under_every_schedule(emulated, lambda: (emulated.planted_bug(bug, data),))


def test_correctly_synchronised_traffic_passes(emulated):
    data = torch.randn(64)
    (out,) = under_every_schedule(emulated, lambda: (emulated.planted_bug(CORRECT, data),))
    assert torch.equal(out, data)


# ---------------------------------------------------------------- Hopper synchronisation

# sync_sm90::Scenario in tests/emulated/sync_sm90.cpp.
PIPELINE, WRONG_PARITY, NO_RELEASE, NAMED_BARRIER = 0, 1, 2, 8
SYNC_MISUSES = {
    3: r"second init of the mbarrier at shared offset \d+",
    4: r"arrive on the mbarrier at shared offset \d+ before its init",
    5: r"complete_tx of 32 bytes exceeds what the mbarrier at shared offset \d+ \(phase 0, 0 of 1 arrivals and -16 "
       r"transaction bytes outstanding\) was told to expect",
    6: r"bar.sync on named barrier 9 counts (64|96) threads while others at it count (96|64)",
    7: r"deadlock: every live thread waits; warp 0: 0 at __syncthreads, 0 at a warp collective or __syncwarp, "
       r"32 exited; warp 1: .* 32 at a named barrier or mbarrier \(thread 32 waits at named barrier 9 for 96 threads\)",
}


def test_cutlass_pipeline_async_moves_every_tile(emulated):
    """CUTLASS's own PipelineAsync (producer warp -> two consumer warps, 2 stages, 5 tiles) on the
    emulated mbarriers delivers every tile once, in order, under both schedules."""
    tiles = torch.randn(5, 64)
    (out,) = under_every_schedule(emulated, lambda: (emulated.sync_sm90(PIPELINE, tiles),))
    expected = (torch.arange(1, 6, dtype=torch.float32)[:, None] * tiles).sum(0)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_wrong_parity_is_reported(emulated):
    """Waiting for the other parity returns at once (that phase counts as complete), so the
    consumers run ahead of the producer and read a stage it has not filled: reported at that
    read (a race with the producer's store, or a read of memory nobody wrote)."""
    with pytest.raises(RuntimeError, match=r"stage load (reads shared offset \d+, which no thread wrote|at shared offset "
                                           r"\d+ by thread \d+ .* and a write by thread \d+ with no barrier)"):
        emulated.sync_sm90(WRONG_PARITY, torch.randn(5, 64))


def test_a_stage_never_released_is_reported_as_a_deadlock(emulated):
    with pytest.raises(RuntimeError, match=r"deadlock: .* at a named barrier or mbarrier \(thread 0 waits for parity 0 "
                                           r"of the mbarrier at shared offset \d+ \(phase 0, 64 of 64 arrivals"):
        emulated.sync_sm90(NO_RELEASE, torch.randn(5, 64))


@pytest.mark.parametrize("scenario", SYNC_MISUSES)
def test_barrier_misuse_is_reported(emulated, scenario):
    with pytest.raises(RuntimeError, match=SYNC_MISUSES[scenario]):
        emulated.sync_sm90(scenario, torch.randn(1, 64))


def test_named_barrier_orders_its_warps(emulated):
    (out,) = under_every_schedule(emulated, lambda: (emulated.sync_sm90(NAMED_BARRIER, torch.randn(1, 64)),))
    assert torch.equal(out, torch.ones(64))


# Races that only the barriers' memory order can tell from correct code (the race check's vector
# clocks): scenario -> the error. Whichever side the schedule runs first is the one reported.
SYNC_RACES = {
    # Before its wait, a consumer reads either a stage nobody wrote yet or the producer's store.
    9: r"(stage load reads shared offset \d+, which no thread wrote|shared-memory race: stage (load|store) at shared "
       r"offset \d+ by thread \d+ .* and a (write|read) by thread \d+ with no barrier)",
    # Released before it is read, a stage may be refilled under the consumer's read.
    10: r"shared-memory race: stage (store at shared offset \d+ by thread \d+ .* and a read|load at shared offset \d+ by "
        r"thread \d+ .* and a write) by thread \d+ with no barrier",
    # Warp 0 takes no part in the named barrier, so its store is not ordered before the loads
    # (run before it, they read memory nobody wrote).
    12: r"(shared-memory race: stage load at shared offset \d+ by thread \d+ .* and a write by thread 0 with no "
        r"barrier|stage load reads shared offset \d+, which no thread wrote)",
}
NAMED_BARRIER_SHARED = 11
PROXY_FENCED, PROXY_UNFENCED, PROXY_FENCE_TOO_EARLY = 13, 14, 15


@pytest.mark.parametrize("scenario", SYNC_RACES)
def test_race_the_barriers_do_not_order_is_reported(emulated, scenario):
    try:
        for options in SCHEDULES.values():
            emulated.set_schedule(*options)
            with pytest.raises(RuntimeError, match=SYNC_RACES[scenario]):
                emulated.sync_sm90(scenario, torch.randn(5, 64))
    finally:
        emulated.set_schedule(False, False)


def test_named_barrier_orders_shared_memory(emulated):
    """Thread 32's store is ordered before every consumer's load by the named barrier alone (no
    __syncthreads), and the pipeline test above passes with its tiles checked the same way."""
    (out,) = under_every_schedule(emulated, lambda: (emulated.sync_sm90(NAMED_BARRIER_SHARED, torch.randn(1, 64)),))
    assert torch.equal(out, torch.ones(64))


def test_async_proxy_read_after_fenced_plain_writes_passes(emulated):
    """Plain stores, fence.proxy.async, a named barrier, then an async-proxy read (as a TMA
    store of an epilogue tile): the order the sm90 kernels use."""
    data = torch.randn(1, 64)
    (out,) = under_every_schedule(emulated, lambda: (emulated.sync_sm90(PROXY_FENCED, data),))
    assert torch.equal(out, data[0])


@pytest.mark.parametrize("scenario", [PROXY_UNFENCED, PROXY_FENCE_TOO_EARLY])
def test_async_proxy_read_without_fence_is_reported(emulated, scenario):
    with pytest.raises(RuntimeError, match=r"TMA store source reads shared offset \d+ through the async proxy after a "
                                           r"plain write by thread \d+ with no fence.proxy.async between"):
        emulated.sync_sm90(scenario, torch.randn(1, 64))


# ---------------------------------------------------------------- Hopper TMA

# tma_sm90::Scenario in tests/emulated/tma_sm90.cpp.
(ROUND_TRIP, EXPECT_TOO_FEW, EXPECT_TOO_MANY, WAIT_BEFORE_ISSUE, NEVER_ISSUED, SYNC_INSTEAD_OF_WAIT,
 OVERWRITE_BEFORE_STORE_WAIT, UNCHECKED_ENCODE, NEVER_WAITED, STORE_NEVER_WAITED, MISALIGNED_TILE,
 STORE_UNFENCED_WRITES) = range(12)
TMA_ROWS = 64  # rows of a CTA's tile


def tma_operand(batch, seqlen, heads, head_dim):
    """x [B, S, H, d] and out, a view of the first S rows of a NaN buffer with 8 rows more, so a
    store that is not clipped at S shows."""
    x = torch.randn(batch, seqlen, heads, head_dim).bfloat16()
    padded = torch.full((batch, seqlen + 8, heads, head_dim), float("nan"), dtype=torch.bfloat16)
    return x, padded, padded[:, :seqlen]


def zero_padded_tiles(x):
    """[CTAs, 64, d]: tile (b, h, m) holds rows m*64 .. m*64+63 of x[b, :, h], zeros past S;
    CTAs in grid order (tile fastest, then head, batch)."""
    batch, seqlen, heads, head_dim = x.shape
    tiles = -(-seqlen // TMA_ROWS)
    rows = torch.zeros(batch, tiles * TMA_ROWS, heads, head_dim, dtype=x.dtype)
    rows[:, :seqlen] = x
    return rows.view(batch, tiles, TMA_ROWS, heads, head_dim).permute(0, 3, 1, 2, 4).reshape(-1, TMA_ROWS, head_dim)


def swizzled_tiles(x):
    """What each CTA's shared tile must hold, byte for byte, from the definitions alone: the
    64-column boxes of 64 rows x 128 bytes one after the other, each row's 16-byte chunks
    permuted by the 128-byte swizzle (byte address bits 4-6 ^= bits 7-9). As int16 words."""
    head_dim = x.shape[-1]
    row = torch.arange(TMA_ROWS)[:, None]
    col = torch.arange(head_dim)[None, :]
    address = 2 * ((col // 64) * TMA_ROWS * 64 + row * 64 + col % 64)
    address = address ^ (((address >> 7) & 7) << 4)
    values = zero_padded_tiles(x).reshape(-1, TMA_ROWS * head_dim)
    image = torch.zeros(values.shape[0], TMA_ROWS * head_dim, dtype=torch.int16)
    image[:, (address // 2).flatten()] = values.view(torch.int16)
    return image


def tma_round_trip(emulated, scenario, x, out):
    """(shared tile bytes as int16 words, the tile through SmemTile, out after the store)."""
    image, values = emulated.tma_sm90(scenario, x, out)
    return image.view(torch.int16), values, out.clone()


@pytest.mark.parametrize("head_dim", [64, 128])
def test_tma_round_trip_places_swizzled_boxes_and_clips_the_tail(emulated, head_dim):
    """make_tma_copy + tma_partition as the sm90 forward uses them: the loaded tiles sit in shared
    memory exactly where the 128-byte swizzle puts them, which is where CuTe's SmemTile layout
    (the kernels' and wgmma's view) looks for them; rows past S read as zero; the store writes
    every row of out and none past S. S = 100: the second tile has 36 rows."""
    x, padded, out = tma_operand(2, 100, 3, head_dim)
    image, values, stored = under_every_schedule(emulated, lambda: tma_round_trip(emulated, ROUND_TRIP, x, out))
    assert torch.equal(image, swizzled_tiles(x)), "shared-memory bytes differ from the swizzled placement"
    assert torch.equal(values.view(torch.int16), zero_padded_tiles(x).view(torch.int16)), "tile through SmemTile"
    assert torch.equal(stored.view(torch.int16), x.view(torch.int16)), "stored rows"
    assert padded[:, 100:].isnan().all(), "the store wrote rows past S"


# scenario -> the report.
TMA_MISUSES = {
    EXPECT_TOO_FEW: r"complete_tx of 8192 bytes exceeds what the mbarrier at shared offset 16384 \(phase 0, 0 of 1 "
                    r"arrivals and -128 transaction bytes outstanding\) was told to expect .*: the whole box of a TMA "
                    r"load \(8192 bytes, zero fill included\)",
    EXPECT_TOO_MANY: r"deadlock: .*\(thread 0 waits for parity 0 of the mbarrier at shared offset 16384 \(phase 0, 0 "
                     r"of 1 arrivals and 128 transaction bytes outstanding\)\)",
    WAIT_BEFORE_ISSUE: r"deadlock: .*\(thread 0 waits for parity 0 of the mbarrier at shared offset 16384 \(phase 0, "
                       r"1 of 1 arrivals and 0 transaction bytes outstanding\)\)",
    NEVER_ISSUED: r"deadlock: .*\(thread 0 waits for parity 0 of the mbarrier at shared offset 16384 \(phase 0, 1 of "
                  r"1 arrivals and 0 transaction bytes outstanding\)\)",
    STORE_NEVER_WAITED: "thread 0 exited with TMA stores whose shared-memory reads it never waited for",
    MISALIGNED_TILE: "cp.async.bulk.tensor load with a shared-memory box at offset 64, not 128-byte aligned",
    STORE_UNFENCED_WRITES: r"cp.async.bulk.tensor store source reads shared offset \d+ through the async proxy after "
                           r"a plain write by thread \d+ with no fence.proxy.async between",
}


@pytest.mark.parametrize("scenario", TMA_MISUSES)
def test_tma_misuse_is_reported(emulated, schedule, scenario):
    x, _, out = tma_operand(1, 70, 2, 128)
    with pytest.raises(RuntimeError, match=TMA_MISUSES[scenario]):
        emulated.tma_sm90(scenario, x, out)


def test_tma_load_never_waited_for_is_reported(emulated):
    """Under the late schedule a load lands only when a thread needs it; one nobody waits for never does."""
    x, _, out = tma_operand(1, 70, 2, 128)
    with pytest.raises(RuntimeError, match="the CTA exited with TMA loads completing on the mbarrier at shared offset "
                                           "16384 that no thread waited for"):
        emulated.tma_sm90(NEVER_WAITED, x, out)


@pytest.mark.parametrize("scenario", [SYNC_INSTEAD_OF_WAIT, OVERWRITE_BEFORE_STORE_WAIT])
def test_tma_missing_waits_change_results_between_schedules(emulated, scenario):
    """The tile read after __syncthreads instead of the mbarrier wait; the tile overwritten before
    tma_store_wait: the data moves at issue under one schedule and as late as allowed under the other."""
    x, _, out = tma_operand(1, 70, 2, 128)
    with pytest.raises(AssertionError, match="results differ between schedules"):
        under_every_schedule(emulated, lambda: tma_round_trip(emulated, scenario, x, out))


# violation in tma_encode_violation (tests/emulated/tma_sm90.cpp) -> the stand-in's reason.
ENCODE_VIOLATIONS = {
    1: "tensorMap must be 64-byte aligned",
    2: "tensorRank 0 outside 1..5",
    3: "tensorRank 6 outside 1..5",
    4: "globalAddress must be 16-byte aligned",
    5: r"globalDim\[1\] = 0 outside 1..2\^32",
    6: r"globalDim\[1\] = 4294967297 outside 1..2\^32",
    7: r"globalStrides\[0\] = 200 bytes must be a multiple of 16 below 2\^40",
    8: r"globalStrides\[0\] = 1099511627776 bytes must be a multiple of 16 below 2\^40",
    9: r"boxDim\[1\] = 257 outside 1..256",
    10: "the box's inner dimension of 256 bytes exceeds the 128-byte swizzle span",
    11: r"boxDim\[0\] x element size = 8 bytes must be a multiple of 16",
    12: r"elementStrides\[1\] = 9 outside 1..8",
    13: r"elementStrides\[1\] = 0 outside 1..8",
    14: "globalAddress must be 32-byte aligned",
    15: "interleave 32B requires swizzle 32B",
    16: "tensorRank must be at least 3 with interleave",
    17: "oobFill NAN_REQUEST_ZERO_FMA needs a floating-point tensorDataType",
}
CUDA_ERROR_INVALID_VALUE = 1


def test_tensor_map_encode_accepts_a_valid_map(emulated):
    assert tuple(emulated.tma_encode_violation(0)) == (0, "")


@pytest.mark.parametrize("violation", ENCODE_VIOLATIONS)
def test_tensor_map_encode_refuses_what_the_driver_refuses(emulated, violation):
    result, reason = emulated.tma_encode_violation(violation)
    assert result == CUDA_ERROR_INVALID_VALUE
    assert re.fullmatch("cuTensorMapEncodeTiled: " + ENCODE_VIOLATIONS[violation], reason), reason


def misaligned_rows(seqlen=70, heads=2, head_dim=64):
    """x whose rows are H*d + 1 elements apart: a row stride of 258 bytes, not a multiple of 16."""
    storage = torch.randn(1, seqlen, heads * head_dim + 1).bfloat16()
    x = storage[..., :heads * head_dim].unflatten(-1, (heads, head_dim))
    return x, torch.full_like(x, float("nan"))


def test_tma_operand_the_driver_would_refuse_is_a_launcher_error(emulated):
    """sm90/launch.h's encodable() turns it into cudaErrorInvalidValue (1) before any descriptor is built."""
    x, out = misaligned_rows()
    with pytest.raises(RuntimeError, match="tma round trip: the launcher returned error 1"):
        emulated.tma_sm90(ROUND_TRIP, x, out)


def test_unencoded_tensor_map_is_reported_when_used(emulated):
    """Without the launcher's check the stand-in refuses the encode, CuTe prints the error and goes on
    with a zeroed descriptor (as a -DNDEBUG GPU build does), and the kernel's first use reports it."""
    x, out = misaligned_rows()
    with pytest.raises(RuntimeError, match=r"prefetch.tensormap with a tensor map that no successful "
                                           r"cuTensorMapEncodeTiled wrote \(was the encode's error ignored\?\)"):
        emulated.tma_sm90(UNCHECKED_ENCODE, x, out)


def strided_bf16(shape, strides, offset=0):
    """A bf16 tensor of fresh random values with exactly these element strides and storage offset."""
    size = offset + 1 + sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
    return torch.randn(size).bfloat16().as_strided(shape, strides, offset)


# name: (shape [B, S, H, d], element strides, storage offset, whether the driver encodes it).
# Strides of size-1 dims are never stepped along: TmaOperand (sm90/launch.h) gives them the
# packed stride, so whatever PyTorch left there must not matter.
TMA_OPERANDS = {
    "contiguous": ((2, 70, 2, 64), (8960, 128, 64, 1), 0, True),
    "heads padded to 72 (144-byte stride)": ((2, 70, 2, 64), (10080, 144, 72, 1), 0, True),
    "batches 16 bytes apart more than packed": ((2, 70, 2, 64), (8968, 128, 64, 1), 0, True),
    "one head, head stride 7": ((2, 70, 1, 64), (4480, 64, 7, 1), 0, True),
    "one batch, batch stride 3": ((1, 70, 2, 64), (3, 128, 64, 1), 0, True),
    "one row, row stride 5": ((2, 1, 2, 64), (128, 5, 64, 1), 0, True),
    "row stride 129 (258 bytes)": ((2, 70, 2, 64), (9030, 129, 64, 1), 0, False),
    "head stride 65 (130 bytes)": ((2, 70, 2, 64), (9100, 130, 65, 1), 0, False),
    "batch stride 8961": ((2, 70, 2, 64), (8961, 128, 64, 1), 0, False),
    "address 2 bytes past a 16-byte boundary": ((2, 70, 2, 64), (8960, 128, 64, 1), 1, False),
}


@pytest.mark.parametrize("case", TMA_OPERANDS)
def test_launcher_check_refuses_exactly_what_the_driver_refuses(emulated, case):
    """TmaOperand::encodable() against the cuTensorMapEncodeTiled stand-in, on the tensors the
    bindings may pass: what it accepts encodes and round-trips, what it refuses is a launcher
    error, and encoding it anyway is refused by the driver (reported at the descriptor's first use)."""
    shape, strides, offset, encodable = TMA_OPERANDS[case]
    x = strided_bf16(shape, strides, offset)
    out = torch.full(shape, float("nan"), dtype=torch.bfloat16)
    if encodable:
        emulated.tma_sm90(ROUND_TRIP, x, out)
        assert torch.equal(out.view(torch.int16), x.view(torch.int16))
        return
    with pytest.raises(RuntimeError, match="tma round trip: the launcher returned error 1"):
        emulated.tma_sm90(ROUND_TRIP, x, out)
    with pytest.raises(RuntimeError, match="prefetch.tensormap with a tensor map that no successful"):
        emulated.tma_sm90(UNCHECKED_ENCODE, x, out)


# ---------------------------------------------------------------- Hopper wgmma, stmatrix, setmaxnreg

# wgmma_sm90::Scenario and RegisterScenario in tests/emulated/wgmma_sm90.cpp.
CORRECT_WGMMA, READ_BEFORE_WAIT, OVERWRITE_STAGE, WARP_SKIPS_WGMMA, WARP_EXITS, UNEMULATED_ATOM, OVERWRITE_A = range(7)
KERNEL_SPLIT, OVERDRAW, NEVER_GRANTED, BAD_COUNT = range(4)
WGMMA_CASES = ["SS bf16, B K-major, 128B swizzle", "SS f16, B MN-major, 128B swizzle",
               "RS bf16, B MN-major, 128B swizzle", "RS f16, B K-major, N = 128, 128B swizzle",
               "SS bf16, two warpgroups in M, 128B swizzle", "SS bf16, B K-major, 64B swizzle",
               "SS f16, B MN-major, 64B swizzle", "SS bf16, B K-major, 32B swizzle",
               "SS bf16, B MN-major, 32B swizzle", "SS bf16, B K-major, no swizzle",
               "SS f16, B MN-major, no swizzle", "SS bf16, A and B MN-major, the dQ wgmma at d = 64"]


def wgmma_operands(emulated, case, seed=0):
    """Random A [M, K] and B [N, K] of the case's shape and type (wgmma_sm90.cpp says which)."""
    (m, n, k, dtype), = [shape for name, *shape in emulated.wgmma_cases() if name == case]
    g = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, dtype)
    return torch.randn(m, k, generator=g).to(dtype), torch.randn(n, k, generator=g).to(dtype)


def run_wgmma(emulated, case, scenario=CORRECT_WGMMA):
    a, b = wgmma_operands(emulated, case)
    return emulated.wgmma_gemm(WGMMA_CASES.index(case), scenario, a, b)


def test_wgmma_cases_match_the_module(emulated):
    assert [name for name, *_ in emulated.wgmma_cases()] == WGMMA_CASES


@pytest.mark.parametrize("case", WGMMA_CASES)
def test_wgmma_matches_float64_matmul(emulated, case):
    """CuTe's GMMA atoms, TiledMMAs and descriptors as the sm90 kernels build them, on the
    emulated wgmma (descriptors and fragments decoded per the PTX ISA): C = 2 A B^T (a second
    batch accumulates onto the first's retired result), read through CuTe's accumulator
    partition, agrees with a float64 matmul within twice the error of PyTorch's fp32-accumulated
    matmul of the same inputs; the stmatrix epilogue stores exactly the rounded accumulator."""
    a, b = wgmma_operands(emulated, case)
    c, c16, issued = under_every_schedule(emulated, lambda: tuple(emulated.wgmma_gemm(WGMMA_CASES.index(case),
                                                                                     CORRECT_WGMMA, a, b)))
    m, k = a.shape
    warpgroups = m // 64 * (2 if "dQ" in case else 1)
    assert issued.item() == 2 * warpgroups * (k // 16), "every wgmma of the GEMM went through the emulation"
    exact = 2 * (a.double() @ b.double().T)
    baseline = 2 * (a.float() @ b.float().T)  # PyTorch with wgmma's fp32 accumulation
    assert_within_2x_pytorch_error(c, baseline, exact, case)
    assert torch.equal(c16, c.to(c16.dtype)), f"{case}: stmatrix stored other values than the accumulator"


def test_wgmma_chain_reuses_the_accumulator_as_operand_a(emulated):
    """The forward's P V: S = Q K^T (SS, two warpgroups in M), rounded to bf16 in its registers
    (P) and fed to the RS wgmma through acc_as_operand_a, against V's MN-major view. The
    emulated RS wgmma reads A with the ISA's fragment layout, so O = P V checks the kernels'
    regrouping of the accumulator against the ISA."""
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(rows, 64, generator=g).to(torch.bfloat16) for rows in (128, 64, 64))
    p, o = under_every_schedule(emulated, lambda: tuple(emulated.wgmma_chain(q, k, v)))
    exact_s = q.double() @ k.double().T
    assert_within_2x_pytorch_error(p, (q.float() @ k.float().T).to(torch.bfloat16), exact_s, "P = round(Q K^T)")
    # O from the P the kernel holds (its roundings may differ from PyTorch's near a tie).
    assert_within_2x_pytorch_error(o, p.float() @ v.float(), p.double() @ v.double(), "O = P V")


def test_accumulator_read_before_the_wait_is_nan(emulated):
    c, _, _ = run_wgmma(emulated, WGMMA_CASES[0], READ_BEFORE_WAIT)
    assert c.isnan().all()


def test_stage_overwritten_before_retire_is_reported(emulated):
    with pytest.raises(RuntimeError, match=r"shared offset \d+, read by wgmma.mma_async.sync.aligned.m64n64k16.f32."
                                           r"bf16.bf16 \(SS, A K-major, B K-major\) of warpgroup 0, changed between "
                                           r"its issue and the wgmma.wait_group that retires it"):
        run_wgmma(emulated, WGMMA_CASES[0], OVERWRITE_STAGE)


def test_a_register_written_before_retire_is_reported(emulated):
    with pytest.raises(RuntimeError, match=r"an A register of wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 \(RS, "
                                           r"A K-major, B MN-major\) of warpgroup 0 was written before the "
                                           r"wgmma.wait_group that retires it"):
        run_wgmma(emulated, "RS bf16, B MN-major, 128B swizzle", OVERWRITE_A)


def test_warp_skipping_the_wgmma_is_reported(emulated):
    with pytest.raises(RuntimeError, match=r"warpgroup 0 meets at different instructions: threads 0-95 at wgmma.fence; "
                                           r"threads 96-127 at wgmma.wait_group 0;"):
        run_wgmma(emulated, WGMMA_CASES[0], WARP_SKIPS_WGMMA)


def test_warp_exiting_before_the_wgmma_is_reported_as_a_deadlock(emulated):
    with pytest.raises(RuntimeError, match=r"deadlock: .*warp 0: .* \(thread 0 waits at wgmma.fence for the rest of "
                                           r"warpgroup 0\);.* warp 3: 0 at __syncthreads, 0 at a warp collective or "
                                           r"__syncwarp, 32 exited;"):
        run_wgmma(emulated, WGMMA_CASES[0], WARP_EXITS)


def test_gmma_atom_outside_the_emulation_fails_when_run(emulated):
    with pytest.raises(RuntimeError, match="not emulated: Attempting to use MMA_64x8x16_F32BF16BF16_SS"):
        run_wgmma(emulated, WGMMA_CASES[0], UNEMULATED_ATOM)


def test_setmaxnreg_moves_registers_between_warpgroups(emulated):
    """The sm90 kernels' split: 384 threads start at 168 registers; the producer drops to 24,
    the two consumers rise to 240."""
    out = emulated.setmaxnreg(KERNEL_SPLIT)
    assert out.tolist() == [24] * 128 + [240] * 256


SETMAXNREG_MISUSES = {
    OVERDRAW: r"deadlock: .*waits at setmaxnreg.inc.sync.aligned.u32 256",
    NEVER_GRANTED: r"setmaxnreg.inc.sync.aligned.u32 256 in warpgroup 4 \(at 96 registers per thread\) can never be "
                   r"granted: it needs 20480 registers; the CTA's pool holds 0",
    BAD_COUNT: r"setmaxnreg.inc.sync.aligned.u32 100: the count must be a multiple of 8 in 24..256",
}


@pytest.mark.parametrize("scenario", SETMAXNREG_MISUSES)
def test_setmaxnreg_misuse_is_reported(emulated, scenario):
    with pytest.raises(RuntimeError, match=SETMAXNREG_MISUSES[scenario]):
        emulated.setmaxnreg(scenario)
