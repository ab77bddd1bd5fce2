"""The fault suite's worker scenario on the cluster: workers SIGKILLed and restarted mid-stream
while they write replicated collections (6 shards x 2 replicas), over REST and gRPC; the runner's checks
(tests/faults/runner.py) hold: every record applied exactly as the model says or dead-lettered
for its own fault, every offset verified, the final state equal to the reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.dev.qdrant_cluster import QdrantCluster
from connector.embedding.embedder import Embedder
from connector.settings import Settings
from tests.faults.runner import run_scenario
from tests.faults.test_fault_suite import SEED, assert_sound

pytestmark = [pytest.mark.integration, pytest.mark.server]

EVENTS = 1500
FAULTS = 4  # one of each kind of kill


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
async def test_worker_kills_on_replicated_collections(kafka, model_env, model_paths, tmp_path: Path,
                                                      qdrant_cluster: QdrantCluster, protocol: str) -> None:
    report = await run_scenario("kills", bootstrap=kafka.bootstrap, model_env=model_env, workdir=tmp_path,
                                seed=SEED, events=EVENTS, faults=FAULTS,
                                embedder=Embedder(Settings(model_paths=model_paths)), qdrant=protocol,
                                server=qdrant_cluster.nodes[0],
                                layout={"shard_number": 6, "replication_factor": 2})
    assert_sound(report, FAULTS)
