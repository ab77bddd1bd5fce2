"""Every row of docs/errors.md: a bad setup or input, the one line the command line prints and
its exit code (the CLI as a subprocess, in an empty folder).

A row names the inputs it needs by their names (docs/errors.md lists them): ``store`` is a
local-mode folder with a 50-point collection ``docs``, ``cut-mid.jsonl`` a dump cut mid-line,
and so on. They are made once per session (:func:`prepared`) and copied into the row's folder
before it runs; the folder must then hold nothing new where the command failed, inside the
copied inputs too. Nothing here needs a broker or a server (the unreachable ones are closed
loopback ports); rows whose environment names ``<broker>`` run against the session's broker in
tests/integration/test_cli_errors_broker.py, and rows on the ``store`` in test_cli_errors_store.py
(a file of their own, so that two test workers share the rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient
from qdrant_client import models as qm

from connector.bulk.export import export_collection
from connector.errors import (
    AccessDenied,
    CannotCreateOutput,
    CollectionMissing,
    InvalidInput,
    InvalidOption,
    StorageError,
    StorageInUse,
    TransientError,
)
from connector.failures import failure
from connector.qdrant import RetryingClient
from connector.schemas import SCHEMA_DIR
from connector.settings import DEFAULT_DENSE_MODEL, ChunkedField

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
CLOSED = "127.0.0.1:1"
BROKER = "<broker>"
LOCKED = "locked-store"  # a copy of store that this process holds locked while the command runs

Row = tuple[str, str, int, str]


def rows() -> list[Row]:
    """(environment, arguments, exit code, the line's telling part) of each table row."""
    found = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2].isdigit():
            env, args, code, said = (re.sub(r"^`|`$", "", c) for c in cells)
            found.append((env, args, int(code), said))
    return found


def row_id(row: Row) -> str:
    return f"{row[1]} {row[0]}"[:60]


BROKER_ROWS = [r for r in rows() if BROKER in r[0]]
STORE_ROWS = [r for r in rows() if BROKER not in r[0] and re.search(r"QCC_QDRANT_PATH=(locked-)?store\b", r[0])]
LOCAL_ROWS = [r for r in rows() if r not in BROKER_ROWS and r not in STORE_ROWS]  # STORE_ROWS: test_cli_errors_store


def environment(env: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in env.split() if "=" in pair) if env != "-" else {}


def run(env: str, args: str, cwd: Path, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("QCC_", "QDRANT_"))}
    given = {k: v for k, v in environment(env).items() if v != BROKER}
    return subprocess.run([sys.executable, "-m", "connector.cli", *shlex.split(args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**clean, "HF_HUB_OFFLINE": "1", **given, **(extra or {})})


# --- the inputs rows name --------------------------------------------------------------------

POINTS = 50
GOOD = {"collection": "docs", "op": "set_payload", "ids": [1], "payload": {"seen": True}}


def _make_store(path: Path) -> None:
    client = QdrantClient(path=str(path))
    try:
        client.create_collection("docs", vectors_config={"dense": qm.VectorParams(size=4, distance=qm.Distance.COSINE)},
                                 sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)})
        client.upsert("docs", [qm.PointStruct(
            id=i, vector={"dense": [1.0, i, 2.0, 0.5], "bm25": qm.SparseVector(indices=[1, 5], values=[0.5, i])},
            payload={"n": i, "body": f"text {i}", "tag": "a" if i % 2 else "b"}) for i in range(1, POINTS + 1)])
    finally:
        client.close()


def _export(store: Path, dump: Path, page_size: int) -> None:
    async def export() -> None:
        qdrant = RetryingClient(AsyncQdrantClient(path=str(store)))
        try:
            await export_collection(qdrant, "docs", dump, page_size=page_size, show_progress=False)
        finally:
            await qdrant.client.close()

    asyncio.run(export())


