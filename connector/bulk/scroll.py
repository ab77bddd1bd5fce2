"""Scroll pages, progress bars and resumable checkpoints shared by the bulk tools."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class PointsProgress:
    """A progress bar with points done, points/s, elapsed time and ETA (off when not wanted)."""

    def __init__(self, description: str, total: int | None, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7} points/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self._task = self._progress.add_task(description, total=total, rate="-")
        self._started = time.monotonic()
        self.done = 0

    def __enter__(self) -> PointsProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def advance(self, points: int) -> None:
        self.done += points
        rate = self.done / max(time.monotonic() - self._started, 1e-9)
        self._progress.update(self._task, advance=points, rate=f"{rate:.0f}")

    def skip_to(self, points: int) -> None:
        """Count points done by an earlier run (resume) without counting them in the rate."""
        self._progress.update(self._task, completed=points)


class Checkpoint:
    """A small JSON file, replaced atomically, that lets a run resume after its last page."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        state: dict[str, Any] = json.loads(self.path.read_text())
        return state

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

