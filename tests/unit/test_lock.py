"""The lock files in requirements/ (written by scripts/lock) agree with pyproject.toml's ranges:
every dependency of the package and of the extras each file holds is pinned there (for every
Python the project supports) to a version its range allows; lowest.txt pins each at its lower
bound on Python 3.10, where tests/versions/ installs it. Read from the files alone, no network:
a dependency changed in pyproject without running scripts/lock fails here."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: pytest's own TOML reader
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]  # requires-python's, each run by tests/versions/
FILES = {"lock.txt": ("test", "bench"), "image.txt": (), "lowest.txt": ("test", "bench")}
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def pins(text: str) -> list[tuple[str, Version, Marker | None]]:
    """(name, version, marker) of each ``name==version [; marker]`` line of a lock file."""
    found = []
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            name, version, marker = match.groups()
            found.append((canonicalize_name(name), Version(version), Marker(marker) if marker else None))
    return found


def environment(python: str) -> dict[str, str]:
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def pinned_for(text: str, python: str) -> dict[str, Version]:
    """The versions a lock file installs on ``python`` (Linux, x86-64)."""
    env = environment(python)
    return {name: version for name, version, marker in pins(text) if marker is None or marker.evaluate(env)}


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    listed = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        listed += PYPROJECT["project"]["optional-dependencies"][extra]
    return [Requirement(text) for text in listed]


def disagreements(text: str, extras: tuple[str, ...], *, lowest: bool = False) -> list[str]:
    """What in the lock file ``text`` disagrees with pyproject's dependencies and ``extras``."""
    wrong = []
    for python in PYTHONS:
        pinned = pinned_for(text, python)
        for req in requirements(extras):
            if req.marker is not None and not req.marker.evaluate(environment(python)):
                continue
            name = canonicalize_name(req.name)
            if name not in pinned:
                wrong.append(f"{req} is not pinned for Python {python}")
                continue
            if not req.specifier.contains(pinned[name], prereleases=True):
                wrong.append(f"{name}=={pinned[name]} is outside {req} (Python {python})")
            floors = [Version(spec.version) for spec in req.specifier if spec.operator in (">=", "==")]
            if lowest and python == "3.10" and floors and pinned[name] != max(floors):  # the tier's Python
                wrong.append(f"{name}=={pinned[name]} is not the lower bound of {req} (Python {python})")
    return wrong


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_lock_file_agrees_with_pyproject(name: str) -> None:
    text = (ROOT / "requirements" / name).read_text()
    assert disagreements(text, FILES[name], lowest=name == "lowest.txt") == [], (
        f"requirements/{name} disagrees with pyproject.toml: run scripts/lock")


def test_every_pin_carries_its_hashes() -> None:
    for name in FILES:
        text = (ROOT / "requirements" / name).read_text()
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        unhashed = [block.split()[0] for block in blocks if "==" in block and "--hash=sha256:" not in block]
        assert unhashed == [], f"requirements/{name}: pins without hashes"


def test_the_image_installs_the_versions_of_the_lock() -> None:
    for python in PYTHONS:
        lock = pinned_for((ROOT / "requirements" / "lock.txt").read_text(), python)
        image = pinned_for((ROOT / "requirements" / "image.txt").read_text(), python)
        assert {name: version for name, version in image.items() if lock.get(name) != version} == {}


def test_the_check_finds_a_range_the_lock_breaks() -> None:
    lock = "qdrant-client==1.16.0 \\\n    --hash=sha256:00\n"
    assert any("qdrant-client==1.16.0 is outside" in line for line in disagreements(lock, ()))
    lowest = "qdrant-client==1.18.0 \\\n    --hash=sha256:00\n"
    assert any("not the lower bound" in line for line in disagreements(lowest, (), lowest=True))
    assert any("uvloop" in line and "not pinned" in line for line in disagreements(lock, ()))