def _with_manifest_of(source: Path, dump: Path, body: bytes) -> None:
    dump.write_bytes(body)
    shutil.copy(source.with_name(source.name + ".manifest.json"), dump.with_name(dump.name + ".manifest.json"))


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every input a row may name, made once: copies go into each row's folder."""
    folder = tmp_path_factory.mktemp("inputs")
    _make_store(folder / "store")
    _export(folder / "store", folder / "docs.jsonl", page_size=256)
    _export(folder / "store", folder / "docs.jsonl.gz", page_size=10)  # a gzip member per page
    lines = (folder / "docs.jsonl").read_bytes().splitlines(keepends=True)
    _with_manifest_of(folder / "docs.jsonl", folder / "cut-line.jsonl", b"".join(lines[:30]))
    _with_manifest_of(folder / "docs.jsonl", folder / "cut-mid.jsonl", b"".join(lines[:30]) + lines[30][:7])
    altered = json.loads(lines[4])
    altered["payload"]["n"] = -1
    _with_manifest_of(folder / "docs.jsonl", folder / "altered.jsonl",
                      b"".join([*lines[:4], json.dumps(altered).encode() + b"\n", *lines[5:]]))
    packed = (folder / "docs.jsonl.gz").read_bytes()
    _with_manifest_of(folder / "docs.jsonl.gz", folder / "cut.jsonl.gz", packed[: len(packed) - 40])
    with contextlib.suppress(EOFError), gzip.open(folder / "cut.jsonl.gz") as cut:
        cut.read()
        raise AssertionError("cut.jsonl.gz is still whole")
    good = json.dumps(GOOD) + "\n"
    (folder / "good.jsonl").write_text(good)
    bad = json.dumps({**GOOD, "payload": None, "payloadd": {"seen": True}}) + "\n"
    (folder / "good-good-bad.jsonl").write_text(good + good + bad)
    (folder / "big-event.jsonl").write_text(json.dumps({**GOOD, "payload": {"blob": "x" * 2_000_000}}) + "\n")
    rechunked = ChunkedField(text_field="body", model=DEFAULT_DENSE_MODEL, max_tokens=64)
    (folder / "rechunk-ck.json").write_text(json.dumps({"kind": "rechunk", "chunking": rechunked.model_dump(
        mode="json"), "after": "1", "summary": {"documents": 1}}))  # as connector/bulk/rechunk.py writes it
    (folder / "chunked-mapping.yaml").write_text(json.dumps({"tables": {"public.articles": {
        "collection": "articles", "key": ["id"], "texts": {"body": {"chunked": True}}}}}))
    return folder


def inputs_named(env: str, args: str, prepared: Path) -> list[str]:
    """The prepared inputs a row names: an argument or a setting's value that is one's name."""
    words = [*shlex.split(args), *environment(env).values()]
    names = [w for w in dict.fromkeys(words) if re.fullmatch(r"[\w-][\w.-]*", w)]  # no path: "." is no input
    return [name for name in names if name == LOCKED or (prepared / name).exists()]


