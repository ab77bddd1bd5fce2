"""No record may stop the stream: a record that breaks a stage is found, dead-lettered, passed.

Real inputs break parsing (not JSON) and validation (a wrong vector size), which the pipeline
rejects on purpose; for the stages where no real breaking input is known (planning, embedding,
the Qdrant request, verification) the ``poison-<stage>`` failpoints raise, as a bug would, for
records carrying a marker. Without quarantine each of them exits the worker and every restart
replays the same window: a crash loop.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

STAGES = ("validate", "plan", "embed", "apply", "verify")


def patch(pid: int, payload: dict[str, Any]) -> tuple[bytes, bytes]:
    event = {"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": [pid], "payload": payload}
    return f"docs/{pid}".encode(), json.dumps(event).encode()


def upsert_text(pid: int, text: str) -> tuple[bytes, bytes]:
    event = {"schema_version": 1, "collection": "docs", "op": "upsert", "points": [{"id": pid, "text": text,
                                                                                   "payload": {"text": text}}]}
    return f"docs/{pid}".encode(), json.dumps(event).encode()


def records_value(record: tuple[bytes, bytes]) -> Any:
    return json.loads(record[1])["payload"]["n"]


async def test_records_that_break_each_stage_are_quarantined(kafka, model_env, tmp_path: Path,
                                                             qdrant_target: QdrantTarget) -> None:
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    for stage in STAGES:
        (failpoints / f"poison-{stage}").write_text(f"POISON-{stage.upper()}")
    client = qdrant_target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
    client.upsert("docs", [qm.PointStruct(id=i, vector=[0.1] * 384, payload={}) for i in range(200)])
    client.close()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target,
                  extra_env={"QCC_FAILPOINTS_DIR": str(failpoints)})
    await stack.create_topics(partitions=2)
    rng = random.Random(7)
    records: list[tuple[bytes, bytes]] = []
    poison: dict[int, str] = {}  # index in records -> expected dead-letter code
    last: dict[int, int] = {}
    for i in range(1200):
        pid = rng.randrange(200)
        roll = rng.random()
        if roll < 0.01:
            records.append((b"docs/x", b"{not json"))
            poison[i] = "invalid_json"
        elif roll < 0.02:
            records.append(
                (
                    f"docs/{pid}".encode(),
                    json.dumps(
                        {
                            "schema_version": 1,
                            "collection": "docs",
                            "op": "upsert",
                            "points": [{"id": pid, "vector": [1, 2]}],
                        }
                    ).encode(),
                )
            )
            poison[i] = "vector_size_mismatch"
        elif roll < 0.07:
            stage = STAGES[int((roll - 0.02) / 0.01)]
            record = (
                upsert_text(pid, f"text POISON-{stage.upper()}")
                if stage == "embed"
                else patch(pid, {"n": f"POISON-{stage.upper()}"})
            )
            records.append(record)
            poison[i] = "poison_record"
            if stage == "verify":  # it broke after its batch was applied: its patch is in Qdrant
                last[pid] = i
        else:
            records.append(patch(pid, {"n": i}))
            last[pid] = i
    sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], records)
    worker = Worker(stack)
    try:
        await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], until=all_covered(sent), timeout=240)
        dead = await read_topic(kafka.bootstrap, stack.env["QCC_DEAD_LETTER_TOPIC"], timeout=5)
    finally:
        assert worker.stop() == 0, worker.output()[-4000:]  # alive throughout: no exit, no restart
    by_offset = {(d["source"]["partition"], d["source"]["offset"]): d["error"]["code"] for d in dead}
    expected = {sent[i]: code for i, code in poison.items()}
    assert by_offset == expected
    assert set(expected.values()) >= {"invalid_json", "vector_size_mismatch", "poison_record"}
    messages = " ".join(d["error"]["message"] for d in dead if d["error"]["code"] == "poison_record")
    assert all(f"poison-{stage}" in messages for stage in STAGES), messages
    client = qdrant_target.client()
    payloads = {p.id: p.payload for p in client.scroll("docs", limit=300)[0]}
    client.close()
    assert "failed in stage verify (verification, after its operations were applied)" in messages
    # every healthy patch applied, in order: each point holds its last value
    values = {pid: payloads[pid].get("n") for pid in last}
    assert values == {pid: records_value(records[i]) for pid, i in last.items()}
