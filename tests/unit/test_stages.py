"""The window's stages have one set of names (connector/stages.py): the processor says where a
window is by them, its poison_record dead letters name them, the failpoints are made from them,
and docs/design.md's glossary lists them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from connector.failpoints import CRASH_AFTER_APPLY, HOLD_APPLY, Failpoints
from connector.stages import Stage
from connector.stream.window.quarantine import poison_message

ROOT = Path(__file__).resolve().parents[2]
WINDOW = ROOT / "connector" / "stream" / "window"


def stage_names_given(path: Path) -> list[str]:
    """What a module gives as a stage: each value assigned to ``self.stage`` and each first
    argument of a ``failpoints.stage(...)`` or ``.poison(...)`` call, as written."""
    given = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "stage"
                                                for t in node.targets):
            given.append(ast.unparse(node.value))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("stage", "poison") and node.args:
            given.append(ast.unparse(node.args[0]))
    return given


@pytest.mark.parametrize("module", ["stream/window/processor.py", "stream/window/admission.py",
                                    "embedding/embedder.py"])
def test_the_stages_are_named_by_the_one_vocabulary(module: str) -> None:
    given = stage_names_given(ROOT / "connector" / module)
    assert given, "no stage named: the check would prove nothing"
    assert all(re.fullmatch(r"Stage\.[A-Z]+", name) for name in given), given


def test_a_dead_letter_names_the_stage_by_its_name_and_in_words() -> None:
    try:
        raise RuntimeError("failpoint: poison-apply (a record that breaks this stage)")
    except RuntimeError as exc:
        message = poison_message(Stage.APPLY, exc)
    assert message.startswith("failed in stage apply (the Qdrant request): RuntimeError: failpoint: poison-apply")
    assert poison_message(Stage.VERIFY, ValueError("x")) == (
        "failed in stage verify (verification, after its operations were applied): ValueError: x")


async def test_the_failpoints_are_named_by_the_stages(tmp_path: Path) -> None:
    assert (HOLD_APPLY, CRASH_AFTER_APPLY) == ("hold-apply", "crash-after-apply")  # the names tests switch on
    failpoints = Failpoints(tmp_path)
    for stage in Stage:
        (tmp_path / f"poison-{stage.value}").write_text("MARK")
        with pytest.raises(RuntimeError, match=f"failpoint: poison-{stage.value} "):
            failpoints.poison(stage, [b"a record with MARK in it"])
        failpoints.poison(stage, [b"an ordinary record"])  # no marker: no fault
    (tmp_path / f"poison-{Stage.VALIDATE.value}").unlink()
    await failpoints.stage(Stage.VALIDATE, [b"MARK"])  # that stage's failpoint is off


def glossary_stages() -> list[str]:
    """The stages of docs/design.md's glossary: the first column of its table of stages."""
    text = (ROOT / "docs" / "design.md").read_text()
    table = text.split("## Glossary", 1)[1].split("| stage |", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\| `([a-z-]+)` \|", table, flags=re.MULTILINE)


def test_the_glossary_lists_the_stages_in_order() -> None:
    assert glossary_stages() == [stage.value for stage in Stage]


def named_failpoints() -> set[str]:
    """Failpoint names that name a stage, as docs and the failpoints' own docstring write them."""
    texts = [(ROOT / "connector" / "failpoints.py").read_text(), (ROOT / "README.md").read_text(),
             *(path.read_text() for path in (ROOT / "docs").glob("*.md"))]
    return {found for text in texts for found in re.findall(r"`((?:poison|hold)-[a-z<>]+)`", text)}


def test_the_failpoints_the_docs_name_are_made_of_stage_names() -> None:
    names = named_failpoints()
    assert {"poison-<stage>", "hold-apply"} <= names
    stages = {stage.value for stage in Stage} | {"<stage>"}
    assert {name for name in names if name.split("-")[-1] not in stages} == set()
