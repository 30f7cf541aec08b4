"""Wheel metadata for scikit-build-core that depends on the build: version and dependencies.

The version is 0.1.0 plus a local label naming the backend: ``+cpu`` for CPU builds,
``+cu<major><minor>.sm<arch>...`` for CUDA builds (for example ``0.1.0+cu130.sm90a``), so
wheels built per CUDA arch never collide. The CUDA decision mirrors CMakeLists.txt (same
environment variables), and CMake fails the build if the label does not name what it built.

The dependency is the torch release the extension is compiled against (``torch==2.14.*``): a
C++ extension uses torch's C++ ABI, which changes between releases, so it loads only there.

``python tools/headmix_build_version.py --archs`` prints the arch list, which CMake reads, so
the label and the cubins come from one list; ``--label`` prints the label (tools/build_wheel.sh
names the build folder after it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

BASE_VERSION = "0.1.0"
DEFAULT_ARCHS = "90a;100a"


def cuda_archs() -> list[str]:
    """HEADMIX_CUDA_ARCHS (';' or ',' separated) or the default, e.g. ['90a', '100a']: the one
    parse of the setting in Python, also used by tools/check_cuda.py."""
    value = os.environ.get("HEADMIX_CUDA_ARCHS", "").strip() or DEFAULT_ARCHS
    archs = [a.strip() for a in value.replace(",", ";").split(";") if a.strip()]
    for arch in archs:
        if not re.fullmatch(r"\d{2,3}[af]?", arch):
            raise ValueError(f"HEADMIX_CUDA_ARCHS entries look like 90a, 100a or 80, got {arch!r} in {value!r}")
    return archs


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


def local_label() -> str:
    nvcc_version = _nvcc_version()
    if not _cuda_enabled(nvcc_version):
        return "cpu"
    return ".".join([f"cu{nvcc_version}"] + [f"sm{a}" for a in cuda_archs()])


def torch_requirement(torch_version: str | None = None) -> str:
    """'torch==X.Y.*' for the torch being built against (local labels such as +cu130 match)."""
    if torch_version is None:
        import torch

        torch_version = torch.__version__
    match = re.match(r"(\d+)\.(\d+)", torch_version)
    if match is None:
        raise ValueError(f"cannot read a torch release from {torch_version!r}")
    return f"torch=={match.group(1)}.{match.group(2)}.*"


def dynamic_metadata(field: str, settings: dict | None = None) -> str | list[str]:
    if field == "version":
        return f"{BASE_VERSION}+{local_label()}"
    if field == "dependencies":
        return [torch_requirement()]
    raise ValueError(f"headmix_build_version provides 'version' and 'dependencies', not {field!r}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--archs"]:
        print(";".join(cuda_archs()))
    elif sys.argv[1:] == ["--label"]:
        print(local_label())
    else:
        sys.exit("usage: headmix_build_version.py --archs | --label")
