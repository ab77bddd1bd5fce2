"""A collection made chunked by a CDC mapping (a text column marked ``chunked``) is chunked for the
worker's every agent: an upsert on the patch topic writes chunk points, a patch reaches them, a
re-embed by ids reads the document's text from them, a tombstone deletes them (the patch and
re-embed agents took only QCC_CHUNKED_COLLECTIONS before). Through the worker's own Runtime, on
local mode and a real server over REST."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models as qm

from connector.domain.cdc_mapping import CdcMapping
from connector.domain.chunking import rebuild_text
from connector.domain.documents import CHUNK_KEY, chunked_fields
from connector.errors import ConfigurationError
from connector.settings import ChunkedField, Settings
from connector.stream.app import Runtime
from connector.stream.window import Record
from tests.integration.test_filter_verification import settings_for
from tests.qdrant_targets import QdrantTarget, only_targets

MAPPING = {"tables": {"public.articles": {"collection": "articles", "key": ["id"],
                                          "texts": {"body": {"chunked": True}}, "payload": {"title": "title"}}}}
TEXT = argparse.__doc__ or ""


def record(topic: str, offset: int, value: dict[str, Any] | None, key: str | None = None) -> Record:
    return Record(topic=topic, partition=0, offset=offset, value=json.dumps(value).encode() if value else None,
                  key=key.encode() if key else None)


def event(op: str, **fields: Any) -> dict[str, Any]:
    return {"schema_version": 1, "collection": "articles", "op": op, **fields}


@only_targets("local", "rest")
async def test_a_mapping_chunked_collection_is_chunked_for_patches_and_re_embeds(
        qdrant_target: QdrantTarget, model_paths: dict[str, str], tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    # no broker here: the re-embed agent does not wait for the patch topic's watermark
    settings = settings_for(qdrant_target, model_paths, cdc_mapping=mapping, reembed_waits_for_patches=False)
    assert settings.chunked_collections == {}  # chunked by the mapping only
    runtime = Runtime(settings)
    patches, reembeds = await runtime.processor("patch"), await runtime.processor("reembed")
    client = patches.client
    try:
        await client.create_collection("articles", vectors_config=qm.VectorParams(size=384,
                                                                                  distance=qm.Distance.COSINE))
        written = await patches.process([
            record("patches", 0, event("upsert", points=[{"id": 42, "payload": {"body": TEXT, "title": "t"}}],
                                       vector_name="")),
            record("patches", 1, event("set_payload", ids=[42], payload={"tag": "x"})),
        ])
        assert written.dead_letters == []
        points, _ = await client.scroll("articles", limit=1000, with_payload=True)
        assert len(points) > 1  # the document's chunks, not one point 42
        assert all(p.payload is not None and p.payload["tag"] == "x" and "body" not in p.payload for p in points)
        assert rebuild_text([(p.payload[CHUNK_KEY]["start"], p.payload[CHUNK_KEY]["end"], p.payload[CHUNK_KEY]["text"])
                             for p in points if p.payload is not None]) == TEXT

        again = await reembeds.process([record("reembeds", 0, {"schema_version": 1, "collection": "articles",
                                                               "kind": "reembed", "ids": [42],
                                                               "text_field": "body"})])
        assert again.dead_letters == []
        [verified] = again.verifications
        assert verified.verification.status == "verified", verified.verification

        gone = await patches.process([record("patches", 2, None, key="articles/42")])  # a tombstone
        assert gone.dead_letters == []
        assert (await client.count("articles")).count == 0
    finally:
        await client.close()


def test_a_chunked_collection_named_otherwise_by_the_setting_and_the_mapping_is_refused(
        model_paths: dict[str, str]) -> None:
    mapping = CdcMapping.model_validate(MAPPING)
    same = settings_for_local(model_paths, chunked_collections={"articles": ChunkedField(text_field="body",
                                                                                         max_tokens=64)})
    assert chunked_fields(same, mapping)["articles"].max_tokens == 64  # chunk sizes: the setting's, not the default
    other = settings_for_local(model_paths, chunked_collections={"articles": ChunkedField(text_field="content")})
    with pytest.raises(ConfigurationError, match="QCC_CHUNKED_COLLECTIONS names collection 'articles'"):
        chunked_fields(other, mapping)
    twice = CdcMapping.model_validate({"tables": {**MAPPING["tables"], "public.drafts": {
        "collection": "articles", "key": ["id"], "texts": {"draft": {"chunked": True}}}}})
    with pytest.raises(ConfigurationError, match="chunks collection 'articles' otherwise"):
        chunked_fields(settings_for_local(model_paths), twice)


def settings_for_local(model_paths: dict[str, str], **extra: Any) -> Settings:
    return Settings(model_paths=model_paths, **extra)
