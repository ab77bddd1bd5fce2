"""Workers scaled out get partitions: Faust's own assignor, with the app's settings.

The assignor keeps what each member held and, for a partition to place, prefers a member
holding its standby replica. With Faust's default of one standby, a third worker joining two
that had split four partitions got none; the connector has no tables and asks for none."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.assignor.client_assignment import CopartitionedAssignment
from faust.assignor.copartitioned_assignor import CopartitionedAssignor

from connector.settings import Settings
from connector.stream.app import create_app

TOPICS = {"patches", "reembeds"}  # copartitioned: partition p of both goes to one worker


def assign(held: dict[str, CopartitionedAssignment], members: list[str], partitions: int,
           replicas: int) -> dict[str, CopartitionedAssignment]:
    """One rebalance: members keep what they held (as a member's metadata tells the leader)."""
    current = {m: held.get(m) or CopartitionedAssignment(actives=set(), standbys=set(), topics=set(TOPICS))
               for m in members}
    return dict(CopartitionedAssignor(topics=TOPICS, cluster_asgn=current, num_partitions=partitions,
                                      replicas=replicas).get_assignment())


@pytest.mark.parametrize("partitions", [3, 4, 6, 8])
@pytest.mark.parametrize("steps", [
    [["a"], ["a", "b"], ["a", "b", "c"]],  # one at a time (the scale-out test's joins, when they miss each other)
    [["a"], ["a", "b", "c"]],
    [["a", "b"], ["a", "b", "c"]],
    [["a", "b", "c"], ["a", "c"], ["a", "c", "d"]],  # one leaves, another joins
])
def test_every_worker_gets_partitions_as_workers_join(tmp_path: Path, partitions: int, steps: list[list[str]]) -> None:
    app = create_app(Settings(data_dir=tmp_path / "state", qdrant_path=tmp_path / "qdrant"))
    held: dict[str, CopartitionedAssignment] = {}
    for members in steps:
        held = assign(held, members, partitions, app.conf.table_standby_replicas)
        actives = {m: sorted(a.actives) for m, a in held.items()}
        assert sorted(p for ps in actives.values() for p in ps) == list(range(partitions)), actives
        assert all(actives.values()), f"a worker got no partition: {actives}"
        assert max(map(len, actives.values())) - min(map(len, actives.values())) <= 1, actives
