"""SIGTERM while windows wait: the worker exits at once, and nothing it held is committed;
SIGTERM while a window is being applied: nobody else applies it until it is done.

Found by the scale-out fault test under load: a re-embed window waiting for earlier patches
gave up at shutdown, and the window the stream had buffered behind it was never acknowledged,
so Faust's shutdown waited for it until the worker was killed. Here a read-only API key holds
the patches (retried, never applied), so the re-embeds wait for them for as long as it lasts.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from tests.conftest import API_KEY, READ_ONLY_API_KEY
from tests.integration.harness import Stack, Worker, all_covered, covered_offsets, produce, read_topic, upserts
from tests.qdrant_targets import QdrantTarget

pytestmark = [pytest.mark.integration, pytest.mark.server]


def reembed(pid: int) -> tuple[bytes, bytes]:
    event = {"schema_version": 1, "kind": "reembed", "collection": "docs", "ids": [pid], "text_field": "text"}
    return f"docs/{pid}".encode(), json.dumps(event).encode()


async def test_sigterm_while_reembeds_wait_for_patches(kafka, model_env, tmp_path: Path,
                                                       qdrant_server_with_keys: Any) -> None:
    admin = QdrantTarget("rest", server=qdrant_server_with_keys, api_key=API_KEY)
    admin.wipe()
    client = admin.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
    client.upsert("docs", [qm.PointStruct(id=i, vector=[1.0] * 384, payload={"text": f"text {i}"}) for i in range(3)])
    stack = Stack(kafka.bootstrap, tmp_path, model_env,
                  qdrant=QdrantTarget("rest", server=qdrant_server_with_keys, api_key=READ_ONLY_API_KEY))
    await stack.create_topics(partitions=1)
    patch = {"schema_version": 1, "collection": "docs", "op": "set_payload", "ids": [0], "payload": {"v": 1}}
    sent_patch = await produce(kafka.bootstrap, stack.env["QCC_PATCH_TOPIC"], [(b"docs/0", json.dumps(patch).encode())])
    sent_reembeds = await produce(kafka.bootstrap, stack.env["QCC_REEMBED_TOPIC"], [reembed(0)])

    worker = Worker(stack, env={"QCC_LOG_LEVEL": "debug"})  # debug: the windows it takes
    try:
        deadline = time.monotonic() + 60  # the first re-embed window waits (logged after 5 s)
        while "re-embeds wait for 1 earlier patches" not in worker.output() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.2)
        assert "re-embeds wait for 1 earlier patches" in worker.output(), worker.output()[-3000:]
        # more re-embeds arrive while it waits: the stream takes them as a window behind the first one
        sent_reembeds += await produce(kafka.bootstrap, stack.env["QCC_REEMBED_TOPIC"], [reembed(1), reembed(2)])
        _, last = sent_reembeds[-1]
        await worker.wait_for_line(f"taken, its last at {stack.env['QCC_REEMBED_TOPIC']}:0:{last}", show="events taken")
    finally:
        stopped = time.monotonic()
        code = worker.stop(timeout=30)
    assert code == 0, worker.output()[-3000:]
    assert time.monotonic() - stopped < 15, "the worker waited for windows it had given up"
    assert await read_topic(kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], timeout=3) == []

    stack.qdrant = admin  # a key that may write: everything held is still there to apply
    worker = Worker(stack)
    topic = stack.env["QCC_REEMBED_TOPIC"]
    try:
        verifications = await read_topic(
            kafka.bootstrap, stack.env["QCC_VERIFICATION_TOPIC"], timeout=120,
            until=lambda rs: all_covered(sent_patch)([r for r in rs if r["topic"] != topic])
            and all_covered(sent_reembeds)([r for r in rs if r["topic"] == topic]))
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    assert sum(v["applied_event_count"] for v in verifications if v["topic"] == topic) == 3
    assert all(p.vector != [1.0] * 384 for p in client.retrieve("docs", [0, 1, 2], with_vectors=True))
    client.close()




@pytest.mark.parametrize("server_target", ["rest"], indirect=True)
async def test_partitions_revoked_while_stopping_wait_for_the_window_in_hand(kafka, model_env, tmp_path: Path,
                                                                             server_target: QdrantTarget) -> None:
    """A worker stops while its window's batch request is in flight, and a rebalance (another
    worker joining) takes a partition from it before that request ends. Faust gives partitions
    up at once when the app is stopping; the connector holds the rebalance until the window is
    applied and confirmed, so the next owner never applies it beside the worker still doing so."""
    client = server_target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    held = tmp_path / "failpoints"
    held.mkdir()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=server_target,
                  extra_env={"QCC_WINDOW_MAX_EVENTS": "40", "QCC_WINDOW_MAX_WAIT_SECONDS": "0.5"})
    await stack.create_topics(partitions=2)  # the joining worker takes one of the two
    topic, verifications = stack.env["QCC_PATCH_TOPIC"], stack.env["QCC_VERIFICATION_TOPIC"]
    first = Worker(stack, env={"QCC_FAILPOINTS_DIR": str(held)})
    second: Worker | None = None
    try:
        before = await produce(kafka.bootstrap, topic, upserts(0, 20, 1.0))
        await read_topic(kafka.bootstrap, verifications, until=all_covered(before), timeout=90)

        (held / "hold-apply").touch()
        window = await produce(kafka.bootstrap, topic, upserts(0, 20, 2.0))  # both partitions, one window
        assert {partition for partition, _ in window} == {0, 1}
        await first.wait_for_line("failpoint hold-apply: holding")  # its batch request is in flight
        first.process.send_signal(signal.SIGTERM)
        await first.wait_for_line("Wait for streams")  # stopping: Faust waits for the window...
        second = Worker(stack)  # ...and a rebalance revokes the partitions meanwhile
        await second.wait_for_line("(Re-)joining group")
        await first.wait_for_line("Revoking previously assigned partitions frozenset")
        # the revocation is held: the group cannot complete the rebalance, so the second worker
        # cannot be given a partition of the window in hand until the first lets it go
        await first.wait_for_line("partitions revoked while stopping: waiting for")
        (held / "hold-apply").unlink()
        assert first.process.wait(timeout=60) == 0, first.output()[-3000:]
        published = await read_topic(kafka.bootstrap, verifications, until=all_covered(window), timeout=90)
    finally:
        assert first.stop() == 0, first.output()[-3000:]
        if second is not None:
            assert second.stop() == 0, second.output()[-3000:]
    # Whatever the second worker applied of the held window, it applied after the first was done.
    def offsets(verification: dict[str, Any]) -> set[tuple[int, int]]:
        return {(p, o) for p, covered in covered_offsets([verification]).items() for o in covered}

    def by_first(verification: dict[str, Any]) -> bool:
        return bool(verification["worker"].endswith(f":{first.process.pid}"))

    held_window = [i for i, v in enumerate(published) if by_first(v) and offsets(v) & set(window)]
    assert held_window, "the first worker never applied the window it held"
    applied_by_first = set().union(*(offsets(published[i]) for i in held_window))
    for v in published[:max(held_window)]:
        assert by_first(v) or not offsets(v) & applied_by_first, "a window applied by two workers at once"
    assert all(v["verification"]["status"] == "verified" for v in published)
    points = client.retrieve("docs", list(range(20)), with_vectors=True)
    client.close()
    assert sorted((p.id, p.vector) for p in points) == [(i, [2.0, float(i)]) for i in range(20)]
