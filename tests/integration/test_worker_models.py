"""Where a worker finds its embedding models: QCC_MODEL_PATHS, else what
`qdrant-change-connector models` assembled in the cache folder; with neither (and no model hub)
it exits 78 at once with one line that says what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic

pytestmark = pytest.mark.integration


def _no_hub(cache: Path, tmp_path: Path) -> dict[str, str]:
    """No QCC_MODEL_PATHS, the model hub unreachable (offline), fastembed's cache empty."""
    return {"QCC_MODEL_PATHS": "{}", "QCC_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1",
            "QCC_MODEL_CACHE_DIR": str(tmp_path / "fastembed-cache"), "QCC_LOG_FORMAT": "json"}


async def test_worker_uses_the_models_assembled_in_the_cache_folder(kafka, model_paths: dict[str, str],
                                                                      tmp_path: Path) -> None:
    # model_paths assembled the models into <cache>/models: that cache folder, and nothing else
    cache = Path(next(iter(model_paths.values()))).parent.parent
    stack = Stack(kafka.bootstrap, tmp_path, _no_hub(cache, tmp_path))
    await stack.create_topics()
    local = QdrantClient(path=str(tmp_path / "qdrant"))  # local mode: made before the worker opens it
    local.create_collection("docs", vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)},
                            sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)})
    local.close()
    events = [{"schema_version": 1, "collection": "docs", "op": "upsert", "vector_name": name,
               "points": [{"id": i, "text": f"text number {i}"}]} for i, name in ((1, "dense"), (2, "bm25"))]
    sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"],
                         [(f"docs/{e['points'][0]['id']}".encode(), json.dumps(e).encode()) for e in events])
    worker = Worker(stack)
    try:
        verifications = await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"],
                                         until=all_covered(sent), timeout=180)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    assert sum(v["applied_event_count"] for v in verifications) == 2
    assert all(v["verification"]["status"] == "verified" for v in verifications), verifications
    output = worker.output()
    assert f"from {model_paths['sentence-transformers/all-MiniLM-L6-v2']}" in output
    messages = [json.loads(line)["message"] for line in output.splitlines()]  # JSON mode: every line, Faust's too
    where = f"Qdrant embedded local mode in {stack.env['QCC_QDRANT_PATH']} (QCC_QDRANT_URL is not set"
    assert any(m.startswith(where) for m in messages), messages[:20]


def test_worker_without_models_or_hub_exits_78_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCC_")}
    env.update(_no_hub(tmp_path / "empty-cache", tmp_path))
    env.update(QCC_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", QCC_QDRANT_PATH=str(tmp_path / "qdrant"),
               QCC_DATA_DIR=str(tmp_path / "state"), QCC_HTTP_PORT="0")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "connector.cli", "worker"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    print(f"exit {result.returncode} after {time.monotonic() - started:.1f} s")
    assert result.returncode == 78, result.stdout + result.stderr
    lines = [json.loads(line) for line in (result.stdout + result.stderr).splitlines()]
    assert len(lines) == 1, lines
    assert lines[0]["level"] == "critical"
    assert "qdrant-change-connector models" in lines[0]["message"]
    assert "QCC_MODEL_PATHS" in lines[0]["message"]
    assert str(tmp_path / "empty-cache" / "models") in lines[0]["message"]
