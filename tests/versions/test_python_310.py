"""The quick tier on Python 3.10 with requirements/lowest.txt installed (every direct dependency at its
lower bound: qdrant-client, fastembed, aiokafka, faust-streaming, ...)."""

from __future__ import annotations

import pytest

from tests.versions.pythons import run_quick_tier

pytestmark = pytest.mark.versions


def test_the_quick_tier_passes() -> None:
    run_quick_tier("3.10", "lowest.txt")
