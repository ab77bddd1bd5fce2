"""semantic-text-splitter (the connector's, connector/domain/chunking.py) beside semchunk on the
real-prose corpus (bench/corpus.py), both counting the model's own tokens: speed, and where the
chunks end. Standalone; its numbers are written down in bench/notes/documents.md.

    python -m bench.splitters --documents 40

Boundary quality: each chunk end but a document's last is classed by the text around it, spaces
aside: a paragraph boundary (a blank line between), a line or sentence end (a line break between,
or the chunk ends with . ! ? : or ;), or mid-sentence. Both split to 254 tokens (256 with [CLS] and
[SEP]) with 32 tokens of overlap.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

from bench import corpus
from bench.common import ROOT
from bench.documents import sample
from connector.embedding.embedder import Embedder
from connector.embedding.offline_model import assemble_all
from connector.settings import Settings

CAPACITY, OVERLAP = 254, 32


def boundary(text: str, end: int) -> str:
    before, after = text[:end], text[end:]
    gap = before[len(before.rstrip()):] + after[: len(after) - len(after.lstrip())]
    if "\n\n" in gap or re.search(r"\n[ \t]*\n", gap):
        return "paragraph"
    if "\n" in gap or before.rstrip().endswith((".", "!", "?", ":", ";")):
        return "line or sentence"
    return "mid-sentence"


def judge(documents: list[corpus.Document], spans: list[list[tuple[int, int]]], seconds: float,
          count_tokens: Any) -> dict[str, Any]:
    classes: dict[str, int] = {"paragraph": 0, "line or sentence": 0, "mid-sentence": 0}
    tokens = []
    for d, found in zip(documents, spans, strict=True):
        for _, end in found[:-1]:
            classes[boundary(d.text, end)] += 1
        tokens += [count_tokens(d.text[s:e]) for s, e in found]
    ends = sum(classes.values())
    return {"seconds": round(seconds, 2), "chars_per_second": round(sum(len(d.text) for d in documents) / seconds),
            "chunks": len(tokens), "mean_tokens": round(sum(tokens) / len(tokens), 1), "max_tokens": max(tokens),
            "ends": {k: round(v / ends, 3) for k, v in classes.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=40)
    args = parser.parse_args()
    import semchunk

    documents = sample(corpus.load(), args.documents)
    settings = Settings(model_paths=assemble_all(ROOT / ".cache" / "models"))
    embedder = Embedder(settings)
    chunker = embedder.chunker(settings.dense_model, CAPACITY + 2, OVERLAP)
    tokenizer = embedder.tokenizer(settings.dense_model)
    counting = type(tokenizer).from_str(tokenizer.to_str())
    counting.no_truncation()
    counting.no_padding()

    def count(text: str) -> int:
        return len(counting.encode(text, add_special_tokens=False).ids)

    start = time.perf_counter()
    ours = [[(c.start, c.end) for c in chunker.chunks(d.text)] for d in documents]
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs = []
    for d in documents:
        _, offsets = semchunk.chunk(d.text, CAPACITY, count, offsets=True, overlap=OVERLAP, memoize=False)
        theirs.append(list(offsets))
    theirs_seconds = time.perf_counter() - start
    result = {"documents": len(documents), "chars": sum(len(d.text) for d in documents),
              "semantic-text-splitter": judge(documents, ours, ours_seconds, count),
              "semchunk": judge(documents, theirs, theirs_seconds, count)}
    print(json.dumps(result, indent=2))
    Path(ROOT / "bench" / "results" / "splitters.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
