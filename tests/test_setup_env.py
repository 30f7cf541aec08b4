"""tools/setup_env.sh, run on a copy of itself against a stub Python that installs nothing: it
passes pip --find-links .whl only when the folder exists (pip warns once per package about a
missing one)."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Every import fails (so each package is "missing"), the cmake check answers "ok", and every
# command line is logged.
STUB_PYTHON = """#!/bin/sh
echo "$@" >> "$STUB_LOG"
case "$1" in
  -) cat > /dev/null; echo 1 ;;
  -c) case "$2" in "import headmix"*) exit 0 ;; *) exit 1 ;; esac ;;
esac
exit 0
"""


def pip_installs(tmp_path: Path) -> list[str]:
    tools = tmp_path / "tools"
    tools.mkdir()
    shutil.copy(ROOT / "tools" / "setup_env.sh", tools)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)  # the transformers pin
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STUB_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "log"
    env = dict(os.environ, STUB_LOG=str(log))
    env.pop("VENV", None)
    result = subprocess.run(["bash", str(tools / "setup_env.sh")], cwd=tmp_path, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    installs = [line for line in log.read_text().splitlines() if line.startswith("-m pip install")]
    assert installs, "the stub should have been asked to install the missing packages"
    return installs


@pytest.mark.parametrize("wheels", [False, True], ids=["no .whl", ".whl"])
def test_find_links_only_when_the_wheel_folder_exists(tmp_path, wheels):
    if wheels:
        (tmp_path / ".whl").mkdir()
    for line in pip_installs(tmp_path):
        if line.endswith("-e ."):
            continue  # the editable install of headmix itself uses no index
        assert ("--find-links .whl" in line) == wheels, line
