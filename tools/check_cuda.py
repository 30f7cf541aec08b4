"""Compile-check the torch-free CUDA kernels without a GPU (``make check-cuda``, CI).

Builds the ``headmix_kernels`` CMake target alone (HEADMIX_KERNELS_ONLY=ON) for every arch in
HEADMIX_CUDA_ARCHS (default sm_90a and sm_100a) with -DNDEBUG and the ptxas resource report,
keeps the report in build/check-cuda/resource-usage.txt, and fails on a compile error, a
register spill, a stack frame, or ptxas warning C7510 (wgmma serialised). Kernels meant to
use tensor cores must show the matrix instruction in their SASS for every arch (cuobjdump and
nvdisasm come from the nvidia-cuda-cuobjdump / nvidia-cuda-nvdisasm wheels); the Hopper kernels
(csrc/kernels/sm90, built for sm_90a only) must show wgmma (HGMMA).

Host programs in tests/cuda_host/*.cu check kernels' index logic (CuTe layouts, mask bands)
on the CPU: each is compiled against the kernel headers and must exit 0.

It also compiles the torch bindings (csrc/cuda/*.cpp) for syntax and types against the
installed torch's CUDA headers, which a CPU wheel ships. The cuBLAS/cuSPARSE/cuSOLVER headers
those include are absent without a CUDA toolkit's math libraries, so a few opaque handle types
stand in for them; the bindings use none of those libraries.

``--build-dir DIR`` checks a real build instead (``make cuda-wheel``: DIR is build/wheel-<label>)
so the kernels are compiled once: the report is that build's log (DIR/build.log, which must show
every kernel source compiled), the SASS is that of its libheadmix_kernels.a, whose archs must be
exactly the ones the build declares (DIR/generated/headmix_build_config.h, which the wheel's
label also names); the bindings were compiled and linked against the CUDA torch there.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

from headmix_build_version import cuda_archs  # tools/ is on the path: this runs as a script

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "check-cuda"
REPORT = BUILD / "resource-usage.txt"

FUNCTION = re.compile(r"Function properties for (\S+)")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
REGISTERS = re.compile(r"Used (\d+) registers")
ARCH = re.compile(r"Compiling entry function '(\S+)' for '(sm_\w+)'")


def build() -> str:
    archs = ";".join(cuda_archs())
    configure = [
        "cmake", "-S", str(ROOT), "-B", str(BUILD), "-G", "Ninja",
        "-DHEADMIX_KERNELS_ONLY=ON", f"-DHEADMIX_CUDA_ARCHS={archs}",
        f"-DPython_EXECUTABLE={sys.executable}",
    ]
    subprocess.run(configure, check=True, stdout=subprocess.DEVNULL)
    # A clean rebuild, so the report covers every kernel, not only the changed ones.
    result = subprocess.run(
        ["cmake", "--build", str(BUILD), "--clean-first", "-j", str(os.cpu_count() or 2)],
        capture_output=True, text=True,
    )
    log = result.stdout + result.stderr
    REPORT.write_text(log)
    if result.returncode != 0:
        print(log)
        sys.exit(f"check-cuda: the kernels do not compile (log: {REPORT})")
    return log


# Kernels meant to run on tensor cores (a substring of the mangled name) and the SASS opcodes
# any one of which proves it: HMMA (mma.sync), HGMMA (wgmma), UTC*MMA (tcgen05).
TENSOR_CORE = {"HMMA", "HGMMA", "UTCHMMA", "UTCQMMA"}
TENSOR_CORE_KERNELS = {
    "flash_fwd_kernel": TENSOR_CORE,
    "flash_bwd_dkdv_kernel": TENSOR_CORE,
    "flash_bwd_dq_kernel": TENSOR_CORE,
    "vhead_decode_kernel": TENSOR_CORE,
}
# Hopper kernels: built for sm_90a only (when HEADMIX_CUDA_ARCHS has it), and must use wgmma.
SM90_KERNELS = {
    "flash_fwd_sm90_kernel": {"HGMMA"},
    "flash_bwd_sm90_kernel": {"HGMMA"},
}
SASS_LINE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)")


def sass_opcodes(library: Path) -> dict[tuple[str, str], set[str]]:
    """{(arch, function): opcodes} from the SASS of every kernel in the library."""
    bin_dir = next(Path(sysconfig.get_paths()["purelib"]).glob("nvidia/cu*/bin"), None)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}" if bin_dir else os.environ["PATH"])
    result = subprocess.run(["cuobjdump", "-sass", str(library)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"check-cuda: cuobjdump failed (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm):\n{result.stderr}")
    found: dict[tuple[str, str], set[str]] = {}
    arch, function = "?", None
    for line in result.stdout.splitlines():
        if line.strip().startswith("code for sm_"):
            arch = line.split()[-1]
        elif "Function :" in line:
            function = line.split("Function :")[1].strip()
            found[(arch, function)] = set()
        elif function and (m := SASS_LINE.search(line)):
            found[(arch, function)].add(m.group(1))
    return found


def check_tensor_cores(library: Path, declared_archs: list[str] | None = None) -> None:
    opcodes = sass_opcodes(library)
    archs = {arch for arch, _ in opcodes}
    if declared_archs is not None and archs != {f"sm_{a}" for a in declared_archs}:
        sys.exit(f"check-cuda: {library} holds SASS for {sorted(archs)}, the build declares {declared_archs}")
    for pattern, wanted in TENSOR_CORE_KERNELS.items():
        for arch in sorted(archs):
            kernels = [(f, ops) for (a, f), ops in opcodes.items() if a == arch and pattern in f]
            if not kernels:
                sys.exit(f"check-cuda: no {pattern} kernel in the {arch} SASS")
            for function, ops in kernels:
                if not ops & wanted:
                    sys.exit(f"check-cuda: {arch} {function} uses no tensor-core instruction ({sorted(wanted)})")
        print(f"check-cuda: {pattern}: tensor-core instructions in the SASS for {', '.join(sorted(archs))}")
    if "sm_90a" not in archs:
        return
    for pattern, wanted in SM90_KERNELS.items():
        kernels = [(a, f, ops) for (a, f), ops in opcodes.items() if pattern in f]
        if not kernels:
            sys.exit(f"check-cuda: no {pattern} kernel in the sm_90a SASS")
        for arch, function, ops in kernels:
            if arch != "sm_90a":
                sys.exit(f"check-cuda: {function} is built for {arch}; Hopper kernels are sm_90a only")
            if not ops & wanted:
                sys.exit(f"check-cuda: {function} uses no {sorted(wanted)} (wgmma) instruction")
        print(f"check-cuda: {pattern}: {', '.join(sorted(wanted))} in the SASS, sm_90a only")


# Opaque types that torch's CUDA context headers name; enough for -fsyntax-only.
LIBRARY_STUBS = {
    "cusparse.h": "typedef struct cusparseContext* cusparseHandle_t; typedef int cusparseStatus_t;",
    "cublas_v2.h": "typedef struct cublasContext* cublasHandle_t; typedef int cublasStatus_t;",
    "cublasLt.h": "typedef struct cublasLtContext* cublasLtHandle_t;",
    "cusolverDn.h": "typedef struct cusolverDnContext* cusolverDnHandle_t;",
    "cusolver_common.h": "typedef int cusolverStatus_t;",
    "c10/cuda/impl/cuda_cmake_macros.h": "#define C10_CUDA_BUILD_SHARED_LIBS",
}


def check_bindings() -> None:
    import torch.utils.cpp_extension as cpp

    stubs = BUILD / "stubs"
    archs = cuda_archs()
    stub_texts = dict(LIBRARY_STUBS)
    stub_texts["headmix_build_config.h"] = (f'#define HEADMIX_BUILD_ARCHS "{";".join(archs)}"\n'
                                            '#define HEADMIX_BUILD_CUDA_VERSION ""\n#define HEADMIX_BUILD_CUTLASS_VERSION ""')
    for name, text in stub_texts.items():
        (stubs / name).parent.mkdir(parents=True, exist_ok=True)
        (stubs / name).write_text(text + "\n")
    cuda_include = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include"
    includes = [ROOT / "csrc", stubs, *map(Path, cpp.include_paths()), cuda_include]
    for source in sorted((ROOT / "csrc" / "cuda").glob("*.cpp")):
        defines = ["-DHEADMIX_WITH_CUDA"]
        if "90a" in archs:
            defines.append("-DHEADMIX_WITH_SM90_KERNELS=1")
        # C++20, as CMakeLists.txt builds the extension: torch 2.14's headers require it.
        command = ["c++", "-fsyntax-only", "-std=c++20", *defines, *(f"-I{p}" for p in includes), str(source)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stderr)
            sys.exit(f"check-cuda: binding {source.relative_to(ROOT)} does not compile")
        print(f"check-cuda: binding {source.relative_to(ROOT)} compiles")


def check_host_programs() -> None:
    import cutlass_library

    cutlass = Path(cutlass_library.__file__).parent / "source"
    includes = [ROOT / "csrc" / "kernels", cutlass / "include", cutlass / "tools" / "util" / "include"]
    for source in sorted((ROOT / "tests" / "cuda_host").glob("*.cu")):
        binary = BUILD / "host" / source.stem
        binary.parent.mkdir(parents=True, exist_ok=True)
        command = ["nvcc", "-std=c++17", "-O1", "--expt-relaxed-constexpr", *(f"-I{p}" for p in includes),
                   str(source), "-o", str(binary)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stdout + result.stderr)
            sys.exit(f"check-cuda: host program {source.relative_to(ROOT)} does not compile")
        result = subprocess.run([str(binary)], capture_output=True, text=True)
        print(result.stdout, end="")
        if result.returncode != 0:
            sys.exit(f"check-cuda: host program {source.relative_to(ROOT)} FAILED")


def problems(log: str) -> tuple[list[str], list[str]]:
    """(summary lines, problems) from the ptxas report."""
    summary, found = [], []
    if "C7510" in log:
        found.append("ptxas warning C7510: wgmma serialised (build without -DNDEBUG, or an assert?)")
    entry, arch = "?", "?"
    for line in log.splitlines():
        if m := ARCH.search(line):
            entry, arch = m.group(1), m.group(2)
        elif m := FUNCTION.search(line):
            entry = m.group(1)
        elif m := FRAME.search(line):
            stack, spill_st, spill_ld = map(int, m.groups())
            if stack or spill_st or spill_ld:
                found.append(f"{arch} {entry}: {stack} B stack, {spill_st} B spill stores, {spill_ld} B spill loads")
        elif (m := REGISTERS.search(line)) and entry != "?":
            summary.append(f"{arch:8s} {m.group(1):>4s} regs  {entry}")
    return summary, found


def declared_archs(build_dir: Path) -> list[str]:
    header = (build_dir / "generated" / "headmix_build_config.h").read_text()
    match = re.search(r'#define HEADMIX_BUILD_ARCHS "([^"]*)"', header)
    if match is None or not match.group(1):
        sys.exit(f"check-cuda: {build_dir} is not a CUDA build (no arch list in its headmix_build_config.h)")
    return match.group(1).split(";")


def read_build(build_dir: Path) -> str:
    """The log of a real build, which must have compiled every kernel source (not an incremental rebuild)."""
    log = (build_dir / "build.log").read_text()
    archs = declared_archs(build_dir)
    sources = sorted((ROOT / "csrc" / "kernels").rglob("*.cu"))
    if "90a" not in archs:
        sources = [s for s in sources if s.parent.name != "sm90"]
    # Ninja names each object it builds: "Building CUDA object CMakeFiles/<target>.dir/<source>.o".
    missing = [s.relative_to(ROOT) for s in sources if f"{s.relative_to(ROOT)}.o" not in log]
    if missing:
        sys.exit(f"check-cuda: {build_dir}/build.log does not show these kernels compiled (rebuild from clean): "
                 + ", ".join(map(str, missing)))
    if not any(build_dir.glob("_C*.so")):
        sys.exit(f"check-cuda: {build_dir} has no linked extension (_C*.so)")
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, help="check this real build's log and objects instead of compiling")
    args = parser.parse_args()
    log = read_build(args.build_dir) if args.build_dir else build()
    report = args.build_dir / "build.log" if args.build_dir else REPORT
    summary, found = problems(log)
    if not summary:
        sys.exit(f"check-cuda: no ptxas resource report found in {report}")
    print("\n".join(summary))
    print(f"check-cuda: {len(summary)} kernel builds, report in {report}")
    if found:
        print("\n".join(found))
        sys.exit("check-cuda: FAILED (spills, stack frames or C7510)")
    print("check-cuda: OK (no spills, no stack frames, no C7510)")
    if args.build_dir:
        check_tensor_cores(args.build_dir / "libheadmix_kernels.a", declared_archs(args.build_dir))
    else:
        check_tensor_cores(BUILD / "libheadmix_kernels.a")
    check_host_programs()
    if not args.build_dir:
        check_bindings()


if __name__ == "__main__":
    main()
