"""The worker's garbage-collector policy: the heap it starts with is frozen, young collections are rare.

Python's cyclic collector ran ~15% of the worker's CPU on 384-d upserts (the peer bench, 20,000
events: 1,333 young, 121 middle and 11 full collections, 2.1 s of a 14 s run). Two causes:

- every full collection walked the ~180,000 objects of the imports and the loaded models, which
  never become garbage (~120 ms each);
- a young collection ran every 700 container allocations, about every event and a half, and a
  window's objects (the events' vector lists and tuples, hundreds of floats each to visit) were
  walked while still alive, window after window.

So once the models are loaded the heap is frozen (``gc.freeze``: those objects are never walked
again) and a young collection waits for 50,000 allocations, by when most of a window's objects
are freed by reference counting, which does not wait for the collector. Garbage in reference
cycles still goes: later, by at most that many allocations. Measured with the peer bench's worker
(20,000 upserts): the collector's time once started ~1.5 s -> ~0 (docs/design.md, "The collector").
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_heap"]

YOUNG_THRESHOLD = 50_000  # container allocations between young collections (Python's default: 700)
OLDER_THRESHOLD = 10  # young collections per middle one, and middle ones per full one


def settle_heap() -> int:
    """Collect once, freeze what is left (the start-up heap), and make young collections rare.
    Returns how many objects were frozen. Meant for a process that has finished starting (the
    worker, after its models are loaded): it changes the collector of the whole process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
    return gc.get_freeze_count()
