"""The vectors a chunk point holds: its dense vector, and a sparse one where its collection's chunks
have one (``ChunkedField.sparse_vector``). Shared by the stream's chunk stage and the bulk re-chunk."""

from __future__ import annotations

from collections.abc import Sequence

from connector.domain.documents import VectorRef
from connector.domain.operations import Sparse, Vector
from connector.domain.semantics import PointState
from connector.embedding.embedder import Embedder
from connector.settings import ChunkedField

__all__ = ["stored_chunk_vectors", "text_chunk_vectors"]


async def text_chunk_vectors(embedder: Embedder, spec: ChunkedField, texts: Sequence[tuple[str, str]],
                             dense: Sequence[Vector]) -> dict[VectorRef, dict[str, Vector]]:
    """Each (sha256, text)'s vectors by name: ``dense`` (already made, one per text), and the sparse
    model's where the chunks have a sparse vector."""
    found: dict[VectorRef, dict[str, Vector]] = {
        ("text", sha): {spec.vector: vector} for (sha, _), vector in zip(texts, dense, strict=True)}
    if spec.sparse_vector:
        model = spec.sparse_model or embedder.default_model("sparse")
        sparse = await embedder.embed(model, "sparse", [text for _, text in texts])
        for (sha, _), vector in zip(texts, sparse, strict=True):
            found["text", sha][spec.sparse_vector] = vector
    return found


def stored_chunk_vectors(point: PointState, spec: ChunkedField) -> dict[str, Vector]:
    """A stored chunk's vectors as written again (it was read with all of them: DocumentPlanner
    copies no chunk that lacks one): dense as floats, sparse as read."""
    return {name: _copied(point.vectors[name]) for name in spec.vector_names}


def _copied(vector: object) -> Vector:
    return vector if isinstance(vector, Sparse) else tuple(float(x) for x in vector)  # type: ignore[attr-defined]
