"""The dump format and per-point digests. Pure: no IO beyond the file objects it is given.

A dump is JSON Lines, one point per line: ``{"id", "payload", "vector"}``, where ``vector``
maps names to a dense list or ``{"indices", "values"}`` ("" is the unnamed vector). Beside
it, ``<dump>.manifest.json`` holds the collection's info as Qdrant reported it (``collection``:
its whole configuration and payload indexes, see :mod:`connector.bulk.collection_config`), its
vector configuration alone (``config``, all that older dumps carry), the point count, the
digest of every point, the filter used and the tool version.

A point's digest is sha256 of its canonical JSON: keys sorted, dense values rounded to
float32 precision (6 significant digits) so that a round trip through Qdrant, which stores
float32, keeps the digest; sparse vectors sorted by index.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

from qdrant_client import models as qm

from connector.domain.operations import DEFAULT_VECTOR

MANIFEST_SUFFIX = ".manifest.json"


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def canonical_vectors(vectors: Any, precise: bool = False) -> dict[str, Any]:
    """Vectors of a record (list, dict of lists/sparse) in the dump's canonical form.

    ``precise`` keeps every digit (what the dump stores); otherwise values are rounded to
    float32 precision (what the digest hashes)."""
    rnd = float if precise else _round
    if vectors is None:
        return {}
    if isinstance(vectors, list):
        vectors = {DEFAULT_VECTOR: vectors}
    out: dict[str, Any] = {}
    for name, given in vectors.items():
        value = {"indices": given.indices, "values": given.values} if isinstance(given, qm.SparseVector) else given
        if isinstance(value, dict):
            pairs = sorted(zip(value["indices"], value["values"], strict=True))
            out[name] = {"indices": [int(i) for i, _ in pairs], "values": [rnd(v) for _, v in pairs]}
        else:
            out[name] = [rnd(v) for v in value]
    return out


def point_line(record: qm.Record) -> dict[str, Any]:
    return {"id": record.id, "payload": record.payload or {}, "vector": canonical_vectors(record.vector, precise=True)}


def digest(line: dict[str, Any]) -> str:
    body = {"payload": line.get("payload") or {}, "vector": canonical_vectors(line.get("vector"))}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def id_key(point_id: Any) -> str:
    """Point ids as manifest keys (JSON object keys are strings)."""
    return json.dumps(point_id)


def open_dump(path: Path, mode: Literal["r", "w", "a"]) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.GzipFile(path, mode), encoding="utf-8")  # what gzip.open does in text mode
    return path.open(mode, encoding="utf-8")


def read_dump(path: Path) -> Iterator[dict[str, Any]]:
    with open_dump(path, "r") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def manifest_path(dump: Path) -> Path:
    return dump.with_name(dump.name + MANIFEST_SUFFIX)


def cosine_names(config: dict[str, Any]) -> set[str]:
    """The dense vectors of a :func:`vectors_config` whose distance is cosine (Qdrant stores them
    normalised: a copy's values are the source's divided by its length)."""
    return {name for name, params in config.get("dense", {}).items() if params.get("distance") == "Cosine"}


def vectors_config(info: qm.CollectionInfo) -> dict[str, Any]:
    """The collection's vector configuration as JSON, enough to create a copy."""
    params = info.config.params
    vectors: Any = params.vectors
    dense = (
        {DEFAULT_VECTOR: vectors.model_dump(mode="json", exclude_none=True)}
        if isinstance(vectors, qm.VectorParams)
        else {k: v.model_dump(mode="json", exclude_none=True) for k, v in (vectors or {}).items()}
    )
    sparse = {k: v.model_dump(mode="json", exclude_none=True) for k, v in (params.sparse_vectors or {}).items()}
    return {"dense": dense, "sparse": sparse}


def create_collection_args(config: dict[str, Any]) -> dict[str, Any]:
    """Arguments of ``create_collection`` from :func:`vectors_config` output."""
    dense = {k: qm.VectorParams.model_validate(v) for k, v in config["dense"].items()}
    vectors: Any = dense[DEFAULT_VECTOR] if set(dense) == {DEFAULT_VECTOR} else dense
    sparse = {k: qm.SparseVectorParams.model_validate(v) for k, v in config["sparse"].items()} or None
    return {"vectors_config": vectors, "sparse_vectors_config": sparse}
