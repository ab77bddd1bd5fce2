"""A worker whose settings cannot work, or whose agent crashes, ends with one line and its code
instead of crash-looping; settings that do nothing as given are one warning each, and the worker
runs. Real worker processes and a real broker (the session's)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from connector.dev.broker import KafkaBroker
from tests.integration.harness import Stack, Worker, produce, read_topic, stream_through, upserts
from tests.unit.test_setting_checks import web_server

pytestmark = pytest.mark.integration


def _exit_code(worker: Worker, timeout: float) -> int:
    """The worker's exit code; a worker still running after ``timeout`` is stopped and fails the test."""
    try:
        return worker.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        worker.stop(timeout=10)
        raise AssertionError(f"the worker did not exit within {timeout} s:\n{worker.output()[-3000:]}") from None


def _lines(worker: Worker) -> list[dict[str, Any]]:
    return [json.loads(line) for line in worker.output().splitlines()]


def _stack(kafka: KafkaBroker, tmp_path: Path, model_env: dict[str, str], **env: str) -> Stack:
    return Stack(kafka.bootstrap, tmp_path, model_env, extra_env={"QCC_LOG_FORMAT": "json", **env})


async def test_a_qdrant_url_typo_ends_the_worker_within_seconds(kafka: KafkaBroker, model_env: dict[str, str],
                                                                tmp_path: Path) -> None:
    # the broker answers: the worker used to join the group, and its agents crashed in a loop (430 lines in 46 s)
    stack = _stack(kafka, tmp_path, model_env, QCC_QDRANT_URL="htp://127.0.0.1:1")
    started = time.monotonic()
    worker = Worker(stack)
    code = _exit_code(worker, timeout=60)
    elapsed = time.monotonic() - started
    assert code == 78, worker.output()[-3000:]
    assert worker.output().splitlines() == [
        ("error: invalid setting: QCC_QDRANT_URL=htp://127.0.0.1:1: the scheme must be http or https, not 'htp' (e.g. "
        "http://qdrant:6333 or https://qdrant.example.com) (qdrant-change-connector settings prints every setting)")]
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert not (tmp_path / "state").exists()


async def test_an_agent_that_crashes_ends_the_worker(kafka: KafkaBroker, model_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    # failpoint agent-crash: each agent's body raises as it starts, as a bug would; Faust restarted it forever
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    (failpoints / "agent-crash").touch()
    stack = _stack(kafka, tmp_path, model_env, QCC_FAILPOINTS_DIR=str(failpoints))
    await stack.create_topics()
    worker = Worker(stack)
    assert _exit_code(worker, timeout=120) == 70, worker.output()[-3000:]
    lines = _lines(worker)
    critical = [line for line in lines if line["level"] == "critical"]
    assert len(critical) == 1, critical
    assert "agent crashed (RuntimeError: failpoint: agent-crash)" in critical[0]["message"], critical
    assert [line for line in lines if "exception" in line] == critical  # its traceback, once
    assert not [line for line in lines if "Restarting" in line["message"] or "Crashed" in line["message"]]


async def test_a_url_that_is_not_qdrant_ends_the_worker_and_dead_letters_nothing(
        kafka: KafkaBroker, model_env: dict[str, str], tmp_path: Path) -> None:
    with web_server(ok=False) as url:
        stack = _stack(kafka, tmp_path, model_env, QCC_QDRANT_URL=url)
        await stack.create_topics()
        await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], upserts(0, 3))
        worker = Worker(stack)
        code = _exit_code(worker, timeout=120)
    assert code == 78, worker.output()[-3000:]
    critical = [line for line in _lines(worker) if line["level"] == "critical"]
    assert len(critical) == 1, critical
    assert "which no Qdrant server does" in critical[0]["message"], critical
    assert "exception" not in critical[0]  # a setting: one line, no traceback
    assert await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=3) == []


async def test_each_warning_is_said_once_and_the_worker_runs(kafka: KafkaBroker, model_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    stack = _stack(kafka, tmp_path, model_env, QCC_QDRANT_URI="http://qdrant:6333",
                   QCC_RETRY_INITIAL_SECONDS="5")  # the stack's QCC_RETRY_MAX_SECONDS is 1
    local = QdrantClient(path=str(tmp_path / "qdrant"))
    local.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.EUCLID))
    local.close()
    await stack.create_topics()
    verifications, worker = await stream_through(stack, upserts(0, 5))
    assert verifications
    said = [line["message"] for line in _lines(worker) if line["level"] == "warning"]
    for warning in ("QCC_QDRANT_URI is not a setting and is ignored: did you mean QCC_QDRANT_URL?",
                    ("QCC_RETRY_INITIAL_SECONDS=5 is above QCC_RETRY_MAX_SECONDS=1: backoffs never grow (the first "
                    "should be the smaller)")):
        assert said.count(warning) == 1, said
