"""fastembed behind a small interface: texts in, dense or sparse vectors out, off the event loop.

Models are named as fastembed names them (``sentence-transformers/all-MiniLM-L6-v2``,
``Qdrant/bm25``). Each is loaded from the first of: the folder ``Settings.model_paths``
(QCC_MODEL_PATHS) names for it; the folder ``qdrant-change-connector models`` assembled for it
in the cache folder (:mod:`connector.embedding.offline_model`); the model hub.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, overload

from tokenizers import Tokenizer

from connector import metrics
from connector.domain.chunking import Chunk, Chunker
from connector.domain.operations import Sparse, Vector, VectorKind
from connector.domain.semantics import text_at
from connector.embedding.offline_model import assembled_models, models_dir
from connector.errors import ConfigurationError
from connector.failpoints import Failpoints
from connector.settings import Settings
from connector.stages import Stage

log = logging.getLogger(__name__)

__all__ = ["Embedder", "VectorKind", "load_model"]


# Texts per model call. fastembed's default, 256, lets onnxruntime's arena grow to what a batch
# of 256 full windows needs and keep it: 240 chunks of 256 tokens (all-MiniLM-L6-v2) peaked at
# 5.8 GiB resident in 31.5 s, at 32 a batch 1.6 GiB in 28.4 s (one run each, side by side).
EMBED_BATCH = 32


class Embedder:
    """Loads each model once, on first use, and embeds batches in a worker thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._models: dict[tuple[str, VectorKind], Any] = {}
        self._lock = threading.Lock()
        self._chunkers: dict[tuple[str, int, int], Chunker] = {}
        self._failpoints = Failpoints(settings.failpoints_dir)
        # one thread: onnxruntime already uses the cores, and one call per window is the design
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    def default_model(self, kind: VectorKind) -> str:
        return self._settings.dense_model if kind == "dense" else self._settings.sparse_model

    def is_allowed(self, model: str) -> bool:
        return model in self._settings.models_allowed()

    @overload
    async def embed(self, model: str, kind: Literal["dense"], texts: Sequence[str]) -> list[tuple[float, ...]]: ...
    @overload
    async def embed(self, model: str, kind: Literal["sparse"], texts: Sequence[str]) -> list[Sparse]: ...
    @overload
    async def embed(self, model: str, kind: VectorKind, texts: Sequence[str]) -> list[Vector]: ...

    async def embed(
        self, model: str, kind: VectorKind, texts: Sequence[str]
    ) -> list[Vector] | list[tuple[float, ...]] | list[Sparse]:
        """Embed ``texts`` with one model call, in the embedding thread: dense vectors as tuples,
        sparse ones as :class:`Sparse`."""
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        vectors = await loop.run_in_executor(self._executor, self.embed_sync, model, kind, list(texts))
        metrics.EMBED_SECONDS.labels(model).observe(time.monotonic() - started)
        metrics.TEXTS_EMBEDDED.labels(model).inc(len(texts))
        return vectors

    async def embed_payload_texts(self, model: str, kind: VectorKind, records: Sequence[Any],
                                  text_field: str) -> dict[Any, Vector]:
        """The vectors of the points among ``records`` (Qdrant records) whose payload has a
        text at ``text_field``, by point id; points without one are left out. One model call."""
        texts = {r.id: t for r in records if (t := text_at(r.payload or {}, text_field)) is not None}
        return dict(zip(texts, await self.embed(model, kind, list(texts.values())), strict=True))

    def embed_sync(self, model: str, kind: VectorKind, texts: list[str]) -> list[Vector]:
        encoder = self._load(model, kind)
        self._failpoints.crash_if_active("crash-while-embedding")
        self._failpoints.poison(Stage.EMBED, texts)
        if kind == "dense":
            return [tuple(float(x) for x in vec) for vec in encoder.embed(texts, batch_size=EMBED_BATCH)]
        return [
            Sparse(tuple(int(i) for i in emb.indices), tuple(float(v) for v in emb.values))
            for emb in encoder.embed(texts, batch_size=EMBED_BATCH)
        ]

    def tokenizer(self, model: str) -> Tokenizer:
        """The dense model's own tokenizer (a ``tokenizers.Tokenizer``, truncating at its window as the
        model reads texts: ``truncation["max_length"]`` tokens, special tokens included)."""
        tokenizer = getattr(getattr(self._load(model, "dense"), "model", None), "tokenizer", None)
        if not isinstance(tokenizer, Tokenizer):
            raise ConfigurationError(f"model {model!r} has no tokenizer the connector can read")
        return tokenizer

    async def chars_read(self, model: str, texts: Sequence[str]) -> list[int | None]:
        """Per text, how many of its first characters the dense ``model`` reads where its window cuts the
        text (fastembed truncates at the tokenizer's ``max_length``); None where it reads the whole text.
        Only texts long enough to exceed the window are tokenized (a character is at most 4 tokens), in
        the embedding thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._chars_read, model, list(texts))

    def _chars_read(self, model: str, texts: list[str]) -> list[int | None]:
        tokenizer = self.tokenizer(model)
        window = int((tokenizer.truncation or {}).get("max_length") or 0)
        read: list[int | None] = [None] * len(texts)
        long = [i for i, text in enumerate(texts) if window and len(text) * 4 > window - 2]
        if not long:
            return read
        for i, encoding in zip(long, tokenizer.encode_batch([texts[i] for i in long]), strict=True):
            if encoding.overflowing:
                ends = [end for (_, end), special in zip(encoding.offsets, encoding.special_tokens_mask, strict=True)
                        if not special]
                read[i] = max(ends, default=0)
        return read

    def chunker(self, model: str, max_tokens: int, overlap_tokens: int) -> Chunker:
        """A chunker by ``model``'s tokenizer; ConfigurationError when chunks of ``max_tokens`` exceed the
        window the model reads (fastembed would cut them)."""
        key = (model, max_tokens, overlap_tokens)
        if key in self._chunkers:
            return self._chunkers[key]
        tokenizer = self.tokenizer(model)
        window = int((tokenizer.truncation or {}).get("max_length") or max_tokens)
        if max_tokens > window:
            raise ConfigurationError(f"chunks of {max_tokens} tokens do not fit model {model!r}, which reads "
                                     f"{window}: set max_tokens in QCC_CHUNKED_COLLECTIONS to {window} or less")
        self._chunkers[key] = Chunker(tokenizer, max_tokens, overlap_tokens)
        return self._chunkers[key]

    async def chunk_texts(self, chunker: Chunker, texts: Sequence[str]) -> dict[str, list[Chunk]]:
        """Each text's chunks, split in the embedding thread: CPU work (~0.8 s for a text of 100,000
        characters), during which the event loop goes on (heartbeats, /readyz, other windows)."""
        if not texts:
            return {}
        loop = asyncio.get_running_loop()
        unique = list(dict.fromkeys(texts))
        return await loop.run_in_executor(self._executor, lambda: {text: chunker.chunks(text) for text in unique})

    def warm_up(self, kind: VectorKind = "dense", model: str | None = None) -> None:
        """Load a model (default: the default one of its kind) now rather than in the first window."""
        self._load(model or self.default_model(kind), kind)

    def warm_up_defaults(self) -> None:
        """Load both default models (ConfigurationError when one cannot be loaded)."""
        self.warm_up("dense")
        self.warm_up("sparse")

    def _load(self, model: str, kind: VectorKind) -> Any:
        with self._lock:
            cached = self._models.get((model, kind))
            if cached is None:
                cached = load_model(model, kind, self._settings)
                self._models[(model, kind)] = cached
            return cached

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def load_model(model: str, kind: VectorKind, settings: Settings) -> Any:
    """A fastembed model object, from its local folder when one is configured."""
    from fastembed import SparseTextEmbedding, TextEmbedding

    path = settings.model_paths.get(model)
    if path is None:
        path = assembled_models().get(model)
        if path is not None:
            log.info("model %s from %s (assembled by `qdrant-change-connector models`)", model, path)
    options: dict[str, Any] = {"threads": settings.embed_threads}
    if settings.model_cache_dir is not None:
        options["cache_dir"] = str(settings.model_cache_dir)
    if path is not None:
        if not Path(path).is_dir():
            raise ConfigurationError(f"model folder for {model!r} does not exist: {path}")
        options["specific_model_path"] = str(path)
    try:
        if kind == "sparse":
            return SparseTextEmbedding(model_name=model, **options)
        if path is not None and not _is_known_dense_model(model):
            _register_local_dense_model(model, Path(path))
        return TextEmbedding(model_name=model, **options)
    except ConfigurationError:
        raise
    except Exception as exc:  # fastembed raises ValueError, OSError, hub errors...
        hint = "" if path else (f"; where the model hub is unreachable, run `qdrant-change-connector models` (it "
                                f"assembles the default models into {models_dir()}, where the worker finds them) "
                                f"or set QCC_MODEL_PATHS to local model folders")
        raise ConfigurationError(f"cannot load {kind} model {model!r}: {str(exc).rstrip('.')}{hint}") from exc


def _is_known_dense_model(model: str) -> bool:
    from fastembed import TextEmbedding

    return any(d["model"].lower() == model.lower() for d in TextEmbedding.list_supported_models())


def _register_local_dense_model(model: str, path: Path) -> None:
    """Describe a local sentence-transformers style ONNX folder to fastembed (mean pooling)."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    config = json.loads((path / "config.json").read_text())
    TextEmbedding.add_custom_model(
        model=model,
        pooling=PoolingType.MEAN,
        normalization=True,
        sources=ModelSource(hf=model),
        dim=int(config["hidden_size"]),
        model_file="model.onnx",
    )
