"""The JSON Schemas in schemas/ are the pydantic models' own, and both agree on the examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from connector.domain.changes import PATCH_ADAPTER, REEMBED_ADAPTER
from connector.schemas import SCHEMA_DIR, all_schemas, render

EXAMPLES = SCHEMA_DIR / "examples"
ADAPTERS = {"patch": PATCH_ADAPTER, "reembed": REEMBED_ADAPTER}


def _lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("name", sorted(all_schemas()))
def test_schema_files_match_the_models(name: str) -> None:
    on_disk = (SCHEMA_DIR / name).read_text()
    assert on_disk == render(all_schemas()[name]), (
        f"schemas/{name} drifted: run `qdrant-change-connector schemas` in the checkout's root")


@pytest.mark.parametrize("name", sorted(all_schemas()))
def test_schemas_are_valid_json_schema(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(all_schemas()[name])


@pytest.mark.parametrize("kind", ["patch", "reembed"])
def test_valid_examples_pass_schema_and_model(kind: str) -> None:
    validator = jsonschema.Draft202012Validator(
        all_schemas()[f"{kind}.schema.json"], format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    examples = _lines(EXAMPLES / f"{kind}.valid.jsonl")
    assert examples
    for event in examples:
        validator.validate(event)
        ADAPTERS[kind].validate_python(event)


@pytest.mark.parametrize("kind", ["patch", "reembed"])
def test_invalid_examples_fail_schema_and_model(kind: str) -> None:
    validator = jsonschema.Draft202012Validator(
        all_schemas()[f"{kind}.schema.json"], format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    examples = _lines(EXAMPLES / f"{kind}.invalid.jsonl")
    assert examples
    for example in examples:
        assert not validator.is_valid(example["event"]), f"schema accepted: {example['why']}"
        with pytest.raises(ValidationError):
            ADAPTERS[kind].validate_python(example["event"])
