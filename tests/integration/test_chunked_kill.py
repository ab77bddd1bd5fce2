"""A worker killed in the middle of a chunked document's window (after the first of the batch's
requests: some new chunks written, the stale ones still there) is exact after its restart: the
replay finds the document's chunks by its id, and leaves exactly the chunking of its latest text,
no stale chunk. On the real broker and the real server."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import pytest
from qdrant_client import models as qm
from tokenizers import Tokenizer

from connector.domain.chunking import Chunker
from connector.domain.documents import CHUNK_KEY, DOCUMENT_ID_KEY
from connector.settings import DEFAULT_DENSE_MODEL
from tests.integration.harness import Stack, Worker, all_covered, produce, read_topic
from tests.qdrant_targets import QdrantTarget, only_targets

pytestmark = pytest.mark.integration

PARAGRAPHS = [p.strip() for module in (argparse, json) for p in (module.__doc__ or "").split("\n\n") if p.strip()]
CHUNKED = {"articles": {"text_field": "body", "max_tokens": 64, "overlap_tokens": 8}}


def upsert(text: str) -> tuple[bytes, bytes]:
    return b"articles/1", json.dumps({"schema_version": 1, "collection": "articles", "op": "upsert",
                                      "points": [{"id": 1, "payload": {"body": text}}]}).encode()


def stored_shas(target: QdrantTarget) -> list[str]:
    client = target.client()
    try:
        points, _ = client.scroll("articles", scroll_filter=qm.Filter(must=[qm.FieldCondition(
            key=DOCUMENT_ID_KEY, match=qm.MatchValue(value="1"))]), limit=1000, with_payload=True)
    finally:
        client.close()
    by_index = {p.payload[CHUNK_KEY]["index"]: p.payload[CHUNK_KEY]["sha256"] for p in points if p.payload}
    return [by_index[i] for i in sorted(by_index)]


@only_targets("rest")
async def test_a_kill_between_a_documents_writes_and_its_deletes_is_exact_after_restart(
        kafka, model_env, model_paths, tmp_path: Path, qdrant_target: QdrantTarget) -> None:
    failpoints = tmp_path / "failpoints"
    failpoints.mkdir()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=qdrant_target, extra_env={
        "QCC_CHUNKED_COLLECTIONS": json.dumps(CHUNKED), "QCC_FAILPOINTS_DIR": str(failpoints),
        # ~8 KB of JSON a 384-d chunk: a window of a long document takes several requests
        "QCC_QDRANT_MAX_REQUEST_BYTES": "65536"})
    await stack.create_topics(partitions=1)
    client = qdrant_target.client()
    client.create_collection("articles", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
    client.close()
    chunker = Chunker(Tokenizer.from_file(str(Path(model_paths[DEFAULT_DENSE_MODEL]) / "tokenizer.json")), 64, 8)
    first = "\n\n".join(PARAGRAPHS)
    # the second text: a paragraph at the start (every chunk moves) and half the rest dropped (stale chunks)
    second = "\n\n".join(["Kumquats are small citrus fruits eaten whole.", *PARAGRAPHS[: len(PARAGRAPHS) // 2]])
    assert len(chunker.chunks(second)) < len(chunker.chunks(first))
    verifications = stack.env["QCC_VERIFICATION_TOPIC"]

    worker = Worker(stack)
    try:
        sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], [upsert(first)])
        await read_topic(kafka.bootstrap, verifications, until=all_covered(sent), timeout=120)
        assert stored_shas(qdrant_target) == [c.sha256 for c in chunker.chunks(first)]
        (failpoints / "crash-between-requests").touch()
        sent = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], [upsert(second)])
        deadline = time.monotonic() + 120
        while worker.process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.1)
        assert worker.process.returncode == 137, worker.output()[-3000:]
    finally:
        worker.stop()
    half_done = stored_shas(qdrant_target)
    wanted = [c.sha256 for c in chunker.chunks(second)]
    assert half_done != wanted  # applied in part: the kill came between the window's requests

    (failpoints / "crash-between-requests").unlink()
    worker = Worker(stack)
    try:
        records = await read_topic(kafka.bootstrap, verifications, until=all_covered(sent), timeout=120)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    (replayed,) = [v for v in records if v["ranges"][0]["first_offset"] == sent[0][1]]
    assert replayed["verification"]["status"] == "verified", replayed["verification"]
    assert stored_shas(qdrant_target) == wanted  # exact: the chunking of the latest text, no stale chunk
    (document,) = replayed["documents"]
    assert document["count"] == len(wanted)
    assert document["deleted"] > 0
