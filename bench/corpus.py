"""A corpus of long real prose that no one on this project wrote, from what this machine has installed.

Two kinds of documents, each from one file:

- documentation shipped inside installed Python packages: ``.md``/``.rst``/``.txt`` files (licences,
  ``RECORD`` and other packaging lists left out) and the long descriptions of ``*.dist-info/METADATA``;
- the docstrings of a Python module (standard library or installed package): its module docstring,
  then those of its classes and functions in source order, one paragraph after another, as
  ``pydoc`` would show them (test folders left out).

Roots, in this order: the interpreter's standard library, the environment's site-packages, the base
interpreter's site-packages; a path already seen under an earlier root is not read again (the same
package in two places), nor a text already taken (byte-equal copies). This project's own package
metadata is left out. A document is kept when it has at least :data:`MIN_WORDS` words; the selection
is deterministic (sorted paths) and each document's id is ``uuid5`` of its name (``stdlib/argparse.py``,
``site-packages/yarl-1.25.1.dist-info/METADATA``...), stable across runs and machines.

Cleaning is minimal: line ends normalized, trailing spaces dropped, runs of blank lines collapsed to
one. Scanning reads ~13,000 files (about a minute on 2 busy cores), so the result is cached under
``.cache/corpus/`` keyed by the interpreter and the installed distributions.

    python -m bench.corpus     # count, median words, where the documents come from
"""

from __future__ import annotations

import ast
import email
import hashlib
import json
import re
import statistics
import sys
import sysconfig
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT

MIN_WORDS = 1400
CORPUS_NAMESPACE = uuid.UUID("3b1f6a52-8e0d-5b7c-9f41-2a6c0d9e7b13")
SKIPPED_NAMES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS", "RECORD", "TOP_LEVEL", "ENTRY_POINTS",
                 "REQUIRES", "SOURCES", "DEPENDENCY_LINKS", "NOT-ZIP", "WHEEL", "INSTALLER")
SKIPPED_FOLDERS = {"test", "tests", "testing", "idle_test", "__pycache__"}
OWN = "qdrant_change_connector"  # this project's own metadata is not prose someone else wrote
CACHE = ROOT / ".cache" / "corpus"
VERSION = 1  # of the selection and cleaning rules: a change makes a new cache file


@dataclass(frozen=True)
class Document:
    id: str  # uuid5 of the name
    name: str  # root tag and path under it
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())


def roots() -> list[tuple[str, Path]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = [("stdlib", stdlib), ("site-packages", Path(sysconfig.get_paths()["purelib"]))]
    base = stdlib / "site-packages"
    if base.is_dir() and base != out[1][1]:
        out.append(("base-site-packages", base))
    return out


def clean(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def docstrings(source: str) -> str:
    """A module's docstrings, module first, then classes and functions in source order."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                found.append(doc)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return "\n\n".join(dict.fromkeys(found))


def text_of(path: Path) -> str | None:
    """The prose a file holds, or None when it is no document of the corpus."""
    if path.suffix == ".py":
        return docstrings(path.read_text(errors="replace"))
    if path.suffix in (".md", ".rst", ".txt") and not any(k in path.name.upper() for k in SKIPPED_NAMES):
        return path.read_text(errors="replace")
    if path.name == "METADATA" and path.parent.name.endswith(".dist-info"):
        if path.parent.name.startswith(OWN):
            return None
        payload = email.message_from_string(path.read_text(errors="replace")).get_payload()
        return payload if isinstance(payload, str) else None
    return None


def scan(min_words: int = MIN_WORDS) -> Iterator[Document]:
    seen_paths: set[str] = set()
    seen_texts: set[str] = set()
    for tag, root in roots():
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if (tag == "stdlib" and "site-packages" in relative.parts) or SKIPPED_FOLDERS & set(relative.parts[:-1]):
                continue
            if str(relative) in seen_paths or not path.is_file():
                continue
            try:
                raw = text_of(path)
            except (OSError, SyntaxError, ValueError, RecursionError):
                continue
            if not raw:
                continue
            seen_paths.add(str(relative))
            text = clean(raw)
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest in seen_texts or len(text.split()) < min_words:
                continue
            seen_texts.add(digest)
            name = f"{tag}/{relative}"
            yield Document(str(uuid.uuid5(CORPUS_NAMESPACE, name)), name, text)


def cache_key(min_words: int) -> str:
    """The interpreter and every installed distribution (name and version) under the roots."""
    installed = sorted(p.name for _, root in roots() for p in root.glob("*.dist-info"))
    facts = json.dumps([VERSION, min_words, sys.version, [str(r) for _, r in roots()], installed])
    return hashlib.sha256(facts.encode()).hexdigest()[:16]


def load(min_words: int = MIN_WORDS) -> list[Document]:
    """The corpus, from the cache when this machine's installation has not changed since it was made."""
    path = CACHE / f"corpus-{cache_key(min_words)}.json"
    if path.exists():
        return [Document(**d) for d in json.loads(path.read_text())]
    documents = list(scan(min_words))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps([d.__dict__ for d in documents]))
    partial.replace(path)
    return documents


def describe(documents: list[Document]) -> dict[str, object]:
    words = [d.words for d in documents]
    return {"documents": len(documents), "median_words": statistics.median(words) if words else 0,
            "words": sum(words), "min_words": min(words, default=0), "max_words": max(words, default=0),
            "sources": dict(Counter(d.name.split("/", 1)[0] for d in documents)),
            "kinds": dict(Counter("docstrings" if d.name.endswith(".py") else "package docs" for d in documents))}


if __name__ == "__main__":
    print(json.dumps(describe(load()), indent=2))
