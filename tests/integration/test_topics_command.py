"""``topics`` on a real broker: creates the four topics as asked, leaves existing ones alone
(and says so, with their partitions), and says what the broker refused (a replication factor
beyond its brokers) instead of letting the broker's auto-creation make them with its defaults."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

pytestmark = pytest.mark.integration


def topics_env(bootstrap: str, suffix: str) -> dict[str, str]:
    return {"QCC_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "QCC_PATCH_TOPIC": f"p-{suffix}",
            "QCC_REEMBED_TOPIC": f"r-{suffix}", "QCC_VERIFICATION_TOPIC": f"v-{suffix}",
            "QCC_DEAD_LETTER_TOPIC": f"d-{suffix}", "QCC_CONSUMER_GROUP": f"g-{suffix}"}


def run_topics(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QCC_")}
    return subprocess.run([sys.executable, "-m", "connector.cli", "topics", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=False)


async def described(bootstrap: str, names: list[str]) -> dict[str, tuple[int, int]]:
    """topic -> (partitions, replicas of partition 0), for the topics that exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        found = await admin.describe_topics([n for n in names if n in existing]) if existing & set(names) else []
    finally:
        await admin.close()
    return {t["topic"]: (len(t["partitions"]), len(t["partitions"][0]["replicas"])) for t in found}


async def test_topics_are_created_as_asked_or_the_refusal_is_said(kafka) -> None:
    suffix = uuid.uuid4().hex[:8]
    env = topics_env(kafka.bootstrap, suffix)
    names = [env[k] for k in ("QCC_PATCH_TOPIC", "QCC_REEMBED_TOPIC", "QCC_VERIFICATION_TOPIC",
                              "QCC_DEAD_LETTER_TOPIC")]

    refused = await asyncio.to_thread(run_topics, env, "--partitions", "3", "--replication-factor", "3")
    assert refused.returncode == 78, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "InvalidReplicationFactorError" in said, said
    assert "--replication-factor" in said, said
    assert len(said.strip().splitlines()) == 1, said
    assert await described(kafka.bootstrap, names) == {}, "a refused topic exists (the broker's defaults)"

    made = await asyncio.to_thread(run_topics, env, "--partitions", "3")
    assert made.returncode == 0, made.stdout + made.stderr
    assert await described(kafka.bootstrap, names) == dict.fromkeys(names, (3, 1))

    again = await asyncio.to_thread(run_topics, env, "--partitions", "5")
    assert again.returncode == 0, again.stdout + again.stderr
    said = again.stdout + again.stderr
    assert "nothing (all exist)" in said, said
    kept = f"{', '.join(names)} exist with 3 partitions, not changed to 5 (--partitions is for new topics)"
    assert kept in said, said
    assert await described(kafka.bootstrap, names) == dict.fromkeys(names, (3, 1))
