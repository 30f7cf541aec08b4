"""Wheel version for scikit-build-core: 0.1.0 plus a local label naming the backend.

CPU builds get ``+cpu``; CUDA builds get ``+cu<major><minor>.sm<arch>...`` (for example
``0.1.0+cu130.sm90a.sm100a``), so wheels built per CUDA arch never collide. The CUDA
decision mirrors CMakeLists.txt (same environment variables), and CMake fails the build if
the two disagree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

BASE_VERSION = "0.1.0"
DEFAULT_ARCHS = "90a;100a"


def _nvcc_version() -> str | None:
    nvcc = shutil.which("nvcc") or (
        os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc") if "CUDA_HOME" in os.environ else None
    )
    if nvcc is None or not os.path.exists(nvcc):
        return None
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"release (\d+)\.(\d+)", out)
    return f"{match.group(1)}{match.group(2)}" if match else None


def _cuda_enabled(nvcc_version: str | None) -> bool:
    mode = os.environ.get("HEADMIX_CUDA", "AUTO").upper()
    if mode == "OFF":
        return False
    if mode == "ON":
        return True
    import torch

    return torch.version.cuda is not None and nvcc_version is not None


def cuda_archs() -> list[str]:
    """HEADMIX_CUDA_ARCHS as CMake reads it (";" or "," between entries): the one parse of the
    setting in Python, also used by tools/check_cuda.py."""
    archs = os.environ.get("HEADMIX_CUDA_ARCHS", DEFAULT_ARCHS).replace(",", ";").split(";")
    return [a.strip() for a in archs if a.strip()]


def local_label() -> str:
    nvcc_version = _nvcc_version()
    if not _cuda_enabled(nvcc_version):
        return "cpu"
    return ".".join([f"cu{nvcc_version}"] + [f"sm{a}" for a in cuda_archs()])


def dynamic_metadata(field: str, settings: dict | None = None) -> str:
    if field != "version":
        raise ValueError(f"headmix_build_version only provides 'version', not {field!r}")
    return f"{BASE_VERSION}+{local_label()}"
