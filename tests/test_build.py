"""The build's own logic, without a GPU: the wheel's version label and torch requirement, the
arch list CMake reads, the generated build-config header, and a built wheel when one exists
(`make cuda-wheel` puts it in dist/; CI's CUDA stage runs this file after building one)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import headmix_build_version as version  # noqa: E402
import inspect_wheel  # noqa: E402


@pytest.mark.parametrize(("value", "archs"), [
    (None, ["90a", "100a"]),
    ("", ["90a", "100a"]),
    ("90a", ["90a"]),
    ("100a", ["100a"]),
    ("90a;100a", ["90a", "100a"]),
    ("80, 90a", ["80", "90a"]),
])
def test_arch_list(monkeypatch, value, archs):
    if value is None:
        monkeypatch.delenv("HEADMIX_CUDA_ARCHS", raising=False)
    else:
        monkeypatch.setenv("HEADMIX_CUDA_ARCHS", value)
    assert version.cuda_archs() == archs


@pytest.mark.parametrize("value", ["sm_90a", "9.0", "90a;x"])
def test_bad_arch_is_refused(monkeypatch, value):
    monkeypatch.setenv("HEADMIX_CUDA_ARCHS", value)
    with pytest.raises(ValueError, match="HEADMIX_CUDA_ARCHS"):
        version.cuda_archs()


def test_cmake_reads_the_same_list(monkeypatch):
    monkeypatch.setenv("HEADMIX_CUDA_ARCHS", "100a,90a")
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "headmix_build_version.py"), "--archs"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "100a;90a"


def test_local_label(monkeypatch):
    monkeypatch.setattr(version, "_nvcc_version", lambda: "130")
    monkeypatch.setenv("HEADMIX_CUDA", "ON")
    monkeypatch.setenv("HEADMIX_CUDA_ARCHS", "90a")
    assert version.dynamic_metadata("version") == "0.1.0+cu130.sm90a"
    monkeypatch.setenv("HEADMIX_CUDA_ARCHS", "90a;100a")
    assert version.local_label() == "cu130.sm90a.sm100a"
    monkeypatch.setenv("HEADMIX_CUDA", "OFF")
    assert version.local_label() == "cpu"


@pytest.mark.parametrize(("torch_version", "requirement"), [
    ("2.14.1+cu130", "torch==2.14.*"), ("2.13.0+cpu", "torch==2.13.*"), ("2.11.0", "torch==2.11.*"),
])
def test_wheel_requires_the_torch_release_it_was_built_against(torch_version, requirement):
    assert version.torch_requirement(torch_version) == requirement


def test_wheel_label_parsing():
    label, archs = inspect_wheel.label_archs(Path("headmix-0.1.0+cu130.sm90a.sm100a-cp311-cp311-linux_x86_64.whl"))
    assert (label, archs) == ("cu130.sm90a.sm100a", ["sm_90a", "sm_100a"])
    assert inspect_wheel.label_archs(Path("headmix-0.1.0+cpu-cp311-cp311-linux_x86_64.whl")) == ("cpu", [])


def test_generated_header_matches_the_installed_build():
    """build_info comes from the header CMake generated; ';' in the arch list survives it."""
    import headmix

    info = headmix.build_info
    assert info["cuda_backend"] == bool(info["cuda_archs"])
    assert all(re.fullmatch(r"sm_\d+[af]?", arch) for arch in info["cuda_archs"])
    headers = list((ROOT / "build").glob("*/generated/headmix_build_config.h"))
    for header in headers:
        text = header.read_text()
        archs = re.search(r'#define HEADMIX_BUILD_ARCHS "([^"]*)"', text).group(1)
        if header.parent.parent.name.startswith("wheel-cu"):
            # build/wheel-<label>: the folder of one label holds that label's archs.
            assert [f"sm{a}" for a in archs.split(";")] == header.parent.parent.name.split(".")[1:]


def built_wheels():
    import torch

    release = ".".join(torch.__version__.split(".")[:2])
    wheels = sorted((ROOT / "dist").glob("headmix-*+cu*.whl"))
    # Only wheels built against this Python's torch release can be judged by it.
    return [w for w in wheels if f"torch=={release}.*" in inspect_wheel.requires(w)]


@pytest.mark.skipif(not built_wheels(), reason="no CUDA wheel for this torch in dist/ (make cuda-wheel)")
@pytest.mark.parametrize("wheel", built_wheels(), ids=lambda w: w.name)
def test_built_wheel_holds_what_its_label_says(wheel):
    assert inspect_wheel.check_wheel(wheel) == []
