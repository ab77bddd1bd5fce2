"""The quick tier on Python 3.10 with requirements/lowest.txt installed (every direct dependency at its
lower bound: qdrant-client, fastembed, aiokafka, faust-streaming, ...)."""

from __future__ import annotations

import pytest

from tests.versions.pythons import run_quick_tier

# the quick tier takes minutes, more on a loaded machine: beyond the suite's 600 s per test
pytestmark = [pytest.mark.versions, pytest.mark.timeout(1800)]


def test_the_quick_tier_passes() -> None:
    run_quick_tier("3.10", "lowest.txt")
