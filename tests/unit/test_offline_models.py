"""What a worker finds in the models folder without QCC_MODEL_PATHS: only finished folders."""

from __future__ import annotations

from pathlib import Path

from connector.embedding.offline_model import TOKENIZER_FILES, assembled_models, needs_assembly
from connector.settings import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL


def _minilm(folder: Path, *, finished: bool) -> None:
    folder.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        (folder / name).write_text("{}")
    # the assembler renames model.onnx.part into place last
    (folder / ("model.onnx" if finished else "model.onnx.part")).write_bytes(b"onnx")


def test_an_empty_folder_has_nothing(tmp_path: Path) -> None:
    assert assembled_models(tmp_path / "missing") == {}
    assert needs_assembly(tmp_path / "missing")


def test_finished_folders_are_found_by_model_name(tmp_path: Path) -> None:
    _minilm(tmp_path / "all-MiniLM-L6-v2", finished=True)
    (tmp_path / "bm25").mkdir()
    assert assembled_models(tmp_path) == {DEFAULT_DENSE_MODEL: (tmp_path / "all-MiniLM-L6-v2").resolve(),
                                          DEFAULT_SPARSE_MODEL: (tmp_path / "bm25").resolve()}
    assert not needs_assembly(tmp_path)


def test_an_interrupted_assembly_is_not_a_model(tmp_path: Path) -> None:
    _minilm(tmp_path / "all-MiniLM-L6-v2", finished=False)
    (tmp_path / "bm25").mkdir()
    assert set(assembled_models(tmp_path)) == {DEFAULT_SPARSE_MODEL}
    assert needs_assembly(tmp_path)
