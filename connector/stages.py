"""The stages of a window, named once.

The window processor (connector/stream/window/processor.py) says by these names where a window
is, and a record that breaks a stage is dead-lettered ``poison_record`` with ``failed in stage
apply (the Qdrant request): ...``; the failpoints (connector/failpoints.py) take their names from
them: ``poison-<stage>``, ``hold-apply``, ``crash-after-apply``. docs/design.md's glossary says
what each stage does and which modules do it.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Stage"]


class Stage(str, Enum):
    """A window's stages, in the order a window goes through them; a stage is its name as text
    (``f"poison-{Stage.APPLY}"`` is ``poison-apply``)."""

    PARSE = "parse"
    VALIDATE = "validate"
    EMBED = "embed"
    PLAN = "plan"
    APPLY = "apply"
    VERIFY = "verify"

    def __str__(self) -> str:
        return self.value

    @property
    def doing(self) -> str:
        """The stage in words, for a person reading a dead letter."""
        return _DOING[self]


_DOING = {
    Stage.PARSE: "parsing",
    Stage.VALIDATE: "validation",
    Stage.EMBED: "embedding",
    Stage.PLAN: "planning",
    Stage.APPLY: "the Qdrant request",
    Stage.VERIFY: "verification, after its operations were applied",
}
