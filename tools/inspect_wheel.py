"""Checks a built headmix wheel against what its name promises, and the installed package.

    python tools/inspect_wheel.py WHEEL [--installed]

The wheel file: its local label (+cpu, +cu130.sm90a.sm100a) names exactly the archs of the
cubins in headmix/_C*.so, and every kernel family has code for each of them (Hopper kernels
for sm_90a only); its metadata requires the torch release this Python has (the one it was
built against, tools/headmix_build_version.py). With --installed, the headmix imported here
(no GPU needed): build_info names the same archs and a CUDA version, every op of
torch.ops.headmix has a CUDA kernel registered, and `ldd` resolves every library of _C.
cuobjdump comes from the nvidia-cuda-cuobjdump wheel or PATH.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from headmix_build_version import torch_requirement  # noqa: E402

# Substrings of the kernels' mangled names, one per family; each must have code for every arch.
KERNEL_FAMILIES = ["mix_heads_portable_kernel", "mix_heads_dw_partial_kernel", "flash_fwd_kernel",
                   "flash_bwd_dkdv_kernel", "flash_bwd_dq_kernel", "vhead_decode_kernel", "kv_cache_append_kernel"]
SM90_FAMILIES = ["flash_fwd_sm90_kernel", "flash_bwd_sm90_kernel"]


def label_archs(wheel: Path) -> tuple[str, list[str]]:
    """('cu130.sm90a.sm100a', ['sm_90a', 'sm_100a']) from headmix-0.1.0+cu130.sm90a.sm100a-cp311-....whl."""
    match = re.match(r"headmix-[^+-]+\+([a-z0-9.]+)-", wheel.name)
    if match is None:
        raise SystemExit(f"inspect_wheel: {wheel.name} has no local label")
    label = match.group(1)
    return label, [f"sm_{part[2:]}" for part in label.split(".") if part.startswith("sm")]


def requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        metadata = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(metadata).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def cuobjdump() -> str:
    found = next(Path(sysconfig.get_paths()["purelib"]).glob("nvidia/cu*/bin/cuobjdump"), None)
    return str(found) if found else "cuobjdump"


def cubin_kernels(library: Path) -> dict[str, set[str]]:
    """{arch: mangled kernel names} of the SASS (ELF) code in the library."""
    out = subprocess.run([cuobjdump(), "--dump-resource-usage", str(library)], capture_output=True, text=True,
                         check=True).stdout
    kernels: dict[str, set[str]] = {}
    arch, elf = None, False
    for line in out.splitlines():
        if line.startswith("Fatbin "):
            elf = line.startswith("Fatbin elf")
        elif line.startswith("arch = ") and elf:
            arch = line.split("=", 1)[1].strip()
            kernels.setdefault(arch, set())
        elif elf and arch and (m := re.match(r"\s*Function (\S+):", line)):
            kernels[arch].add(m.group(1))
    return kernels


def check_wheel(wheel: Path) -> list[str]:
    """Problems with the wheel file (empty when it is what its name says)."""
    import torch

    problems = []
    label, archs = label_archs(wheel)
    wanted = torch_requirement(torch.__version__)
    if wanted not in requires(wheel):
        problems.append(f"requires {requires(wheel)}, expected {wanted} (built with torch {torch.__version__})")
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if re.fullmatch(r"headmix/_C.*\.so", n)]
        if len(names) != 1:
            return problems + [f"expected one headmix/_C*.so, found {names}"]
        if not archs:  # a +cpu wheel: no device code to inspect
            return problems
        library = Path(z.extract(names[0], tmp))
        kernels = cubin_kernels(library)
    if set(kernels) != set(archs):
        problems.append(f"label +{label} names {archs} but the cubins are for {sorted(kernels)}")
    for arch in archs:
        families = KERNEL_FAMILIES + (SM90_FAMILIES if arch == "sm_90a" else [])
        for family in families:
            if not any(family in k for k in kernels.get(arch, ())):
                problems.append(f"no {family} code for {arch}")
    for arch, names_ in kernels.items():
        if arch != "sm_90a" and any(f in k for f in SM90_FAMILIES for k in names_):
            problems.append(f"Hopper kernels built for {arch}")
    return problems


def check_installed(archs: list[str]) -> list[str]:
    """Problems with the headmix installed in this Python (imported without a GPU)."""
    import torch

    import headmix

    problems = []
    info = headmix.build_info
    if not info["cuda_backend"] or list(info["cuda_archs"]) != archs or not info["cuda_version"]:
        problems.append(f"build_info {info} does not name the wheel's archs {archs} and a CUDA version")
    ops = sorted({s.name for s in torch._C._jit_get_all_schemas() if s.name.startswith("headmix::")})
    if not ops:
        problems.append("no headmix ops registered")
    for op in ops:
        if not torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA"):
            problems.append(f"{op} has no CUDA kernel")
    library = Path(headmix._C.__file__)
    ldd = subprocess.run(["ldd", str(library)], capture_output=True, text=True).stdout
    problems += [f"ldd {library.name}: {line.strip()}" for line in ldd.splitlines() if "not found" in line]
    print(f"inspect_wheel: installed headmix {info}; {len(ops)} ops with CUDA kernels: {', '.join(ops)}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--installed", action="store_true", help="also check the installed headmix")
    args = parser.parse_args()
    problems = check_wheel(args.wheel)
    if args.installed:
        problems += check_installed(label_archs(args.wheel)[1])
    for problem in problems:
        print(f"inspect_wheel: {problem}")
    if problems:
        sys.exit(f"inspect_wheel: {args.wheel.name}: {len(problems)} problem(s)")
    print(f"inspect_wheel: {args.wheel.name} OK ({', '.join(label_archs(args.wheel)[1])}; requires {requires(args.wheel)})")


if __name__ == "__main__":
    main()
