"""Facts that C++ and Python both need agree: the default softmax scale (csrc/attention_scale.h,
mirrored by reference.attention_scale) and the CUDA arch list (parsed in C++ by
csrc/build_archs.h for headmix.build_info, and in Python by tools/headmix_build_version.py for
the wheel's label)."""

import importlib.metadata
import sys
from pathlib import Path

import pytest
import torch
from tolerances import assert_bitwise_equal

import headmix
from headmix import reference

ops = torch.ops.headmix
TOOLS = Path(__file__).resolve().parent.parent / "tools"


@pytest.mark.parametrize("head_dim", [8, 24])
def test_flash_attn_default_scale_is_the_references(head_dim):
    # float64, so that a scale differing in its last bits changes the result.
    q, k, v = (torch.randn(2, 5, 2, head_dim, dtype=torch.float64) for _ in range(3))
    default = ops.flash_attn_fwd(q, k, v, None, True, -1, -1)
    explicit = ops.flash_attn_fwd(q, k, v, reference.attention_scale(None, head_dim), True, -1, -1)
    for got, want, name in zip(default, explicit, ("out", "lse")):
        assert_bitwise_equal(got, want, name)
    dout = torch.randn_like(default[0])
    grads = [ops.flash_attn_bwd(dout, q, k, v, *default, None, scale, True, -1, -1)
             for scale in (None, reference.attention_scale(None, head_dim))]
    for got, want, name in zip(*grads, ("dq", "dk", "dv")):
        assert_bitwise_equal(got, want, name)


@pytest.mark.parametrize("head_dim", [8, 24])
def test_vhead_decode_default_scale_is_the_references(head_dim):
    q, k_cache, v_cache = (torch.randn(*shape, head_dim, dtype=torch.float64)
                           for shape in ((2, 1, 4), (2, 6, 2), (2, 6, 2)))
    seqlens = torch.tensor([3, 6], dtype=torch.int32)
    default, explicit = (ops.vhead_decode(q, k_cache, v_cache, seqlens, None, None, None, scale, True, -1)
                         for scale in (None, reference.attention_scale(None, head_dim)))
    for got, want, name in zip(default, explicit, ("out", "lse")):
        assert_bitwise_equal(got, want, name)


def test_the_wheel_label_names_the_archs_build_info_reports():
    """The label was computed by tools/headmix_build_version.py from HEADMIX_CUDA_ARCHS before
    CMake ran; build_info holds the C++ parse of the list CMake passed to the compiler."""
    label = importlib.metadata.version("headmix").partition("+")[2].split(".")
    assert (label == ["cpu"]) == (not headmix.build_info["cuda_backend"])
    assert [f"sm_{part[2:]}" for part in label if part.startswith("sm")] == headmix.build_info["cuda_archs"]


@pytest.mark.parametrize(("setting", "archs"), [
    ("90a;100a", ["90a", "100a"]),
    ("90a, 100a,", ["90a", "100a"]),
    ("80", ["80"]),
])
def test_python_parses_the_arch_setting(monkeypatch, setting, archs):
    monkeypatch.syspath_prepend(str(TOOLS))
    monkeypatch.setenv("HEADMIX_CUDA_ARCHS", setting)
    import headmix_build_version

    assert headmix_build_version.cuda_archs() == archs
    sys.modules.pop("headmix_build_version")
