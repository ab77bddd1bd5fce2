"""Coverage-guided fuzzing of the parser and planner with atheris (libFuzzer).

    .venv/bin/python -m tests.unit.fuzz_parser -atheris_runs=100000

Each input is raw record bytes; the first byte picks the topic. The parser must answer an
event or a rejection and never raise; an accepted patch must become an op the planner can
plan alone and next to itself. ``test_fuzz_atheris.py`` runs it briefly in the suite.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from connector.domain.changes import ChangeEvent, FenceRecord, Rejection, parse_change
    from connector.domain.operations import normalize_id, op_from_patch
    from connector.domain.planner import plan


def one_input(data: bytes) -> None:
    if not data:
        return
    expect = "patch" if data[0] % 2 == 0 else "reembed"
    result = parse_change(data[1:], expect=expect, max_event_bytes=4096, max_ids_per_event=50)
    if not isinstance(result, (ChangeEvent, FenceRecord, Rejection)):
        raise AssertionError(f"parse_change returned {type(result).__name__}")
    if isinstance(result, Rejection):
        if not (result.code and result.message):
            raise AssertionError(f"a rejection without a reason: {result!r}")
        return
    if expect == "patch" and not isinstance(result, FenceRecord) and getattr(result, "op", None):
        # upsert points given as text get their vectors from the embedder; stand in a vector
        texts = {normalize_id(p.id): (0.0,) for p in getattr(result, "points", None) or [] if getattr(p, "text", None)}
        op = op_from_patch(result, 0, texts)  # type: ignore[arg-type]
        plan([op, op_from_patch(result, 1, texts)])  # type: ignore[arg-type]


EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"


def seed_corpus(folder: Path) -> Path:
    """The schema examples, valid and invalid, one file each, prefixed with their topic byte."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in EXAMPLES.glob("*.jsonl"):
        prefix = b"\x00" if source.name.startswith("patch") else b"\x01"
        for n, line in enumerate(source.read_bytes().splitlines()):
            (folder / f"{source.stem}-{n}").write_bytes(prefix + line)
    return folder


def main() -> None:
    argv = list(sys.argv)
    if not any(not arg.startswith("-") for arg in argv[1:]):  # no corpus folder given: seed one
        argv.append(str(seed_corpus(Path(tempfile.mkdtemp(prefix="qcc-fuzz-")))))
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
