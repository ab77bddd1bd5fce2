"""JSON Schemas of every event kind, generated from the pydantic models (the one source)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from connector.domain.changes import FENCE_ADAPTER, PATCH_ADAPTER, REEMBED_ADAPTER
from connector.domain.records import DeadLetterRecord, VerificationEvent
from connector.paths import SOURCE_ROOT

# The files are generated from the models, which ship in the package; nothing reads them at
# run time. The checkout's schemas/ is their published copy (tests/unit/test_schemas.py keeps
# it equal to the models). The `schemas` command writes them where it is asked, by default
# schemas/ in the working directory, never into the package's or the checkout's folder from
# elsewhere: run in the checkout's root, that is the published copy.
SCHEMA_DIR = SOURCE_ROOT / "schemas" if SOURCE_ROOT is not None else Path("schemas")
BASE_ID = "https://qdrant-change-connector.example/schemas/"


def all_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema (draft 2020-12) for each event kind."""
    kinds: dict[str, tuple[str, TypeAdapter[Any]]] = {
        "patch": ("Payload patch event (one of Qdrant's eight point operations)", PATCH_ADAPTER),
        "reembed": ("Re-embed event: new vectors for points, payload untouched", REEMBED_ADAPTER),
        "verification": ("Verification event: one per applied batch", TypeAdapter(VerificationEvent)),
        "dead_letter": ("Dead-letter record: an event that could not be applied", TypeAdapter(DeadLetterRecord)),
        "fence": ("Migration fence: a control record on both input topics", FENCE_ADAPTER),
    }
    out = {}
    for name, (title, adapter) in kinds.items():
        schema = adapter.json_schema(mode="validation" if name in ("patch", "reembed", "fence") else "serialization")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{BASE_ID}{name}.schema.json",
                  "title": title, **schema}
        out[f"{name}.schema.json"] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in all_schemas().items():
        path = folder / name
        path.write_text(render(schema))
        written.append(path)
    return written
