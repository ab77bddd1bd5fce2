"""``audit --document``, on a real broker and a real worker: which batches wrote a chunked document's
chunk sets, the digest of the one it has now (recomputed here from the chunk points), and with
``--offset`` the chunk set one source offset's batch left, from the trail alone; then a later delete
by filter that removes its chunks (filter events list no documents): not proven, the event named
(the other answers: tests/unit/test_audit_documents.py)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.domain.chunking import chunk_set_digest
from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic
from tests.integration.test_chunked_kill import stored_shas
from tests.qdrant_targets import QdrantTarget

pytestmark = pytest.mark.integration

CHUNKED = {"articles": {"text_field": "body", "max_tokens": 64, "overlap_tokens": 8}}
PARAGRAPHS = [p.strip() for p in (argparse.__doc__ or "").split("\n\n") if p.strip()]


def event(op: str, doc: int, **fields: Any) -> tuple[bytes, bytes]:
    return f"articles/{doc}".encode(), json.dumps({"schema_version": 1, "collection": "articles", "op": op,
                                                   **fields}).encode()


def upsert(doc: int, text: str) -> tuple[bytes, bytes]:
    tenant = "acme" if doc == 1 else "other"
    return event("upsert", doc, points=[{"id": doc, "payload": {"body": text, "tenant": tenant}}])


def covers(batch: dict[str, Any], offset: int) -> bool:
    return any(first <= offset <= last for _, first, last in batch["ranges"])


def audit(stack: Stack, *args: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "connector.cli", "audit", "--json", *args],
                            env={**os.environ, **stack.env}, capture_output=True, timeout=120, check=False)
    assert result.returncode in (0, 1), result.stderr.decode()[-3000:]
    return result.returncode, json.loads(result.stdout)


async def test_audit_names_the_batches_that_wrote_a_documents_chunk_sets(kafka, model_env, tmp_path: Path) -> None:
    target = QdrantTarget("local", path=tmp_path / "qdrant")
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=target,  # a delete by filter of most points
                  extra_env={"QCC_CHUNKED_COLLECTIONS": json.dumps(CHUNKED), "QCC_FILTER_MAX_SHARE": "1"})
    await stack.create_topics(partitions=1)
    client = target.client()
    client.create_collection("articles", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
    client.close()
    topic, verifications = stack.env["QCC_PATCH_TOPIC"], stack.env["QCC_VERIFICATION_TOPIC"]

    worker = Worker(stack)
    try:  # document 1 written, then (once confirmed) edited beside a patch of document 2
        first = await produce(kafka.bootstrap, topic, [upsert(1, "\n\n".join(PARAGRAPHS)), upsert(2, PARAGRAPHS[0])])
        await read_topic(kafka.bootstrap, verifications, until=all_covered(first), timeout=120)
        second = await produce(kafka.bootstrap, topic, [upsert(1, "\n\n".join(PARAGRAPHS[:3])),
                                                        event("set_payload", 2, ids=[2], payload={"tag": "x"})])
        await read_topic(kafka.bootstrap, verifications, until=all_covered(first + second), timeout=120)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    shas = stored_shas(target)  # document 1's chunks, in order

    code, report = audit(stack, "--document", "articles/1")
    assert code == 0, report
    assert report["proven"]
    assert report["verdict"].endswith("verified")
    written = [b for b in report["batches"] if b["listed"]]
    assert len(written) == 2  # the batches of its two upserts, in publish order
    assert [covers(b, offset) for b, (_, offset) in zip(written, [first[0], second[0]], strict=True)] == [True, True]
    assert report["final"]["digest"] == chunk_set_digest(shas)  # the chunks it has now
    assert report["final"]["count"] == len(shas) < written[0]["count"]
    assert report["final"]["deleted"] == written[0]["count"] - len(shas)

    # the chunk set offset N's batch left: the first version of document 1
    code, at_first = audit(stack, "--document", "articles/1", "--offset", str(first[0][1]))
    assert code == 0
    assert at_first["final"] == written[0]

    # a later delete by filter removes document 1's chunks; it is planned without documents: no batch lists 1
    worker = Worker(stack)
    try:
        acme = {"must": [{"key": "tenant", "match": {"value": "acme"}}]}
        third = await produce(kafka.bootstrap, topic, [event("delete", 1, filter=acme)])
        await read_topic(kafka.bootstrap, verifications, until=all_covered(third), timeout=120)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    assert stored_shas(target) == []  # what the old answer called "verified" is gone
    (partition, offset), = third
    code, after = audit(stack, "--document", "articles/1")
    assert code == 1, after
    assert not after["proven"]
    assert after["final"] == report["final"]  # the last batch that lists it: still batch 2
    assert f"applied a delete by filter at offset {partition}:{offset} that matched {len(shas)} points" in \
        after["verdict"]
    assert after["verdict"].endswith("and may have changed it: not proven")
    code, at_delete = audit(stack, "--document", "articles/1", "--offset", str(offset))
    assert code == 1
    assert (at_delete["proven"], at_delete["final"]) == (False, None)
    assert at_delete["verdict"].endswith("it may have changed document articles/1; not proven")
