"""The chunking function's edges and the worker's start check of a chunked collection's limits and
of a CDC mapping's chunked column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.domain.cdc_mapping import CdcMapping
from connector.domain.chunking import rebuild_text
from connector.domain.documents import chunk_id, chunked_fields
from connector.embedding.embedder import Embedder
from connector.errors import ConfigurationError
from connector.settings import DEFAULT_DENSE_MODEL, ChunkedField, Settings
from connector.stream.cdc_mapping_file import load_cdc_mapping


def test_chunks_over_the_models_window_are_refused_at_start(model_paths: dict[str, str]) -> None:
    embedder = Embedder(Settings(model_paths=model_paths))
    try:
        with pytest.raises(ConfigurationError, match=r"do not fit model .* which reads 512"):
            embedder.chunker(DEFAULT_DENSE_MODEL, 1024, 32)
        assert embedder.chunker(DEFAULT_DENSE_MODEL, 512, 32).chunks("one short text")[0].text == "one short text"
    finally:
        embedder.close()


def test_a_bad_chunked_setting_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="overlap_tokens"):
        ChunkedField(text_field="body", max_tokens=64, overlap_tokens=40)
    with pytest.raises(ValueError, match="_chunk"):
        Settings.model_validate({"chunked_collections": json.loads('{"a": {"text_field": "_chunk"}}')})
    with pytest.raises(ValueError, match="the dense vector's name"):
        ChunkedField(text_field="body", vector="text", sparse_vector="text")
    with pytest.raises(ValueError, match="sparse_model without sparse_vector"):
        ChunkedField(text_field="body", sparse_model="Qdrant/bm25")
    assert ChunkedField(text_field="body", vector="text", sparse_vector="bm25").vector_names == ("text", "bm25")
    assert ChunkedField(text_field="body").vector_names == ("",)


def test_chunk_ids_are_fixed_by_collection_document_and_index() -> None:
    assert chunk_id("articles", 42, 0) != chunk_id("articles", 42, 1) != chunk_id("docs", 42, 1)
    assert chunk_id("articles", 42, 0) == "7b240187-3ba6-5897-b1c2-121cbbaa0a86"  # never changes: ids of stored chunks


def test_a_text_is_rebuilt_from_overlapping_chunks_and_a_gap_is_refused() -> None:
    assert rebuild_text([(6, 11, "world"), (0, 8, "hello wo")]) == "hello world"
    with pytest.raises(ValueError, match=r"leave characters 5\.\.6 out"):
        rebuild_text([(0, 5, "hello"), (6, 11, "world")])


def test_a_chunked_column_is_found_under_its_payload_key_and_one_no_text_field_can_be_is_refused(
        tmp_path: Path) -> None:
    renamed = CdcMapping.model_validate({"tables": {"public.wiki": {
        "collection": "wiki", "key": ["id"], "payload": {"id": "id", "Body Text": "content"},
        "texts": {"Body Text": {"chunked": True}}}}})
    assert chunked_fields(Settings(), renamed)["wiki"].text_field == "content"  # not stored again on every chunk
    file = tmp_path / "mapping.yaml"
    file.write_text("tables:\n  public.wiki:\n    collection: wiki\n    key: [id]\n"
                    "    texts: {'Body Text': {chunked: true}}\n")
    with pytest.raises(ConfigurationError) as refused:  # the worker's one line and exit 78, not a pydantic trace
        load_cdc_mapping(file)
    line = str(refused.value)
    assert "\n" not in line
    assert "chunked column 'Body Text'" in line
    assert "map it to one in payload" in line
