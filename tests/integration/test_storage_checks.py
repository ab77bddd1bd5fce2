"""A local-mode folder that cannot be written is refused at start, with the reason (exit 78).

Mid-stream storage failures (a full disk) are the fault suite's ``disk-full`` scenario.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from connector.errors import ConfigurationError
from connector.qdrant.client import check_local_storage


def test_a_folder_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigurationError, match="not writable"):
        check_local_storage(tmp_path / "file" / "qdrant")


def test_worker_refuses_read_only_storage(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    worker = [sys.executable, "-m", "connector.cli", "worker"]
    if os.geteuid() != 0:
        folder.chmod(0o500)
        command = worker
    elif shutil.which("unshare"):  # root ignores file modes: a read-only mount in a private namespace
        command = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs -o ro tmpfs "{folder}" && exec "$@"', "sh", *worker]
    else:
        pytest.skip("root without unshare: no way to make a read-only folder here")
    env = {**os.environ, "QCC_QDRANT_PATH": str(folder / "qdrant"), "QCC_HTTP_PORT": "0",
           "QCC_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}  # never reached: the check comes first
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    if "mount:" in done.stderr or "unshare:" in done.stderr:
        pytest.skip(f"no private read-only mount here: {done.stderr.strip()[:200]}")
    assert done.returncode == 78, done.stderr[-2000:]
    message = " ".join(done.stderr.split())  # the console wraps long lines
    assert "is not writable: Read-only file system" in message