@contextlib.contextmanager
def staged(env: str, args: str, prepared: Path, cwd: Path) -> Iterator[None]:
    """The row's inputs copied into ``cwd`` (a dump with its manifest); ``locked-store`` held
    locked, as a worker holds its local-mode folder, while the row runs."""
    import portalocker

    for name in inputs_named(env, args, prepared):
        source = prepared / ("store" if name == LOCKED else name)
        if source.is_dir():
            shutil.copytree(source, cwd / name)
        else:
            shutil.copy(source, cwd / name)
            manifest = source.with_name(source.name + ".manifest.json")
            if manifest.exists():
                shutil.copy(manifest, cwd / manifest.name)
    if LOCKED not in inputs_named(env, args, prepared):
        yield
        return
    with (cwd / LOCKED / ".lock").open("r+") as lock:
        portalocker.lock(lock, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        try:
            yield
        finally:
            portalocker.unlock(lock)


def everything_in(folder: Path) -> set[Path]:
    return {path.relative_to(folder) for path in folder.rglob("*")}


def check_row(env: str, args: str, code: int, said: str, cwd: Path, prepared: Path,
              extra: dict[str, str] | None = None) -> None:
    """Run one row in ``cwd`` and hold it to its code, its line, no traceback, no "unexpected
    error", and nothing new in the folder when it failed."""
    (cwd / "not-json.jsonl").write_text('{"schema_version": 1, "collection"\n')
    (cwd / "not-json.jsonl.manifest.json").write_text("{}")
    with staged(env, args, prepared, cwd):
        before = everything_in(cwd)
        result = run(env, args, cwd, extra)
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert said in output, output
    assert "Traceback" not in result.stderr, result.stderr
    assert "unexpected error" not in output, output
    if code != 0:
        assert everything_in(cwd) == before, f"a command that failed left {sorted(everything_in(cwd) - before)}"
    if code not in (0, 1) and not result.stderr.startswith("Usage:") and not args.startswith("produce "):
        # click's usage errors come with the usage; produce lists every bad line before its last
        assert len(result.stderr.strip().splitlines()) == 1, f"more than one line:\n{result.stderr}"


# --- the tests --------------------------------------------------------------------------------


def test_the_table_has_sixty_rows_or_more() -> None:
    assert len(rows()) >= 60


def test_no_row_expects_a_bug() -> None:
    """70 is "unexpected error", a bug: no user's mistake may end there."""
    assert [r for r in rows() if r[2] == 70] == []


def test_every_input_a_row_may_name_is_described() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in ("store", LOCKED, "docs.jsonl", "cut-mid.jsonl", "cut-line.jsonl", "cut.jsonl.gz", "altered.jsonl",
                 "good.jsonl", "good-good-bad.jsonl", "big-event.jsonl", "not-json.jsonl", "rechunk-ck.json"):
        assert f"`{name}`" in text.split("| environment |")[0], f"docs/errors.md does not say what {name} is"


@pytest.mark.parametrize(("env", "args", "code", "said"), LOCAL_ROWS, ids=[row_id(r) for r in LOCAL_ROWS])
def test_a_mistake_is_one_line_and_its_code(env: str, args: str, code: int, said: str, tmp_path: Path,
                                            prepared: Path) -> None:
    check_row(env, args, code, said, tmp_path, prepared)


@pytest.mark.parametrize("args", [
    "--debug settings",
    "--debug import cut.jsonl.gz copy",  # a truncated gzip once ended as click's Abort: exit 130, an empty line
], ids=["settings", "cut-gzip"])
def test_debug_shows_the_traceback(args: str, tmp_path: Path, prepared: Path) -> None:
    env = "QCC_WINDOW_MAX_EVENTS=-5" if args.endswith("settings") else "QCC_QDRANT_PATH=store"
    with staged(env, args, prepared, tmp_path):
        result = run(env, args, tmp_path)
    assert result.returncode not in (0, 130), result.stderr
    assert "Traceback" in result.stderr


def test_schemas_are_written_where_the_command_runs(tmp_path: Path) -> None:
    """Without --out, ./schemas: never into the package's (or a checkout's) own folder."""
    published = {path: path.stat().st_mtime_ns for path in SCHEMA_DIR.glob("*.schema.json")}
    result = run("-", "schemas", tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "schemas").iterdir()) == sorted(p.name for p in published)
    assert {path: path.stat().st_mtime_ns for path in published} == published


@pytest.mark.parametrize(("error", "code"), [
    (AccessDenied("403 Forbidden"), 78),
    (StorageError("No space left on device"), 74),
    (TimeoutError(), 69),
    (ConnectionRefusedError(111, "Connection refused"), 69),
    (TransientError("503"), 69),
    (CollectionMissing("collection docs does not exist"), 66),
    (FileNotFoundError(2, "no such file", "x.jsonl"), 66),
    (PermissionError(13, "Permission denied", "/x"), 74),
    (InvalidOption("--page-size 0", "a page holds at least one point"), 64),
    (InvalidInput("d.jsonl is damaged or incomplete: line 3 is not JSON"), 65),
    (CannotCreateOutput("cannot write the dump to .: it is a folder"), 73),
    (StorageInUse("local-mode storage qdrant-data is in use by another process"), 69),
    (KeyError("bug"), 70),
], ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value))
def test_each_failure_has_its_code(error: BaseException, code: int) -> None:
    status, line = failure(error, "127.0.0.1:9092")
    assert status == code, line
    assert "\n" not in line
