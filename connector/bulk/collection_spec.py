"""What a new collection may be called and hold, checked before anything is created. Pure.

The rules are the Qdrant server's own (1.18: a collection name of 1 to 255 characters without
``< > : " / \\ | ? *`` or NUL; a dense vector of 1 to 65,536 dimensions; dense and sparse vector
names unique together). Local mode checks none of them: it makes nested folders of a name with
``/`` and accepts a vector of 0 or 999,999,999 dimensions, so a collection made there could never
be copied to a server. ``.`` and ``..`` are refused too: as folder names they are the storage
itself and its parent.
"""

from __future__ import annotations

from qdrant_client import models as qm

from connector.errors import InvalidOption

MAX_NAME_LENGTH = 255
FORBIDDEN_IN_NAMES = '<>:"/\\|?*\0'
MAX_DENSE_SIZE = 65_536


def check_collection_name(name: str) -> None:
    """InvalidOption unless a Qdrant server would take ``name`` for a new collection."""
    what = f"collection name {name!r}"
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidOption(what, f"a name has 1 to {MAX_NAME_LENGTH} characters")
    bad = sorted({c for c in name if c in FORBIDDEN_IN_NAMES})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidOption(what, f"a name may not hold {shown} (Qdrant refuses any of {FORBIDDEN_IN_NAMES[:-1]!r})")
    if name in (".", ".."):
        raise InvalidOption(what, "a name is more than dots")


def distance(name: str) -> qm.Distance | None:
    """A Qdrant distance by name in any case (cosine, Cosine, COSINE); None for no distance."""
    return next((known for known in qm.Distance if known.value.lower() == name.lower()), None)


def dense_vector(spec: str) -> tuple[str, qm.VectorParams]:
    """``NAME:SIZE:DISTANCE`` as a named dense vector."""
    parts = spec.split(":")
    option = f"--dense {spec}"
    if len(parts) != 3 or not parts[0]:
        raise InvalidOption(option, "expected NAME:SIZE:DISTANCE, e.g. dense:384:Cosine")
    name, size_text, distance_name = parts
    try:
        size = int(size_text)
    except ValueError:
        raise InvalidOption(option, f"the size {size_text!r} is not a whole number") from None
    if not 1 <= size <= MAX_DENSE_SIZE:
        raise InvalidOption(option, f"the size must be from 1 to {MAX_DENSE_SIZE} (Qdrant's limit), not {size}")
    found = distance(distance_name)
    if found is None:
        raise InvalidOption(option, f"{distance_name!r} is not a distance: {', '.join(d.value for d in qm.Distance)}")
    return name, qm.VectorParams(size=size, distance=found)


NewVectors = tuple[dict[str, qm.VectorParams], dict[str, qm.SparseVectorParams]]


def new_vectors(dense: list[str], sparse: list[str]) -> NewVectors:
    """The named dense and sparse vectors of ``--dense`` and ``--sparse``; every name once."""
    vectors: dict[str, qm.VectorParams] = {}
    for spec in dense:
        name, params = dense_vector(spec)
        if name in vectors:
            raise InvalidOption(f"--dense {spec}", f"the vector {name!r} is named twice")
        vectors[name] = params
    sparse_vectors: dict[str, qm.SparseVectorParams] = {}
    for name in sparse:
        if not name:
            raise InvalidOption("--sparse", "a sparse vector needs a name")
        if name in vectors or name in sparse_vectors:
            raise InvalidOption(f"--sparse {name}", f"the vector {name!r} is named twice (dense and sparse "
                                "vectors share one set of names)")
        sparse_vectors[name] = qm.SparseVectorParams(modifier=qm.Modifier.IDF)
    return vectors, sparse_vectors
