"""A document's text -> its chunks, by the embedding model's own tokenizer. Pure: no IO.

The splitter is semantic-text-splitter (Rust): it fills each chunk with the largest semantic
units that fit (paragraphs, then sentences, then words), counted in the model's tokens, and
repeats ``overlap`` tokens of the chunk before. It is hidden behind :class:`Chunker` so that
another splitter can take its place: the rest of the connector sees only :class:`Chunk`.

Chunks keep every character (the splitter does not trim): their spans cover the text from its
first character to its last, overlapping, so :func:`rebuild_text` gives the text back exactly
(a document can be re-chunked later, for another model, from its chunk points alone).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from semantic_text_splitter import TextSplitter
from tokenizers import Tokenizer

__all__ = ["Chunk", "Chunker", "chunk_set_digest", "rebuild_text", "sha256_text"]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Chunk:
    """One chunk of a text: its position, its characters ``text[start:end]`` and their sha256."""

    index: int
    text: str
    start: int
    end: int
    sha256: str


class Chunker:
    """Splits texts into chunks of at most ``max_tokens`` tokens as the model reads them (its
    special tokens, [CLS] and [SEP] for BERT models, included), ``overlap_tokens`` repeated."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int, overlap_tokens: int) -> None:
        counting = Tokenizer.from_str(tokenizer.to_str())  # a copy: the model's own truncates and pads
        counting.no_truncation()
        counting.no_padding()
        special = counting.post_processor.num_special_tokens_to_add(False) if counting.post_processor else 0
        capacity = max_tokens - special
        if capacity <= overlap_tokens:
            raise ValueError(f"max_tokens {max_tokens} leaves no room beside {special} special tokens and an "
                             f"overlap of {overlap_tokens}")
        self.max_tokens, self.overlap_tokens = max_tokens, overlap_tokens
        self._splitter = TextSplitter.from_huggingface_tokenizer(counting, capacity, overlap=overlap_tokens,
                                                                 trim=False)

    def chunks(self, text: str) -> list[Chunk]:
        """The chunks of ``text`` in order; one chunk for a text that fits."""
        found = self._splitter.chunk_indices(text)
        if not found and text:  # only whitespace, say: still one chunk, so the text is kept
            found = [(0, text)]
        return [Chunk(index, part, start, start + len(part), sha256_text(part))
                for index, (start, part) in enumerate(found)]


def rebuild_text(chunks: Sequence[tuple[int, int, str]]) -> str:
    """The text back from its chunks' (start, end, text), in order: each adds what lies past the
    end of the ones before it. ValueError when they leave a gap."""
    parts: list[str] = []
    covered = 0
    for start, end, text in sorted(chunks):
        if start > covered:
            raise ValueError(f"the chunks leave characters {covered}..{start} out")
        if end > covered:
            parts.append(text[covered - start:])
            covered = end
    return "".join(parts)


def chunk_set_digest(shas: Sequence[str]) -> str:
    """The digest of a document's chunk set: sha256 of its chunks' sha256 in index order, one a line
    (empty: the document has no chunk)."""
    return hashlib.sha256("".join(f"{sha}\n" for sha in shas).encode()).hexdigest()
