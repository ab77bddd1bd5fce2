"""Stage 4: embed the texts (one call per model and vector name for the whole window), then
one operation per remaining event, in window order."""

from __future__ import annotations

from collections import defaultdict

from connector.domain.changes import ReembedEvent
from connector.domain.operations import (
    DEFAULT_VECTOR,
    Op,
    PointKey,
    Vector,
    VectorKind,
    op_from_patch,
    update_vectors_op,
)
from connector.domain.schema import CollectionSchema
from connector.domain.validation import vector_kind
from connector.embedding.embedder import Embedder
from connector.stream.window.items import Item, fail
from connector.stream.window.texts import Texts

__all__ = ["Vectors", "embed_texts", "operations_for"]

Vectors = dict[int, dict[PointKey, Vector]]  # event position -> point id -> vector


async def embed_texts(embedder: Embedder, schema: CollectionSchema, live: list[Item], texts: Texts) -> Vectors:
    """Vectors by event position and id; events whose model does not fit the vector fail."""
    groups: dict[tuple[str, VectorKind, str], list[tuple[int, PointKey, str]]] = defaultdict(list)
    for item in live:
        if item.error is not None or item.position not in texts:
            continue
        name = getattr(item.event, "vector_name", None) or DEFAULT_VECTOR
        kind: VectorKind = vector_kind(schema, name) or "dense"
        model = getattr(item.event, "model", None) or embedder.default_model(kind)
        for pid, text in texts[item.position].items():
            groups[(model, kind, name)].append((item.position, pid, text))
    out: Vectors = defaultdict(dict)
    by_position = {item.position: item for item in live}
    for (model, kind, name), entries in groups.items():
        vectors = await embedder.embed(model, kind, [text for _, _, text in entries])
        if kind == "dense" and vectors:
            size = len(vectors[0])  # type: ignore[arg-type]  # dense vectors are sequences of floats
            if size != schema.dense[name].size:
                message = (f"model {model!r} makes {size}-dimensional vectors; "
                           f"{name or 'the unnamed vector'} has {schema.dense[name].size}")
                for position in {pos for pos, _, _ in entries}:
                    fail(by_position[position], "vector_size_mismatch", message)
                continue
        for (position, pid, _), vector in zip(entries, vectors, strict=True):
            out[position][pid] = vector
        if kind == "dense":  # no text is cut silently: one over the model's window is named in texts_cut
            read = await embedder.chars_read(model, [text for _, _, text in entries])
            for (position, pid, text), chars in zip(entries, read, strict=True):
                if chars is not None:
                    by_position[position].cut_by_model[(pid, name)] = (len(text), chars)
    return out


def operations_for(live: list[Item], vectors: Vectors) -> list[Op]:
    """One op per event that has not failed, in window order; a re-embed without vectors has none."""
    ops: list[Op] = []
    for item in live:
        event = item.event
        if item.error is not None or event is None:
            continue
        if isinstance(event, ReembedEvent):
            own = vectors.get(item.position, {})
            if own:
                ops.append(update_vectors_op(own, event.vector_name or DEFAULT_VECTOR, item.position))
            continue
        ops.append(op_from_patch(event, item.position, vectors.get(item.position)))
    return ops
