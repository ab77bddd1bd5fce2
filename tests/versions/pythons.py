"""A virtualenv per Python version, installed from a lock file, and the quick tier run in it.

The venvs are cached under the checkout's ``.cache/versions/`` (outside git), one per Python,
lock file and the lock's and pyproject's contents: a second run reuses it, a changed lock makes
a new one. uv makes them (it is in the test extra; from its cache a venv takes seconds). The
interpreters: ``QCC_PYTHON_3_10`` (and so on) when set, else pyenv's, else ``python3.10`` on
the PATH; without one the test skips and says which.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "versions"
# the static checks (ruff, mypy) judge the code, not the Python or the libraries: they run in the main tier
QUICK_TIER = ["-m", "quick", "-q", "-rfE", "-p", "no:cacheprovider", "--deselect", "tests/unit/test_static_checks.py",
              "--durations=5", "-n", "2"]  # run last in CI, on a machine the other tests have left


def interpreter(version: str) -> Path | None:
    named = os.environ.get(f"QCC_PYTHON_{version.replace('.', '_')}")
    if named:
        return Path(named)
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(pyenv.glob(f"{version}.*/bin/python"), key=lambda path: [int(part) for part in
                   path.parents[1].name.split(".") if part.isdigit()])
    if found:
        return found[-1]
    on_path = shutil.which(f"python{version}")
    return Path(on_path) if on_path else None


def uv() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


def venv(version: str, lock: str) -> Path:
    """The venv's python for ``version`` with ``requirements/<lock>`` and the checkout (editable,
    no dependencies) installed; made once per content of the lock and pyproject."""
    python = interpreter(version)
    if python is None or not python.exists():
        pytest.skip(f"no Python {version}: set QCC_PYTHON_{version.replace('.', '_')} or install it with pyenv")
    tool = uv()
    if tool is None:
        pytest.skip("uv is not installed (the test extra has it): pip install uv")
    digest = hashlib.sha256((ROOT / "requirements" / lock).read_bytes() + (ROOT / "pyproject.toml").read_bytes())
    folder = CACHE / f"py{version}-{Path(lock).stem}-{digest.hexdigest()[:12]}"
    ready = folder / ".installed"
    if not ready.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        target = str(folder / "bin" / "python")
        for step in ([tool, "venv", "-q", "-p", str(python), str(folder)],
                     [tool, "pip", "install", "-q", "-p", target, "--require-hashes", "-r",
                      str(ROOT / "requirements" / lock)],
                     [tool, "pip", "install", "-q", "-p", target, "--no-deps", "-e", str(ROOT)]):
            done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False, cwd=ROOT)
            assert done.returncode == 0, (f"Python {version}, requirements/{lock}: {' '.join(step[:3])} failed "
                                          f"(a locked version without a wheel for it?):\n{done.stderr[-3000:]}")
        ready.write_text(f"{python}\n")
    return folder / "bin" / "python"


def run_quick_tier(version: str, lock: str) -> None:
    """The quick tier on ``version`` with ``lock`` installed: every test passes."""
    python = venv(version, lock)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS")
           and not k.startswith("PYTEST_XDIST")}
    started = time.monotonic()
    done = subprocess.run([str(python), "-m", "pytest", *QUICK_TIER], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1500, check=False)
    summary = done.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(f"Python {version}, requirements/{lock}: {summary[0]} ({time.monotonic() - started:.0f} s)")
    assert done.returncode == 0, (f"the quick tier on Python {version} ({lock}):\n"
                                  f"{done.stdout[-6000:]}{done.stderr[-2000:]}")
