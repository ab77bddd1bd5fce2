"""A partition that moves to another worker is not replayed from far behind.

Faust forgets the offsets a worker acknowledged but had not committed yet when their
partition is revoked, so with commits only every interval the next owner replayed up to an
interval's worth of windows after each rebalance. The runner commits after each window
(pipeline.py); here the interval is a minute, so only those commits can count."""

from __future__ import annotations

from pathlib import Path

import pytest
from qdrant_client import models as qm

from tests.integration.harness import Stack, Worker, all_covered, covered_offsets, produce, read_topic, upserts
from tests.qdrant_targets import QdrantTarget

pytestmark = [pytest.mark.integration, pytest.mark.server]



@pytest.mark.parametrize("server_target", ["rest"], indirect=True)
async def test_a_partition_moved_by_a_join_is_not_replayed(kafka, model_env, tmp_path: Path,
                                                           server_target: QdrantTarget) -> None:
    client = server_target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.close()
    stack = Stack(kafka.bootstrap, tmp_path, model_env, qdrant=server_target, extra_env={
        "QCC_WINDOW_MAX_EVENTS": "10", "QCC_WINDOW_MAX_WAIT_SECONDS": "0.2", "QCC_COMMIT_INTERVAL_SECONDS": "60"})
    await stack.create_topics(partitions=2)
    topic, verifications = stack.env["QCC_PATCH_TOPIC"], stack.env["QCC_VERIFICATION_TOPIC"]
    first = Worker(stack)
    second: Worker | None = None
    try:
        sent = await produce(kafka.bootstrap, topic, upserts(0, 60))
        assert {partition for partition, _ in sent} == {0, 1}
        await read_topic(kafka.bootstrap, verifications, until=all_covered(sent), timeout=90)

        second = Worker(stack)  # joins: one of the two partitions moves to it
        await second.wait_for_line("Setting newly assigned partitions {", timeout=90)
        # Records after the rebalance, on both partitions: once they are confirmed, whatever the
        # new owner replayed (which comes before them in its partition) is confirmed too.
        sent += await produce(kafka.bootstrap, topic, upserts(60, 20))
        published = await read_topic(kafka.bootstrap, verifications, until=all_covered(sent), timeout=90)
        # assignments so far, before a worker stops (which reassigns): 2 for the first, 1 for the second
        rebalances = sum(w.output().count("Setting newly assigned partitions") for w in (first, second))
    finally:
        assert first.stop() == 0, first.output()[-3000:]
        if second is not None:
            assert second.stop() == 0, second.output()[-3000:]
    assert any(v["worker"].endswith(f":{second.process.pid}") for v in published), "no partition moved"
    confirmed: dict[tuple[int, int], list[str]] = {}
    for v in published:
        for partition, offsets in covered_offsets([v]).items():
            for offset in offsets:
                confirmed.setdefault((partition, offset), []).append(v["worker"])
    replayed = {key: workers for key, workers in sorted(confirmed.items()) if len(workers) > 1}
    # What the join must not replay: what was confirmed before it (each window is committed as
    # it is confirmed). A later rebalance may replay the windows in hand at that moment, no more
    # (at-least-once), so records sent after the join count only when no other rebalance came.
    before_join = set(sent[:60])
    assert not before_join & set(replayed), f"replayed from before the join: {dict(list(replayed.items())[:10])}"
    assert not replayed or rebalances > 3, f"{len(replayed)} offsets applied twice: {dict(list(replayed.items())[:10])}"
