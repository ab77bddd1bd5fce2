"""Jars from Maven Central, fetched once into a cache folder (the broker's, Debezium's, the
benchmark peer's): filled in a staging folder beside it and renamed into place, so that a run
started meanwhile never sees half the jars, and one that was cut short leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["COMPLETE", "copy_dependencies", "fetched_once"]

COMPLETE = ".complete"


def fetched_once(done: Path, fill: Callable[[Path], None]) -> Path:
    """``done``, made by ``fill(staging)`` on first use; a later call returns it at once."""
    if (done / COMPLETE).exists():
        return done
    done.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{done.name}-", dir=done.parent))
    try:
        fill(staging)
        shutil.rmtree(staging / "target", ignore_errors=True)  # Maven's, beside a pom copied in
        (staging / COMPLETE).touch()
        try:
            staging.rename(done)
        except OSError:
            if not (done / COMPLETE).exists():  # a leftover, not another run's finished copy
                shutil.rmtree(done, ignore_errors=True)
                staging.rename(done)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return done


def copy_dependencies(pom: Path, into: Path, *options: str, cwd: Path | None = None) -> None:
    """``mvn dependency:copy-dependencies`` of ``pom`` into ``into``, quietly: Maven's output only
    in the error when it fails. ``jansi.noreset`` keeps the colour reset Maven's console library
    writes at exit out of the output (a JVM option: on the command line it comes too late)."""
    env = {**os.environ, "MAVEN_OPTS": f"{os.environ.get('MAVEN_OPTS', '')} -Djansi.noreset=true".strip()}
    answer = subprocess.run(["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
                             "dependency:copy-dependencies", *options, f"-DoutputDirectory={into}"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
                            timeout=900)
    if answer.returncode != 0:
        output = answer.stdout.decode(errors="replace").strip()[-3000:]
        raise RuntimeError(f"Maven could not fetch the jars of {pom.name} (exit {answer.returncode}):\n{output}")
