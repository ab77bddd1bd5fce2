"""The worker's collector policy (connector/heap.py), in a child process: it changes the whole process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.quick

# A window's worth of event-like objects, alive together, then freed; collections are counted.
PROBE = textwrap.dedent("""
    import gc, json, sys
    from connector.heap import YOUNG_THRESHOLD, settle_heap
    startup = [{"name": str(i), "parts": [i, (i, float(i))]} for i in range(50_000)]  # lives on
    names = {0: "young", 1: "middle", 2: "full"}
    collections = {"young": 0, "middle": 0, "full": 0}
    def count(phase, info):
        if phase == "stop":
            collections[names[info["generation"]]] += 1
    frozen = settle_heap() if sys.argv[1] == "settled" else 0
    gc.callbacks.append(count)
    for window in range(20):
        events = [{"id": i, "vector": [float(i)] * 384, "payload": {"seq": i}} for i in range(500)]
        del events
    print(json.dumps({"frozen": frozen, "threshold": gc.get_threshold(), **collections}))
""")


def _run(mode: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)


def test_settled_heap_is_frozen_and_young_collections_are_rare() -> None:
    default, settled = _run("default"), _run("settled")
    assert settled["frozen"] >= 50_000  # the start-up objects are out of every collection's walk
    assert settled["threshold"][0] == 50_000
    # 20 windows of 500 events, 1,500 containers alive at once: a young collection in each by default
    # (Python 3.10-3.12; 3.13.0's default collector showed none here, so the baseline is not compared there)
    if sys.version_info < (3, 13):
        assert default["young"] >= 10
    assert settled["young"] <= 2
    assert settled["full"] == 0
