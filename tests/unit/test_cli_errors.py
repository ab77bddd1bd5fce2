"""Every row of docs/errors.md: a bad setup or input, the one line the command line prints and
its exit code (the CLI as a subprocess, in an empty folder; nothing here needs a broker or a
server: the unreachable ones are closed loopback ports)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connector.errors import AccessDenied, CollectionMissing, StorageError, TransientError
from connector.exit_codes import failure

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
CLOSED = "127.0.0.1:1"


def rows() -> list[tuple[str, str, int, str]]:
    """(environment, arguments, exit code, the line's telling part) of each table row."""
    found = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2].isdigit():
            env, args, code, said = (re.sub(r"^`|`$", "", c) for c in cells)
            found.append((env, args, int(code), said))
    return found


def run(env: str, args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    extra = dict(pair.split("=", 1) for pair in env.split() if "=" in pair) if env != "-" else {}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("QCC_", "QDRANT_"))}
    return subprocess.run([sys.executable, "-m", "connector.cli", *args.split()], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False, env={**clean, "HF_HUB_OFFLINE": "1", **extra})


def test_the_table_has_twenty_rows_or_more() -> None:
    assert len(rows()) >= 20


@pytest.mark.parametrize(("env", "args", "code", "said"), rows(), ids=[f"{r[1]} {r[0]}"[:60] for r in rows()])
def test_a_mistake_is_one_line_and_its_code(env: str, args: str, code: int, said: str, tmp_path: Path) -> None:
    (tmp_path / "not-json.jsonl").write_text('{"schema_version": 1, "collection"\n')
    (tmp_path / "not-json.jsonl.manifest.json").write_text("{}")
    before = set(tmp_path.iterdir())
    result = run(env, args, tmp_path)
    assert result.returncode == code, result.stdout + result.stderr
    assert said in result.stdout + result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    if code != 0:
        assert set(tmp_path.iterdir()) == before, "a command that failed created files"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run("QCC_WINDOW_MAX_EVENTS=-5", "--debug settings", tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


@pytest.mark.parametrize(("error", "code"), [
    (AccessDenied("403 Forbidden"), 78),
    (StorageError("No space left on device"), 74),
    (TimeoutError(), 69),
    (ConnectionRefusedError(111, "Connection refused"), 69),
    (TransientError("503"), 69),
    (CollectionMissing("collection docs does not exist"), 66),
    (FileNotFoundError(2, "no such file", "x.jsonl"), 66),
    (PermissionError(13, "Permission denied", "/x"), 74),
    (KeyError("bug"), 70),
], ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value))
def test_each_failure_has_its_code(error: BaseException, code: int) -> None:
    status, line = failure(error, "127.0.0.1:9092")
    assert status == code, line
    assert "\n" not in line
